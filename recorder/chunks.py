"""The archive in closed chunks: fixed spans of the lesson timeline, each built once and kept.

    <recording>/.chunks/
        ledger.json          what is built: per chunk, the fingerprint of its inputs and its files
        video-0003.mp4       H.264 of frames [3 * CHUNK_S * fps, 4 * CHUNK_S * fps), starting on an IDR
        audio-0003.mp4       the AAC mix of the same span (pre-rolled, so chunks join without a click)
        audio-0003.npz       the span's microphone levels (for the director) and voice activity (analysis)
        thumbs/00035.jpg     a thumbnail every THUMB_EVERY_S seconds (here at 35 s)
        status.json          how far behind live the chunk worker is (for GET /api/recordings)

Chunk boundaries depend on nothing but the frame rate, so a chunk built while the lesson is
recorded and the same chunk built after it have the same span. A chunk's fingerprint is a
hash of everything its content depends on: the shots inside its span, the track segments,
keyframes and clock offset it decodes, the encoder settings. The final build recomputes every
fingerprint and reuses a chunk only when it matches; a chunk whose shots changed (a decision
the lookahead could not foresee) is simply rendered again. Capture files are append-only, so
their bytes up to a chunk's end do not change once written (the fingerprint does not hash them).

Files are written under a temporary name and renamed; the ledger is rewritten atomically after
the rename, so a kill -9 at any moment leaves only complete chunks listed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recorder.audio import AAC_FRAME, LEVEL_HZ, RATE
from recorder.capture import write_json_atomic
from recorder.render import HOLD_S, ShotSpec, SourceSpec

CHUNK_S = 30.0  # a chunk's length on the timeline
LOOKAHEAD_S = 30.0  # a chunk is rendered live once the capture runs this far past its end
AUDIO_SETTLE_S = 2.0  # ... its sound once the capture runs this far past it
THUMB_EVERY_S = 5.0  # thumbnails are rendered on this grid; the manifest picks some of them
VAD_FRAME_S = 0.03  # the analysis' voice activity frames (webrtcvad, 30 ms)
VAD_PREROLL_S = 10.0  # the voice activity detector warms up on this much before a chunk
AAC_PREROLL = 4  # AAC packets encoded before (and after) a chunk's own, then dropped
DIRNAME = ".chunks"
LEDGER = "ledger.json"
STATUS = "status.json"


@dataclass(frozen=True)
class Span:
    """Chunk `index`: output frames [first, last), i.e. seconds [start, end)."""

    index: int
    first: int
    last: int
    fps: int
    final: bool  # the lesson's last chunk (its end is the lesson's end)

    @property
    def start(self) -> float:
        return self.first / self.fps

    @property
    def end(self) -> float:
        return self.last / self.fps

    def samples(self, total: int) -> tuple[int, int | None]:
        """Its AAC packets: [from, until) in samples (multiples of AAC_FRAME; until None: to the end)."""
        edge = round(self.index * CHUNK_S * RATE / AAC_FRAME) * AAC_FRAME
        first = -AAC_FRAME if self.index == 0 else edge  # the encoder's priming packet comes first
        return first, None if self.final else round((self.index + 1) * CHUNK_S * RATE / AAC_FRAME) * AAC_FRAME

    def level_windows(self, duration: float) -> tuple[int, int]:
        """Its 100 ms level windows: [first, first + count)."""
        per = round(CHUNK_S * LEVEL_HZ)
        total = max(1, math.ceil(duration * LEVEL_HZ))
        first = self.index * per
        return first, (total - first if self.final else per)

    def vad_frames(self, duration: float) -> tuple[int, int]:
        per = round(CHUNK_S / VAD_FRAME_S)
        total = max(0, math.ceil(duration / VAD_FRAME_S))
        first = self.index * per
        return first, (max(0, total - first) if self.final else per)


def spans(frames: int, fps: int) -> list[Span]:
    """The chunks of a video of `frames` frames (the last may be short)."""
    per = round(CHUNK_S * fps)
    n = max(1, math.ceil(frames / per))
    return [Span(k, k * per, min(frames, (k + 1) * per), fps, k == n - 1) for k in range(n)]


def stable_spans(duration: float, fps: int, horizon: float) -> list[Span]:
    """Whole (not final) chunks of a capture still growing that end before `horizon` seconds."""
    per = round(CHUNK_S * fps)
    count = int(min(duration, horizon) * fps) // per
    return [Span(k, k * per, (k + 1) * per, fps, False) for k in range(count)]


def fingerprint(data: dict[str, Any]) -> str:
    """A hash per input, joined ("shots:1a2b3c4d|sources:..."): equal keys mean equal inputs, and
    two keys tell which input changed (`changed`)."""
    return "|".join(f"{k}:{_hash(v)}" for k, v in sorted(data.items()))


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:12]


def changed(old: str, new: str) -> list[str]:
    """The inputs whose hashes differ between two keys."""
    a = dict(p.split(":", 1) for p in old.split("|") if ":" in p)
    b = dict(p.split(":", 1) for p in new.split("|") if ":" in p)
    return sorted(k for k in {*a, *b} if a.get(k) != b.get(k))


def shots_in(shots: list[ShotSpec], span: Span) -> list[ShotSpec]:
    """The shots on screen during the span, cut to it."""
    a, b = span.start, span.end
    return [ShotSpec(max(s.start, a), min(s.end, b), s.large, s.inset) for s in shots if s.end > a and s.start < b]


def video_key(span: Span, shots: list[ShotSpec], sources: dict[str, SourceSpec], settings: dict[str, Any]) -> str:
    """What a video chunk's pictures depend on."""
    end = span.end
    used: dict[str, Any] = {}
    for key, spec in sorted(sources.items()):
        segs = [[Path(s.path).name, round(s.offset, 6), round(s.start, 3), round(min(s.end, end + HOLD_S + 1), 3),
                 s.width, s.height, [[round(t, 3), i] for t, i in s.keyframes if t <= end + 1e-6]]
                for s in spec.segments if s.start <= end + 1e-6]
        if segs:
            used[key] = [spec.label, segs]
    return fingerprint({"span": [span.first, span.last, span.fps], "settings": settings, "sources": used,
                        "shots": [[round(s.start, 3), round(s.end, 3), s.large, s.inset] for s in shots]})


def audio_key(span: Span, files: dict[str, list[tuple[str, float]]], offset: float, total: int, gain: float) -> str:
    """What a chunk's sound, levels and voice activity depend on (`files`: classroom -> (name, start s))."""
    until = span.end + AAC_PREROLL * AAC_FRAME / RATE + 1
    used = {c: [n for n, start in fs if start <= until] for c, fs in sorted(files.items())}
    return fingerprint({"span": [span.index, span.first, span.last, span.fps], "final": span.final,
                        "total": total if span.final else None, "offset": round(offset, 6), "gain": gain,
                        "files": used})


class Ledger:
    """``.chunks/ledger.json``: {"video": {index: entry}, "audio": {index: entry}}; entries hold "key"."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory / DIRNAME
        self.dir.mkdir(exist_ok=True)
        self.path = self.dir / LEDGER
        self.data: dict[str, dict[str, dict[str, Any]]] = {"video": {}, "audio": {}}
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
            for kind in ("video", "audio"):
                self.data[kind] = dict(loaded.get(kind, {}))

    def get(self, kind: str, span: Span, key: str) -> dict[str, Any] | None:
        """The entry built from exactly these inputs, if its files are all there."""
        entry = self.data[kind].get(str(span.index))
        if entry is None or entry.get("key") != key:
            return None
        if not all((self.dir / f).is_file() for f in entry.get("files", [])):
            return None
        return entry

    def put(self, kind: str, span: Span, entry: dict[str, Any]) -> None:
        self.data[kind][str(span.index)] = entry
        write_json_atomic(self.path, self.data)

    def file(self, name: str) -> Path:
        return self.dir / name


@contextlib.contextmanager
def chunk_lock(directory: Path, *, wait: bool) -> Iterator[bool]:
    """Who may write a recording's chunks: the live worker (between steps) or the final build.

    Yields False when `wait` is false and someone else holds it."""
    (directory / DIRNAME).mkdir(exist_ok=True)
    with (directory / DIRNAME / ".lock").open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def write_status(directory: Path, capture_s: float, built_s: float, *, state: str) -> None:
    """How far the chunks lag behind the capture (seconds), for the recordings listing."""
    write_json_atomic(directory / DIRNAME / STATUS, {
        "state": state, "capture_s": round(capture_s, 1), "built_s": round(built_s, 1),
        "behind_s": round(max(0.0, capture_s - built_s), 1), "at": time.time()})


def read_status(directory: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((directory / DIRNAME / STATUS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data

