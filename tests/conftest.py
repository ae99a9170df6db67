"""Fixtures: a real `twinclass serve` process per test and classroom processes (see harness.py)."""

from __future__ import annotations

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
