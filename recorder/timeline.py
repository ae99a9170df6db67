"""Reading a capture directory back: the session clock, the events and every track's extent.

Times here are seconds on the archive's video timeline: 0 is the moment the lesson started
(the first classroom joined), the end is when the last one left — or, after a crash, the last
packet that reached the disk.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

logger = logging.getLogger(__name__)

SPAN_GAP_S = 3.0  # packets further apart than this split a track's presence into spans (a short freeze does not)


class CaptureError(Exception):
    """A capture directory that cannot be built (missing, or nothing was recorded)."""


@dataclass
class Event:
    t: float  # seconds on the video timeline
    wall: float  # unix time
    name: str
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        out = {"t": round(self.t, 3), "event": self.name}
        out.update({k: v for k, v in self.data.items() if k != "t"})
        return out


@dataclass
class TrackFile:
    """One captured Matroska file and what a scan of its packets found."""

    path: Path
    rel: str  # relative to the recording directory
    key: str
    classroom: str
    source: str
    kind: str
    codec: str
    width: int = 0
    height: int = 0
    start: float = 0.0  # video time of the first packet
    end: float = 0.0  # video time of the last packet
    packets: int = 0
    keyframes: list[tuple[float, int]] = field(default_factory=list)  # (video time, packet index)
    spans: list[tuple[float, float]] = field(default_factory=list)
    truncated: bool = False  # the scan stopped at damage (a crash's unfinished tail)

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.rel,
            "classroom": self.classroom,
            "source": self.source,
            "kind": self.kind,
            "codec": self.codec,
            "width": self.width or None,
            "height": self.height or None,
            "start_s": round(self.start, 3),
            "end_s": round(self.end, 3),
            "packets": self.packets,
            "keyframes": len(self.keyframes) if self.kind == "video" else None,
            "truncated": self.truncated,
        }


@dataclass
class Capture:
    directory: Path  # the recording directory
    recording_id: str
    lesson: dict[str, Any]
    epoch: float  # unix time of the session clock's 0 (track timestamps count from here)
    t0: float  # unix time of the video's 0
    end: float  # unix time of the video's end
    complete: bool  # ended cleanly (False: the server died while recording)
    end_reason: str
    events: list[Event]
    tracks: list[TrackFile]
    warnings: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.t0)

    @property
    def offset(self) -> float:
        """Add to a track timestamp (seconds on the session clock) to get video time."""
        return self.epoch - self.t0

    def classrooms(self) -> list[dict[str, Any]]:
        lesson = self.lesson
        out = [{**lesson["master"], "role": "master"}]
        out += [{**c, "role": "rural"} for c in lesson.get("rurals", [])]
        return out

    def name_of(self, classroom: str) -> str:
        for c in self.classrooms():
            if c["id"] == classroom:
                return str(c.get("name") or classroom)
        return classroom

    def tracks_of(self, classroom: str, source: str) -> list[TrackFile]:
        return sorted((t for t in self.tracks if t.classroom == classroom and t.source == source),
                      key=lambda t: t.start)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a crash
    return out


def scan_track(path: Path, offset: float, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """Packet times, keyframes and picture size of a track file, without decoding.

    With `previous` (this function's result for the same file, earlier, while it was being
    written) only what was added since is read: the demuxer seeks close to the previous end
    (in C, fast even without cues) and the packets up to it are skipped; if the seek lands past
    it, the whole file is read again."""
    if previous is not None and previous["packets"]:
        resumed = _scan(path, offset, previous)
        if resumed is not None:
            return resumed
    result = _scan(path, offset, None)
    assert result is not None
    return result


def _scan(path: Path, offset: float, previous: dict[str, Any] | None) -> dict[str, Any] | None:
    info: dict[str, Any] = {"packets": 0, "keyframes": [], "spans": [], "truncated": False, "width": 0,
                            "height": 0, "start": 0.0, "end": 0.0}
    spans: list[list[float]] = []
    index = 0
    last = -math.inf
    if previous is not None:
        info["keyframes"] = list(previous["keyframes"])
        spans = [[a, b] for a, b in previous["spans"]]
        index = int(previous["packets"])
        last = float(previous["end"])
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise CaptureError(f"{path.name}: unreadable ({exc})") from exc
    with container:
        stream: Any = container.streams[0]
        if stream.type == "video":
            info["width"], info["height"] = stream.codec_context.width, stream.codec_context.height
        tb = float(stream.time_base or 0.001)
        first = True
        try:
            if previous is not None:
                container.seek(max(0, int((last - offset - 2.0) / tb)), stream=stream, backward=True, any_frame=True)
            for packet in container.demux(stream):
                if packet.pts is None or packet.size == 0:
                    continue
                t = packet.pts * tb + offset
                if previous is not None:
                    if first and t > last + 1e-6:
                        return None  # the seek went too far: read it all
                    first = False
                    if t <= last + 1e-6:
                        continue
                if packet.is_keyframe:
                    info["keyframes"].append((t, index))
                if spans and t - spans[-1][1] <= SPAN_GAP_S:
                    spans[-1][1] = t
                else:
                    spans.append([t, t])
                index += 1
        except (av.FFmpegError, OSError, ValueError):
            info["truncated"] = True
        info["packets"] = index
        info["spans"] = [(a, b) for a, b in spans]
        if spans:
            info["start"], info["end"] = spans[0][0], spans[-1][1]
    return info


def load_capture(directory: Path, scans: dict[str, dict[str, Any]] | None = None) -> Capture:
    """Read ``<recording>/capture/`` (written live, possibly cut short by a crash).

    `scans` keeps each track file's scan between calls, so reading a capture that is still
    growing again only reads what was added (the chunk worker passes one per recording)."""
    capture_dir = directory / "capture"
    session_path = capture_dir / "session.json"
    if not session_path.exists():
        raise CaptureError(f"{directory}: no capture/session.json (not a recording directory)")
    session = json.loads(session_path.read_text(encoding="utf-8"))
    epoch = float(session["epoch"])
    raw_events = _read_jsonl(capture_dir / "events.jsonl")
    ended_path = capture_dir / "ended.json"
    ended = json.loads(ended_path.read_text(encoding="utf-8")) if ended_path.exists() else None

    # the video starts when the lesson does: the first classroom to join (or at once, if the
    # recorder came into a lesson already under way)
    state = next((e for e in raw_events if e.get("event") == "state"), {})
    joins = [float(e["t"]) for e in raw_events if e.get("event") == "classroom_joined"]
    already_live = bool(state.get("classrooms"))

    warnings: list[str] = []
    tracks: list[TrackFile] = []
    for entry in _read_jsonl(capture_dir / "tracks.jsonl"):
        path = capture_dir / entry["file"]
        if not path.exists():
            warnings.append(f"{entry['file']}: listed but missing")
            continue
        tracks.append(TrackFile(
            path=path, rel=path.relative_to(directory).as_posix(), key=entry["key"],
            classroom=entry["classroom"], source=entry["source"], kind=entry["kind"], codec=entry["codec"],
        ))
    # session-clock seconds first; converted to video time once t0 is known
    scanned: list[TrackFile] = []
    for track in tracks:
        try:
            info = scan_track(track.path, 0.0, scans.get(track.rel) if scans is not None else None)
            if scans is not None:
                scans[track.rel] = {**info, "keyframes": list(info["keyframes"]), "spans": list(info["spans"])}
        except CaptureError as exc:
            warnings.append(str(exc))
            continue
        if not info["packets"]:
            warnings.append(f"{track.rel}: no complete packet on disk")
            continue
        for k in ("width", "height", "start", "end", "packets", "keyframes", "spans", "truncated"):
            setattr(track, k, info[k])
        if track.truncated:
            warnings.append(f"{track.rel}: damaged tail (unfinished when recording stopped)")
        scanned.append(track)

    first_media = min((epoch + t.start for t in scanned), default=None)
    if already_live:
        t0 = epoch
    else:
        candidates = [x for x in (min(joins, default=None), first_media) if x is not None]
        if not candidates:
            raise CaptureError(f"{directory}: nothing was recorded (no classroom joined)")
        t0 = min(candidates)
    last_media = max((epoch + t.end for t in scanned), default=t0)
    if ended is not None:
        end = float(ended["ended_at"])
        reason = str(ended.get("reason", "ended"))
    else:
        # a crash: keep what reached the disk
        end = max([last_media, *[float(e["t"]) for e in raw_events if e.get("event") != "state"]])
        reason = "interrupted (the server stopped while recording)"
    offset = epoch - t0
    for track in scanned:
        track.start += offset
        track.end += offset
        track.keyframes = [(t + offset, i) for t, i in track.keyframes]
        track.spans = [(a + offset, b + offset) for a, b in track.spans]
    events = []
    for e in raw_events:
        name = e.get("event")
        if not isinstance(name, str) or name in ("state", "recording_stopped"):
            continue
        data = {k: v for k, v in e.items() if k not in ("t", "event")}
        events.append(Event(t=max(0.0, float(e["t"]) - t0), wall=float(e["t"]), name=name, data=data))
    return Capture(
        directory=directory, recording_id=str(session.get("recording", directory.name)),
        lesson=session["lesson"], epoch=epoch, t0=t0, end=max(end, t0), complete=ended is not None,
        end_reason=reason, events=events, tracks=scanned, warnings=warnings,
    )


def initial_state(directory: Path) -> dict[str, Any]:
    """The room state the recorder found when it joined (floor, courseware, who was there)."""
    for e in _read_jsonl(directory / "capture" / "events.jsonl"):
        if e.get("event") == "state":
            return e
    return {}
