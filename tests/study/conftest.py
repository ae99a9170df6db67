"""Fixtures for the lesson-study tests: a lesson server with a built recording, and Chromium."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
import study_archive
import study_speech
from browser import CHROMIUM, FLAGS, launch_chromium
from harness import ClassroomLauncher, ServerProcess, start_server
from playwright.sync_api import Browser
from study_archive import ARCHIVE_ID
from study_pages import Pages


@pytest.fixture(scope="session")
def built_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 30-s recorded lesson, built once: master speaks ~70 %, 山口教学点 ~30 %, a hand raised at 8 s
    and answered at 12 s, the floor taken back at 20 s, courseware shown from 22 s."""
    if not study_speech.espeak_available():
        pytest.skip("espeak-ng is not installed")
    root = tmp_path_factory.mktemp("archive")
    master, rural = study_speech.seventy_thirty(root / "speech", duration=30.0, block=15.0)
    directory = root / ARCHIVE_ID
    directory.mkdir()
    study_archive.write_capture(directory, {"master": master.pcm, "rural-1": rural.pcm}, [
        (8.0, "hand_raised", {"classroom": "rural-1", "name": "山口教学点"}),
        (12.0, "floor", {"classroom": "rural-1", "by": "master"}),
        (20.0, "floor", {"classroom": None, "by": "master", "previous": "rural-1"}),
        (22.0, "courseware", {"on": True, "classroom": "master"}),
    ])
    study_archive.build(directory)
    return directory


@pytest.fixture
def study_server(tmp_path: Path, built_archive: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerProcess]:
    """A lesson server whose recordings library holds `built_archive`; the recorder records nothing."""
    monkeypatch.setenv("TWINCLASS_RECORDER", "0")
    monkeypatch.setenv("TWINCLASS_ANALYSIS_POLL_S", "1")
    data_dir = tmp_path / "var"
    target = data_dir / "recordings" / built_archive.name
    shutil.copytree(built_archive, target)
    with start_server(data_dir) as srv:
        study_archive.register(data_dir, target)
        yield srv


@pytest.fixture
def live_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerProcess]:
    """A lesson server for live lessons; the recorder records nothing (fewer processes on two cores)."""
    monkeypatch.setenv("TWINCLASS_RECORDER", "0")
    with start_server(tmp_path / "var") as srv:
        yield srv


@pytest.fixture
def launcher(live_server: ServerProcess, tmp_path: Path) -> Iterator[ClassroomLauncher]:
    with ClassroomLauncher(live_server, tmp_path) as started:
        yield started


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Debian's chromium (flags as the lesson-page tests use them, without the fake camera)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (the tests need a real browser)")
    with launch_chromium(FLAGS) as browser:
        yield browser


@pytest.fixture
def pages(chromium: Browser, request: pytest.FixtureRequest) -> Iterator[Pages]:
    with closing(Pages(chromium, request.node.name)) as opened:
        yield opened
