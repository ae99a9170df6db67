"""Composing one 1280x720 picture from a large source and an inset, in I420 (no colour conversion).

Layout: the large picture is scaled to fit the frame, centred (a 4:3 camera is 960x720 at
x=160, exactly 3x a 320x240 source); the inset is a quarter of the frame's width at the
bottom-right corner. Each picture carries its classroom's name at its bottom edge, never over
the top rows (where a test pattern or a slide title sits). A missing picture becomes a card
with the classroom's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import av
import cv2
import numpy as np

WIDTH, HEIGHT = 1280, 720
INSET_W = WIDTH // 4
MARGIN = 24
BACKGROUND_Y = 24


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    w: int
    h: int

    def to_json(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


def _even(v: float) -> int:
    return max(2, round(v / 2) * 2)


def large_rect(src_w: int, src_h: int, width: int = WIDTH, height: int = HEIGHT) -> Rect:
    scale = min(width / src_w, height / src_h)
    w, h = min(width, _even(src_w * scale)), min(height, _even(src_h * scale))
    return Rect(_even((width - w) / 2) if w < width else 0, _even((height - h) / 2) if h < height else 0, w, h)


def inset_rect(src_w: int, src_h: int, width: int = WIDTH, height: int = HEIGHT) -> Rect:
    w = _even(width / 4)
    h = _even(w * src_h / src_w)
    return Rect(_even(width - MARGIN - w), _even(height - MARGIN - h), w, h)


def _font() -> object | None:
    try:
        return cv2.FontFace("uni")  # type: ignore[attr-defined]  # OpenCV 5: Unicode (CJK) text
    except Exception:
        return None


@lru_cache(maxsize=256)
def text_mask(text: str, size: int) -> np.ndarray:
    """A white-on-black mask of `text`, `size` pixels high (Chinese needs OpenCV >= 5)."""
    font = _font()
    height = int(size * 1.5)
    if font is not None:
        rect = cv2.getTextSize((4000, height), text, (0, size), font, size)  # type: ignore[call-overload]
        width = max(1, int(rect[0] + rect[2]) + 4)
        mask = np.zeros((height, width), np.uint8)
        cv2.putText(mask, text, (2, size), (255,), font, size)  # type: ignore[call-overload]
        return mask
    ascii_text = text.encode("ascii", "replace").decode()
    scale = size / 30
    (tw, _th), _ = cv2.getTextSize(ascii_text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    mask = np.zeros((height, tw + 4), np.uint8)
    cv2.putText(mask, ascii_text, (2, size), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, 2, cv2.LINE_AA)
    return mask


def _plane(frame: av.VideoFrame, index: int, width: int, height: int) -> np.ndarray:
    plane = frame.planes[index]
    return np.frombuffer(memoryview(plane), np.uint8).reshape(height, plane.line_size)[:, :width]


class Canvas:
    """A 1280x720 picture drawn straight into the planes of the video frame the encoder takes."""

    def __init__(self, width: int = WIDTH, height: int = HEIGHT) -> None:
        self.width, self.height = width, height
        self.new_frame()

    def new_frame(self) -> av.VideoFrame:
        """A fresh frame to draw on (the encoder has copied the previous one by now)."""
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        self.y = _plane(frame, 0, self.width, self.height)
        self.u = _plane(frame, 1, self.width // 2, self.height // 2)
        self.v = _plane(frame, 2, self.width // 2, self.height // 2)
        self.frame = frame
        return frame

    def clear(self) -> None:
        self.y[:] = BACKGROUND_Y
        self.u[:] = 128
        self.v[:] = 128

    def put(self, planes: tuple[np.ndarray, np.ndarray, np.ndarray], rect: Rect) -> None:
        """Scale a picture's Y, U, V planes into `rect`."""
        py, pu, pv = planes
        x, y, w, h = rect.x, rect.y, rect.w, rect.h
        interp = cv2.INTER_LINEAR
        if py.shape[1] == w and py.shape[0] == h:
            self.y[y:y + h, x:x + w] = py
        else:
            cv2.resize(py, (w, h), dst=self.y[y:y + h, x:x + w], interpolation=interp)
        for src, dst in ((pu, self.u), (pv, self.v)):
            region = dst[y // 2:(y + h) // 2, x // 2:(x + w) // 2]
            if src.shape == region.shape:
                region[:] = src
            else:
                cv2.resize(src, (w // 2, h // 2), dst=region, interpolation=interp)

    def border(self, rect: Rect, luma: int = 220, width: int = 2) -> None:
        x, y, w, h = rect.x, rect.y, rect.w, rect.h
        x0, y0, x1, y1 = max(0, x - width), max(0, y - width), min(self.width, x + w + width), min(
            self.height, y + h + width)
        self.y[y0:y, x0:x1] = luma
        self.y[y + h:y1, x0:x1] = luma
        self.y[y0:y1, x0:x] = luma
        self.y[y0:y1, x + w:x1] = luma

    def card(self, rect: Rect, text: str) -> None:
        """A dark card with a name in the middle: a picture that is not there."""
        self.y[rect.y:rect.y + rect.h, rect.x:rect.x + rect.w] = 40
        self.u[rect.y // 2:(rect.y + rect.h) // 2, rect.x // 2:(rect.x + rect.w) // 2] = 128
        self.v[rect.y // 2:(rect.y + rect.h) // 2, rect.x // 2:(rect.x + rect.w) // 2] = 128
        size = max(14, min(40, rect.h // 10))
        mask = text_mask(text, size)[:, : rect.w - 8]
        mx = rect.x + max(4, (rect.w - mask.shape[1]) // 2)
        my = rect.y + (rect.h - mask.shape[0]) // 2
        self._blit(mask, mx, my)

    def label(self, rect: Rect, text: str, size: int) -> None:
        """A name on a dark band at the bottom-left of a picture."""
        mask = text_mask(text, size)
        pad = size // 3
        w = min(mask.shape[1] + 2 * pad, rect.w)
        h = mask.shape[0] + pad
        x = rect.x
        y = rect.y + rect.h - h
        band = self.y[y:y + h, x:x + w]
        band[:] = (band.astype(np.uint16) * 3 // 8).astype(np.uint8)
        self.u[y // 2:(y + h) // 2, x // 2:(x + w) // 2] = 128
        self.v[y // 2:(y + h) // 2, x // 2:(x + w) // 2] = 128
        self._blit(mask[:, : w - pad], x + pad, y + pad // 2)

    def _blit(self, mask: np.ndarray, x: int, y: int) -> None:
        h = min(mask.shape[0], self.height - y)
        w = min(mask.shape[1], self.width - x)
        if h <= 0 or w <= 0:
            return
        region = self.y[y:y + h, x:x + w]
        np.maximum(region, (mask[:h, :w].astype(np.uint16) * 235 // 255).astype(np.uint8), out=region)

    def to_bgr(self) -> np.ndarray:
        i420 = np.concatenate([self.y.reshape(-1), self.u.reshape(-1), self.v.reshape(-1)])
        return np.asarray(cv2.cvtColor(i420.reshape(self.height * 3 // 2, self.width), cv2.COLOR_YUV2BGR_I420))


def planes_of(i420: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y, U, V views of a contiguous I420 array (as `VideoFrame.to_ndarray()` gives for yuv420p)."""
    y = i420[:height]
    chroma = i420[height:].reshape(2, height // 2, width // 2)
    return y, chroma[0], chroma[1]
