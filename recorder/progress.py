"""Progress of a build's worker processes, as small files the build polls (no IPC to hang on)."""

from __future__ import annotations

import os
import time
from pathlib import Path

REPORT_EVERY_S = 0.25


class ProgressFile:
    """A worker's running total of work done (frames, seconds of audio...), rewritten atomically."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.done = 0.0
        self._written_at = 0.0

    def add(self, amount: float, flush: bool = False) -> None:
        self.done += amount
        if flush or time.monotonic() - self._written_at >= REPORT_EVERY_S:
            self.flush()

    def flush(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(f"{self.done:.3f}")
        os.replace(tmp, self.path)
        self._written_at = time.monotonic()


def read_progress(path: Path) -> float:
    try:
        return float(path.read_text() or 0)
    except (OSError, ValueError):
        return 0.0
