"""The fuzz suite's settings and its verdict on a run (imported as `fuzz_suite` by tests/fuzz/).

`TWINCLASS_FUZZ_EXAMPLES=N` runs N inputs per target instead of each test's own bound.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fuzz_rig import FuzzFailure, LessonWatch, LoopThread, debug_counts, healthy, wait_clean
from harness import ServerProcess
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase, ReadOnlyDatabase

CORPUS = Path(__file__).resolve().parent / "corpus"
SEED = 20261202  # fixed: CI tries the same inputs every run (the corpus replays saved failures first)


def fuzz_settings(examples: int) -> settings:
    count = int(os.environ.get("TWINCLASS_FUZZ_EXAMPLES", examples))
    return settings(max_examples=count, deadline=None, database=ReadOnlyDatabase(DirectoryBasedExampleDatabase(CORPUS)),
                    suppress_health_check=list(HealthCheck), print_blob=True)


@dataclass
class Rig:
    server: ServerProcess
    lesson: LessonWatch
    loop: LoopThread
    admin: str

    def begin(self) -> tuple[float, dict[str, Any]]:
        healthy(self.server)
        return time.monotonic(), debug_counts(self.server, self.admin)

    def finish(self, started: float, baseline: dict[str, Any]) -> None:
        """The run's verdict on the lesson and the server (AssertionError with every problem)."""
        window = self.lesson.window(started)
        problems = window.problems() + self.lesson.still_running()
        healthy(self.server)
        try:
            wait_clean(self.server, self.admin, baseline)
        except FuzzFailure as exc:
            problems.append(str(exc))
        print(f"lesson during the run: {window}")
        assert not problems, problems
