"""Live capture on disk: encoded frames muxed into one Matroska file per track, never transcoded.

Layout of a capture directory (``<recording>/capture/``):

    session.json    the lesson, the recording id and the session clock's epoch (written first)
    events.jsonl    the lesson's events, one JSON object per line, flushed per line
    tracks.jsonl    one line per track file, written when the file is opened
    tracks/<classroom>.<source>.<n>.mkv
    ended.json      written only when the capture ends cleanly (its absence means a crash)

Every packet's timestamp is milliseconds on the session clock (0 = ``session.json`` epoch), so
tracks line up across files without any other bookkeeping. The muxer keeps the open Matroska
cluster in memory and writes it (and flushes the file) when the cluster closes, every
``CLUSTER_MS``: a ``kill -9`` loses the open cluster and the frames still queued for the writer
thread (at most ``BATCH_S``), about 0.6 s, plus the first ``SETTLE_S`` of a track that had only
just started. Muxing runs on a writer thread; the event loop only queues frames.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.container import OutputContainer
from av.packet import Packet

from recorder import bitstream

logger = logging.getLogger(__name__)

MS = Fraction(1, 1000)
CLUSTER_MS = 500  # a crash loses at most the open cluster of each file (held in memory until it closes)
CLUSTER_BYTES = 256 * 1024  # ... or this much of it, whichever comes first
# How long aiortc's jitter buffer holds a frame before handing it over: audio waits for 4 more
# 20 ms packets, video for the first packet of the next frame. Subtracted from arrival times.
HOLD_S = {"audio": 0.080, "video": 0.033}
REANCHOR_S = 1.0  # arrival this far from the RTP-predicted time: the sender's clock jumped
OFFSET_WINDOW_S = 2.0
# A track's first frames often come in a burst (the sender's encoder starting up): they are
# held this long, until the clock has seen enough arrivals to place them right.
SETTLE_S = 0.5
BATCH_S = 0.1  # the writer thread writes what is queued this often


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1))
    os.replace(tmp, path)


class JsonLines:
    """An append-only JSON-lines file, flushed after every line (survives kill -9 of the writer)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, default=str)
        with self._lock:
            if self._file.closed:
                return
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


@dataclass
class CapturedFrame:
    """One encoded frame as the receiver handed it over, stamped with its arrival time."""

    key: str  # slot key, "<classroom>:<source>"
    codec: str  # "VP8", "H264", "opus", "PCMU", ...
    clock_rate: int
    data: bytes
    timestamp: int  # RTP timestamp, starting at 0 for this receiver
    arrival: float  # time.time() when the sink got it
    generation: int = 0  # bumped when the recorder reconnects (RTP timestamps restart)


class TrackClock:
    """Maps one receiver's RTP timestamps to seconds on the session clock.

    A frame's time is its RTP time plus an offset: the smallest (arrival - RTP time) seen over
    the last couple of seconds, less the jitter buffer's hold. The least-delayed frames thus
    pin the track to the wall clock, RTP timestamps keep the spacing exact, and a sender whose
    clock drifts (or falls behind) is followed. A jump of more than a second (the sender
    restarted, the source switched) starts afresh. Output is strictly increasing.
    """

    def __init__(self, kind: str, epoch: float, floor: float = -1.0) -> None:
        self.hold = HOLD_S.get(kind, 0.0)
        self.epoch = epoch
        self._offsets: deque[tuple[float, float]] = deque()  # (observed, arrival - RTP time)
        self._offset = 0.0
        self.last = floor

    def observe(self, timestamp: int, clock_rate: int, arrival: float) -> None:
        """Take a frame's arrival into account (without giving it a time yet)."""
        media = timestamp / clock_rate
        observed = arrival - self.epoch - self.hold
        offset = observed - media
        window = self._offsets  # ascending offsets: window[0] is the minimum (a monotonic queue)
        if window and abs(offset - self._offset) > REANCHOR_S:
            window.clear()
        while window and window[-1][1] >= offset:
            window.pop()
        window.append((observed, offset))
        while window[0][0] < observed - OFFSET_WINDOW_S:
            window.popleft()
        self._offset = window[0][1]

    def seconds(self, timestamp: int, clock_rate: int, arrival: float, *, observed: bool = False) -> float:
        if not observed:
            self.observe(timestamp, clock_rate, arrival)
        t = max(self._offset + timestamp / clock_rate, self.last + 0.001)
        self.last = t
        return t


@dataclass
class TrackInfo:
    file: str  # relative to the capture directory
    key: str
    classroom: str
    source: str
    kind: str
    codec: str
    opened_at: float

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class TrackFile:
    """One Matroska file holding one track's encoded frames, as they came."""

    def __init__(self, path: Path, codec: str, kind: str, clock_rate: int) -> None:
        self.path = path
        self.codec = codec
        self.kind = kind
        self.clock_rate = clock_rate
        self._container: OutputContainer | None = None
        self._stream: Any = None
        self.packets = 0
        self.last_ms = -1

    def _open(self, first: bytes) -> bool:
        name = self.codec.upper()
        kwargs: dict[str, Any] = {}
        if name == "VP8":
            size = bitstream.vp8_size(first)
            codec_name = "vp8"
        elif name == "H264":
            size = bitstream.h264_size(first)
            codec_name = "h264"
        elif name == "OPUS":
            size, codec_name = None, "opus"
            kwargs["rate"] = 48000
        elif name in ("PCMU", "PCMA"):
            size, codec_name = None, "pcm_s16le"
            kwargs["rate"] = self.clock_rate
        else:
            raise ValueError(f"cannot record codec {self.codec}")
        if self.kind == "video":
            if size is None:
                return False  # wait for a keyframe that tells the picture size
            kwargs["width"], kwargs["height"] = size
        self.path.parent.mkdir(parents=True, exist_ok=True)
        container = av.open(
            str(self.path), "w", format="matroska",
            options={"flush_packets": "1", "cluster_time_limit": str(CLUSTER_MS),
                     "cluster_size_limit": str(CLUSTER_BYTES)},
        )
        stream = container.add_mux_stream(codec_name, **kwargs)
        stream.time_base = MS
        self._container, self._stream = container, stream
        return True

    def write(self, t_ms: int, data: bytes) -> None:
        name = self.codec.upper()
        if name in ("PCMU", "PCMA"):
            data = bitstream.g711_to_pcm16(name, data)
        if self._container is None and not self._open(data):
            return
        if name == "VP8":
            keyframe = bitstream.vp8_is_keyframe(data)
        elif name == "H264":
            keyframe = bitstream.h264_is_keyframe(data)
        else:
            keyframe = True
        t_ms = max(t_ms, self.last_ms + 1)
        packet = Packet(data)
        packet.stream = self._stream
        packet.pts = packet.dts = t_ms
        packet.time_base = MS
        packet.is_keyframe = keyframe
        assert self._container is not None
        self._container.mux(packet)
        self.packets += 1
        self.last_ms = t_ms

    @property
    def opened(self) -> bool:
        return self._container is not None

    def close(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:
                logger.exception("closing %s", self.path)
            self._container = None


class TrackRecorder:
    """Everything recorded from one slot: a clock and one file per codec episode."""

    def __init__(self, capture_dir: Path, key: str, kind: str, epoch: float, index: JsonLines) -> None:
        self.capture_dir = capture_dir
        self.key = key
        self.classroom, self.source = key.split(":", 1)
        self.kind = kind
        self.clock = TrackClock(kind, epoch)
        self._index = index
        self._file: TrackFile | None = None
        self._episode = 0
        self._generation: int | None = None
        self._pending: list[CapturedFrame] = []  # held until the clock has settled
        self.frames = 0

    def write(self, frame: CapturedFrame) -> None:
        if frame.generation != self._generation:
            self._settle()
            self._generation = frame.generation
            self.clock = TrackClock(self.kind, self.clock.epoch, floor=self.clock.last)
            self._pending = [frame]
            return
        if self._pending:
            self._pending.append(frame)
            if frame.arrival - self._pending[0].arrival >= SETTLE_S:
                self._settle()
            return
        self._write(frame, self.clock.seconds(frame.timestamp, frame.clock_rate, frame.arrival))

    def _settle(self) -> None:
        pending, self._pending = self._pending, []
        for f in pending:
            self.clock.observe(f.timestamp, f.clock_rate, f.arrival)
        for f in pending:
            self._write(f, self.clock.seconds(f.timestamp, f.clock_rate, f.arrival, observed=True))

    def _write(self, frame: CapturedFrame, t: float) -> None:
        if self._file is None or self._file.codec != frame.codec:
            self._start_file(frame)
        assert self._file is not None
        was_open = self._file.opened
        self._file.write(round(t * 1000), frame.data)
        if self._file.opened and not was_open:
            rel = self._file.path.relative_to(self.capture_dir).as_posix()
            info = TrackInfo(rel, self.key, self.classroom, self.source, self.kind, frame.codec, frame.arrival)
            self._index.append(info.to_json())
        self.frames += 1

    def _start_file(self, frame: CapturedFrame) -> None:
        if self._file is not None:
            self._file.close()
        self._episode += 1
        name = f"{self.classroom}.{self.source}.{self._episode:02d}.mkv"
        self._file = TrackFile(self.capture_dir / "tracks" / name, frame.codec, self.kind, frame.clock_rate)

    def close(self) -> None:
        self._settle()
        if self._file is not None:
            self._file.close()


@dataclass
class CaptureStats:
    frames: int = 0
    bytes: int = 0
    errors: int = 0
    per_track: dict[str, int] = field(default_factory=dict)


class CaptureWriter:
    """A writer thread that muxes queued frames; the event loop only calls `put`."""

    def __init__(self, capture_dir: Path, epoch: float, kinds: dict[str, str]) -> None:
        self.capture_dir = capture_dir
        self.epoch = epoch
        self.kinds = kinds  # slot key -> "audio" | "video"
        self.stats = CaptureStats()
        self._index = JsonLines(capture_dir / "tracks.jsonl")
        self._tracks: dict[str, TrackRecorder] = {}
        self._queue: queue.SimpleQueue[CapturedFrame | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="recorder-writer", daemon=True)
        self._thread.start()

    def put(self, frame: CapturedFrame) -> None:
        self._queue.put(frame)

    def _run(self) -> None:
        running = True
        while running:
            # wake up a few times a second and write everything queued: one thread switch per
            # batch instead of one per frame (the event loop and this thread share the GIL)
            batch = [self._queue.get()]
            time.sleep(BATCH_S)
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(self._queue.get_nowait())
            for frame in batch:
                if frame is None:
                    running = False
                    break
                self._write(frame)
        for track in self._tracks.values():
            track.close()
        self._index.close()

    def _write(self, frame: CapturedFrame) -> None:
        try:
            track = self._tracks.get(frame.key)
            if track is None:
                kind = self.kinds.get(frame.key, "video")
                track = self._tracks[frame.key] = TrackRecorder(
                    self.capture_dir, frame.key, kind, self.epoch, self._index
                )
            track.write(frame)
            self.stats.frames += 1
            self.stats.bytes += len(frame.data)
            self.stats.per_track[frame.key] = track.frames
        except Exception:
            self.stats.errors += 1
            if self.stats.errors <= 5:
                logger.exception("recording a frame of %s failed", frame.key)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, finish every file (cues, durations) and stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

