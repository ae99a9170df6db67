"""Fixtures: a real `twinclass serve` process per test and classroom processes (see harness.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import ClassroomLauncher, RedisProcess, ServerProcess, start_redis, start_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = start_server(tmp_path / "var")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def classrooms(server: ServerProcess, tmp_path: Path) -> Iterator[ClassroomLauncher]:
    launcher = ClassroomLauncher(server, tmp_path)
    try:
        yield launcher
    finally:
        launcher.stop_all()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    proc = start_redis(tmp_path)
    try:
        yield proc
    finally:
        proc.stop()
