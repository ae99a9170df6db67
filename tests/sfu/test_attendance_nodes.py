"""Attendance in a cluster (sfu.store.AttendanceLog): each row names its node, and a node that starts or
stops closes only its own open rows; a database from before the `node` column is migrated in place,
its rows kept."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from sfu.store import AttendanceLog, add_missing_columns, make_engine, sqlite_url

T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def open_rows(log: AttendanceLog) -> list[tuple[str, object]]:
    return sorted((str(r["classroom"]), r["node"]) for r in log.rows() if r["left_at"] is None)


def test_a_node_closes_only_its_own_rows(tmp_path: Path) -> None:
    engine = make_engine(sqlite_url(tmp_path))
    a = AttendanceLog(engine, node="http://10.0.0.1:8080", shared=True)
    b = AttendanceLog(engine, node="http://[fd00::2]:8080", shared=True)
    a.opened("demo", "master", "master", "主讲", T0)
    b.opened("other", "rural-1", "rural", "教学点", T0)
    # node A restarts after a crash: its own row is closed, node B's classroom is still connected
    assert a.close_open(T0 + timedelta(minutes=5), "server restarted") == 1
    assert open_rows(a) == [("rural-1", "http://[fd00::2]:8080")]
    closed = next(r for r in a.rows() if r["classroom"] == "master")
    assert closed["reason"] == "server restarted" and closed["node"] == "http://10.0.0.1:8080"
    # a single node (no cluster) is the only writer: it closes whatever was left open
    single = AttendanceLog(engine, node="http://127.0.0.1:8080")
    assert single.close_open(T0 + timedelta(minutes=6), "server restarted") == 1
    assert open_rows(single) == []
    with pytest.raises(ValueError, match="node"):
        AttendanceLog(engine, shared=True)


def test_an_older_database_gains_the_node_column_and_keeps_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "twinclass.db"
    with sqlite3.connect(db) as conn:  # the table as the previous release made it
        conn.execute("CREATE TABLE attendance (id INTEGER PRIMARY KEY AUTOINCREMENT, lesson_id VARCHAR(64) NOT NULL,"
                     " classroom VARCHAR(64) NOT NULL, role VARCHAR(16) NOT NULL, name TEXT NOT NULL,"
                     " joined_at DATETIME NOT NULL, left_at DATETIME, reason TEXT)")
        conn.execute("INSERT INTO attendance (lesson_id, classroom, role, name, joined_at, left_at, reason) VALUES"
                     " ('demo', 'rural-2', 'rural', '河西', '2026-11-30 08:00:00', '2026-11-30 08:40:00', 'left'),"
                     " ('demo', 'master', 'master', '主讲', '2026-12-01 08:00:00', NULL, NULL)")
    engine = make_engine(sqlite_url(tmp_path))  # migrates
    assert "node" in {c["name"] for c in sa.inspect(engine).get_columns("attendance")}
    assert add_missing_columns(engine) == []  # once only
    node = AttendanceLog(engine, node="http://10.0.0.1:8080", shared=True)
    rows = node.rows()
    assert [(r["classroom"], r["reason"], r["node"]) for r in rows] == [("rural-2", "left", None),
                                                                      ("master", None, None)]
    node.opened("demo", "rural-1", "rural", "山口", T0)
    # in a cluster a row from before is nobody's to close (it may be another node's, still live)
    assert node.close_open(T0, "server stopped") == 1
    assert open_rows(node) == [("master", None)]
    assert AttendanceLog(engine, node="http://127.0.0.1:8080").close_open(T0, "server restarted") == 1
