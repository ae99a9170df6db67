"""The test pattern: a picture that carries its own frame counter, send time and source tag.

Three rows of 32 black/white blocks at the top of the frame encode
  row 0: frame counter, row 1: send time (ms since the epoch, mod 2^32),
  row 2: source tag (16 bits) and a 16-bit checksum of all three.
Blocks are large enough to survive VP8/H264 at ordinary bitrates, so a receiver can verify every
decoded frame (and tell a corrupted one), measure glass-to-glass latency and tell which classroom
it is looking at. The rest of the frame is a coloured scene with the classroom's name.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass

import cv2
import numpy as np

BITS = 32
ROWS = 3


def source_tag(name: str) -> int:
    """A 16-bit tag identifying a classroom in the pattern."""
    return zlib.crc32(name.encode("utf8")) & 0xFFFF


def _checksum(counter: int, sent_ms: int, tag: int) -> int:
    return zlib.crc32(f"{counter}:{sent_ms}:{tag}".encode()) & 0xFFFF


def _block_height(height: int) -> int:
    return max(8, (height // 24) // 2 * 2)


@dataclass(frozen=True)
class PatternInfo:
    counter: int
    sent_ms: int
    tag: int

    def latency_ms(self, now_ms: int | None = None) -> int:
        now = int(time.time() * 1000) & 0xFFFFFFFF if now_ms is None else now_ms & 0xFFFFFFFF
        return (now - self.sent_ms) & 0xFFFFFFFF


class PatternPainter:
    """Draws pattern frames for one classroom (BGR uint8 arrays)."""

    def __init__(self, width: int, height: int, label: str, tag: int) -> None:
        if width < BITS * 4 or height < 96:
            raise ValueError(f"pattern needs at least {BITS * 4}x96 pixels")
        self.width = width
        self.height = height
        self.tag = tag & 0xFFFF
        hue = tag % 180
        hsv = np.array([[[hue, 160, 200]]], dtype=np.uint8)
        color = np.asarray(cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR))[0, 0]
        base = np.zeros((height, width, 3), np.uint8)
        base[:] = color
        scale = max(0.4, width / 640)
        cv2.putText(base, label[:40], (int(10 * scale), height - int(20 * scale)), cv2.FONT_HERSHEY_SIMPLEX,
                    scale, (255, 255, 255), max(1, int(2 * scale)), cv2.LINE_AA)
        self._base = base
        self._bw = width // BITS
        self._bh = _block_height(height)

    @property
    def rows_height(self) -> int:
        """Pixels at the top of the frame that the counter/time/tag rows take."""
        return ROWS * self._bh

    def paint(self, counter: int, sent_ms: int | None = None) -> np.ndarray:
        sent = int(time.time() * 1000) & 0xFFFFFFFF if sent_ms is None else sent_ms & 0xFFFFFFFF
        img = self._base.copy()
        # a moving bar so the picture is visibly live
        x = (counter * 4) % self.width
        cv2.rectangle(img, (x, ROWS * self._bh + 4), (min(self.width - 1, x + 16), self.height - 50),
                      (255, 255, 255), -1)
        words = (counter & 0xFFFFFFFF, sent, (self.tag << 16) | _checksum(counter & 0xFFFFFFFF, sent, self.tag))
        for row, word in enumerate(words):
            y0 = row * self._bh
            for bit in range(BITS):
                on = (word >> (BITS - 1 - bit)) & 1
                img[y0:y0 + self._bh, bit * self._bw:(bit + 1) * self._bw] = 235 if on else 16
        return img


# the pattern as sent, and as the server's lower tiers scale it (e.g. 640x360 -> 320x180)
SCALES = (1.0, 0.5, 0.75, 0.25, 2 / 3)


def read_pattern(luma: np.ndarray) -> PatternInfo | None:
    """Read the pattern from a frame's luma plane (H x W uint8); None if it does not check out.

    The frame may be the pattern scaled down (a server-made tier): the block rows are looked
    for at each of `SCALES`; the checksum tells the right one.
    """
    height, width = luma.shape[:2]
    for scale in SCALES:
        bw = (round(width / scale) // BITS) * scale
        bh = _block_height(round(height / scale)) * scale
        if bw < 3 or bh < 4:
            continue
        info = _read_rows(luma, bw, bh)
        if info is not None:
            return info
    return None


def _read_rows(luma: np.ndarray, bw: float, bh: float) -> PatternInfo | None:
    starts = np.arange(BITS) * bw
    x0 = np.round(starts + bw / 4).astype(np.int64)
    x1 = np.maximum(np.round(starts + bw - bw / 4).astype(np.int64), x0 + 1)
    if x1[-1] > luma.shape[1]:
        return None
    words = []
    for row in range(ROWS):
        y0 = round(row * bh + bh / 4)
        y1 = max(round(row * bh + bh - bh / 4), y0 + 1)
        columns = np.concatenate(([0.0], np.cumsum(luma[y0:y1].mean(axis=0, dtype=np.float64))))
        bits = (columns[x1] - columns[x0]) / (x1 - x0) > 125
        word = 0
        for b in bits:
            word = (word << 1) | int(b)
        words.append(word)
    counter, sent, last = words
    tag, check = last >> 16, last & 0xFFFF
    if _checksum(counter, sent, tag) != check:
        return None
    return PatternInfo(counter=counter, sent_ms=sent, tag=tag)
