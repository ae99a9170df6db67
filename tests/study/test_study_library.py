"""The classroom-analysis poll: one query finds what is due, and an archive is looked at on disk
only when its catalog row or its analysis changed (or a reader asked for it)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

import web.study.library as library_module
from recorder.catalog import Recording, RecordingCatalog
from sfu.store import LessonStore, make_engine, sqlite_url
from web.study.directory import Directory
from web.study.library import AnalysisRunner, RecordingLibrary


def test_the_poll_finds_due_archives_in_one_query_and_stats_only_what_changed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine(sqlite_url(tmp_path))
    library = RecordingLibrary(engine, LessonStore(engine), tmp_path, Directory(tmp_path))
    runner = AnalysisRunner(engine, library, poll_s=10, nice=10)
    catalog = RecordingCatalog(engine)
    started = datetime.now(UTC).replace(tzinfo=None)

    def add(rid: str, status: str, file: str | None) -> Recording:
        directory = tmp_path / "recordings" / rid
        (directory / "capture").mkdir(parents=True)
        if file:
            (directory / file).write_text(json.dumps({"v": 1}))
        record = Recording(id=rid, lesson_id="L", started_at=started, directory=rid, status=status)
        catalog.save(record)
        return record

    captured = add("a-captured", "captured", "capture/ended.json")
    ready = add("b-ready", "ready", "manifest.json")
    add("c-recording", "recording", "capture/ended.json")  # still being recorded: not yet
    add("d-crashed", "captured", None)  # nothing to analyse on disk

    stats: list[Path] = []
    real_stamp = library_module.archive_stamp

    def counting_stamp(directory: Path) -> str | None:
        stats.append(directory)
        return real_stamp(directory)

    monkeypatch.setattr(library_module, "archive_stamp", counting_stamp)

    def due() -> list[str]:
        stats.clear()
        return sorted(r.id for r, _stamp in runner.due_list())

    assert due() == ["a-captured", "b-ready"]
    for record, stamp in runner.due_list():
        runner._store(record.id, stamp, "ready", "{}", None, 0.1)
    assert due() == [] and len(stats) == 2, "the two just analysed are checked once more"
    assert due() == [] and stats == [], "nothing changed: no archive is looked at on disk"

    # the archive is rebuilt: the catalog row changes, so that recording (only) is looked at again
    (tmp_path / "recordings" / "b-ready" / "manifest.json").write_text(json.dumps({"v": 2, "rebuilt": True}))
    catalog.save(ready)
    assert due() == ["b-ready"] and len(stats) == 1

    # a file changed behind the catalog's back: a reader asking for the analysis gets it redone
    (tmp_path / "recordings" / "a-captured" / "capture" / "ended.json").write_text(json.dumps({"v": 2, "x": 1}))
    assert due() == ["b-ready"]
    assert runner.state(captured)["status"] == "pending"
    assert due() == ["a-captured", "b-ready"]

    # the pass itself runs off the event loop
    monkeypatch.setattr(runner, "analyse", _no_analysis)
    assert asyncio.run(runner.run_once()) == 2


async def _no_analysis(record: Recording, stamp: str) -> None:
    return None
