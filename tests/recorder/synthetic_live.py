"""A synthetic capture written as the lesson goes: frames reach the recorder's own writer in
arrival order up to a moment of lesson time, then the test looks at what the chunk worker does."""

from __future__ import annotations

import time
from pathlib import Path

from synthetic import LESSON, CaptureParts

from recorder.capture import CaptureWriter, JsonLines, write_json_atomic


class LiveCapture:
    def __init__(self, directory: Path, parts: CaptureParts) -> None:
        self.parts = parts
        self.capture = directory / "capture"
        self.capture.mkdir(parents=True, exist_ok=True)
        epoch = parts.epoch
        write_json_atomic(self.capture / "session.json", {"format": "twinclass-capture/1",
                                                          "recording": directory.name, "epoch": epoch,
                                                          "lesson": LESSON})
        self.events = JsonLines(self.capture / "events.jsonl")
        self.events.append({"t": epoch, "event": "state", "classrooms": [], "floor": None, "courseware": False})
        self._timeline = sorted(parts.timeline, key=lambda x: x[0])
        self._frames = sorted(parts.frames, key=lambda f: f.arrival)
        self.writer = CaptureWriter(self.capture, epoch, parts.kinds)
        self.now = 0.0

    def advance(self, t: float) -> None:
        """The lesson reaches `t` seconds: its events and frames so far go to the writer."""
        epoch = self.parts.epoch
        while self._timeline and self._timeline[0][0] <= t:
            at, name, data = self._timeline.pop(0)
            self.events.append({"t": epoch + at, "event": name, **data})
        while self._frames and self._frames[0].arrival <= epoch + t:
            self.writer.put(self._frames.pop(0))
        self.now = t
        time.sleep(0.3)  # the writer thread writes what is queued every 0.1 s

    def finish(self) -> None:
        self.advance(self.parts.end_t + 1)
        self.writer.close()
        self.events.close()
        write_json_atomic(self.capture / "ended.json", {"ended_at": self.parts.epoch + self.parts.end_t,
                                                        "reason": "lesson ended"})
