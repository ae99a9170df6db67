"""The fuzz suite's one server and its real lesson (session-wide).

Every test here runs its inputs against the same `twinclass serve` process while the demo
lesson's master and rural-1 terminals decode each other; each test then asserts that the lesson
kept its frame rate with no decode error and that the server let go of everything it made
(`fuzz_suite.Rig.finish`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fuzz_rig import LessonWatch, LoopThread
from fuzz_suite import Rig
from harness import mint_token, start_server


@pytest.fixture(scope="session")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    workdir = tmp_path_factory.mktemp("fuzz")
    with start_server(workdir / "var") as server:
        lesson = LessonWatch(server, workdir)
        loop = LoopThread()
        try:
            lesson.wait_running()
            yield Rig(server, lesson, loop, mint_token(server, role="admin"))
        finally:
            loop.stop()
            lesson.stop()
