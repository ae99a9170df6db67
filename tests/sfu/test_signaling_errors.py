"""Signaling's safety net, in process: a handler that fails in an unexpected way (aiortc, aioice,
the database) still answers, tells the client why, and closes that session only; the lesson store
and attendance log are used off the event loop.

Socket.io itself is replaced by a recorder of what the server would send; the store, attendance
log, tokens and rooms are the real ones. (tests/e2e/test_lesson_core.py does the same through a
real server with real clients.)
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, cast

import pytest

from sfu.lessons import Classroom, Lesson
from sfu.room import LessonRoom, RoomDirectory
from sfu.signaling import Signaling
from sfu.store import AttendanceLog, LessonStore, make_engine, sqlite_url
from sfu.tokens import TokenIssuer


class FakeSocketIO:
    """What Signaling calls on a python-socketio AsyncServer, recorded."""

    def __init__(self) -> None:
        self.handlers: dict[str, Any] = {}
        self.emitted: list[tuple[str, Any, str | None]] = []
        self.disconnected: list[str] = []

    def on(self, event: str, handler: Any) -> None:
        self.handlers[event] = handler

    async def emit(self, event: str, data: Any, to: str | None = None, room: str | None = None) -> None:
        self.emitted.append((event, data, to or room))

    async def enter_room(self, sid: str, room: str) -> None:
        return None

    async def disconnect(self, sid: str) -> None:
        self.disconnected.append(sid)


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        engine = make_engine(sqlite_url(tmp_path))
        self.store = LessonStore(engine)
        self.attendance = AttendanceLog(engine)
        self.tokens = TokenIssuer("a-test-secret-that-is-at-least-32-bytes-long")
        self.rooms = RoomDirectory([])
        self.sio = FakeSocketIO()
        self.signaling = Signaling(cast(Any, self.sio), self.store, self.tokens, self.rooms,
                                   attendance=self.attendance)
        self.store.create(Lesson(id="demo", title="t", subject="s", grade="4", master=Classroom("master", "M"),
                                 rurals=[Classroom("rural-1", "R1"), Classroom("rural-2", "R2")]))

    async def join(self, sid: str, classroom: str, role: str) -> dict[str, Any]:
        token = self.tokens.mint(lesson="demo", classroom=classroom, name=classroom, role=role)
        reply: dict[str, Any] = await self.sio.handlers["join"](sid, {"token": token})
        return reply

    def errors_to(self, sid: str) -> list[Any]:
        return [data for event, data, to in self.sio.emitted if event == "error" and to == sid]


async def test_an_unexpected_failure_in_a_handler_answers_and_closes_only_that_session(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = Setup(tmp_path)
    assert (await s.join("sid-master", "master", "master"))["ok"]
    assert (await s.join("sid-rural", "rural-1", "rural"))["ok"]
    room = s.rooms.get("demo")
    assert room is not None

    async def explode(self: LessonRoom, sid: str, **options: Any) -> Any:
        raise RuntimeError("the peer connection broke\nsecond line")

    monkeypatch.setattr(LessonRoom, "subscribe", explode)
    reply = await asyncio.wait_for(s.sio.handlers["subscribe"]("sid-rural", {}), 5)
    assert reply["ok"] is False and reply["error"]["code"] == "server_error"
    message = reply["error"]["message"]
    assert message == "subscribe: the server could not handle this message (RuntimeError: the peer connection broke)"
    assert s.errors_to("sid-rural") == [reply["error"]]
    assert "sid-rural" not in s.signaling.sessions and "sid-rural" not in room.participants
    await asyncio.sleep(0.4)
    assert s.sio.disconnected == ["sid-rural"]
    # the other classroom is untouched; the closed session's attendance is closed with the reason
    assert "sid-master" in s.signaling.sessions and "sid-master" in room.participants
    rows = {r["classroom"]: r for r in s.attendance.rows(lesson_id="demo")}
    assert rows["rural-1"]["left_at"] is not None and "could not handle" in str(rows["rural-1"]["reason"])
    assert rows["master"]["left_at"] is None


async def test_a_join_the_database_fails_on_is_answered_and_closed(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    admin = s.tokens.mint_admin("admin")
    # a lone surrogate (valid JSON, "\ud800") cannot be encoded for SQLite: a real database error
    reply = await asyncio.wait_for(s.sio.handlers["join"]("sid-x", {"token": admin, "lesson": "\ud800"}), 5)
    assert reply["ok"] is False and reply["error"]["code"] == "server_error"
    assert reply["error"]["message"].startswith("join: the server could not handle this message (")
    assert s.errors_to("sid-x") == [reply["error"]]
    await asyncio.sleep(0.4)
    assert s.sio.disconnected == ["sid-x"]
    assert s.signaling.sessions == {} and s.rooms.rooms == {}


async def test_the_store_and_attendance_are_used_off_the_event_loop(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    s = Setup(tmp_path)
    threads: dict[str, list[str]] = {"get": [], "opened": [], "closed": []}
    for obj, name in ((s.store, "get"), (s.attendance, "opened"), (s.attendance, "closed")):
        real = getattr(obj, name)

        def wrapper(*args: Any, real: Any = real, name: str = name) -> Any:
            threads[name].append(threading.current_thread().name)
            return real(*args)

        monkeypatch.setattr(obj, name, wrapper)
    loop_thread = threading.current_thread().name
    replies = await asyncio.gather(s.join("a", "master", "master"), s.join("b", "rural-1", "rural"),
                                   s.join("c", "rural-2", "rural"))
    assert all(r["ok"] for r in replies)
    await s.sio.handlers["leave"]("b", {})
    await s.signaling._on_disconnect("c")
    assert len(threads["get"]) == 3 and len(threads["opened"]) == 3 and len(threads["closed"]) == 2
    assert loop_thread not in {t for names in threads.values() for t in names}, threads
    rows = {r["classroom"]: r for r in s.attendance.rows(lesson_id="demo")}
    assert rows["rural-1"]["reason"] == "left" and rows["rural-2"]["reason"] == "disconnected"
    assert rows["master"]["left_at"] is None


async def test_a_session_that_ends_while_its_attendance_is_written_leaves_no_open_row(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = Setup(tmp_path)
    real_opened = s.attendance.opened
    started = threading.Event()
    release = threading.Event()

    def slow_opened(*args: Any) -> int:
        started.set()
        release.wait(5)
        return real_opened(*args)

    monkeypatch.setattr(s.attendance, "opened", slow_opened)
    join = asyncio.ensure_future(s.join("a", "rural-1", "rural"))
    await asyncio.to_thread(started.wait, 5)
    await s.signaling._on_disconnect("a")  # the socket goes away mid-join
    release.set()
    await asyncio.wait_for(join, 5)
    rows = s.attendance.rows(lesson_id="demo")
    assert len(rows) == 1 and rows[0]["left_at"] is not None, rows
