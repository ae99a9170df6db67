"""Fixtures: a real `twinclass serve` process per test and classroom processes (see harness.py)."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import ClassroomLauncher, RedisProcess, ServerProcess, start_redis, start_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with start_server(tmp_path / "var") as srv:
        yield srv


@pytest.fixture
def classrooms(server: ServerProcess, tmp_path: Path) -> Iterator[ClassroomLauncher]:
    with ClassroomLauncher(server, tmp_path) as launcher:
        yield launcher


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    with start_redis(tmp_path) as proc:
        yield proc


def _leftover_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """A test that leaves a non-daemon thread running (an aiortc receiver nobody stopped keeps its
    decoder thread) would hang the interpreter's exit after the last test, and CI with it: name
    the threads and end the run as failed instead."""
    deadline = time.monotonic() + 10
    while _leftover_threads() and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _leftover_threads()
    if left:
        print(f"\nFAILED: threads left running after the tests: {sorted(t.name for t in left)}", file=sys.stderr,
              flush=True)
        sys.stdout.flush()
        os._exit(3)
