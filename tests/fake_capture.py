"""A capture directory as the recorder's live capture leaves it, from frames a test encoded (imported as
`fake_capture`; used by the recorder tests' synthetic lessons and the lesson-study archive).

The media go through the recorder's own `CaptureWriter` and the events through its `JsonLines`,
so the files on disk are exactly what a live capture writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recorder.capture import CapturedFrame, CaptureWriter, JsonLines, write_json_atomic

Timeline = list[tuple[float, str, dict[str, Any]]]  # (seconds after the epoch, event name, its fields)


def write_capture_dir(directory: Path, *, lesson: dict[str, Any], epoch: float, timeline: Timeline,
                      kinds: dict[str, str], frames: list[CapturedFrame], ended_at: float | None) -> Path:
    """Write ``directory/capture`` and return it: session.json, events.jsonl (the opening "state" line,
    then `timeline` in time order), the `frames` in arrival order (`kinds`: slot key -> "audio" |
    "video"), and ended.json at the unix time `ended_at` (None: a capture that was cut off)."""
    capture = directory / "capture"
    capture.mkdir(parents=True, exist_ok=True)
    write_json_atomic(capture / "session.json", {"format": "twinclass-capture/1", "recording": directory.name,
                                                 "epoch": epoch, "lesson": lesson})
    events = JsonLines(capture / "events.jsonl")
    events.append({"t": epoch, "event": "state", "classrooms": [], "floor": None, "courseware": False})
    for t, name, data in sorted(timeline, key=lambda x: x[0]):
        events.append({"t": epoch + t, "event": name, **data})
    events.close()
    writer = CaptureWriter(capture, epoch, kinds)
    for frame in sorted(frames, key=lambda f: f.arrival):
        writer.put(frame)
    writer.close()
    if ended_at is not None:
        write_json_atomic(capture / "ended.json", {"ended_at": ended_at, "reason": "lesson ended"})
    return capture
