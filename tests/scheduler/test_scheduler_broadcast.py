"""A master class the timetable marks as a broadcast (名师课堂): `schedule apply` creates a broadcast
lesson in the real lesson store, with listener tokens for its listening classrooms (听课教室)."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

from scheduler.apply import apply_week
from scheduler.inputs import load_problem
from scheduler.pipeline import make_timetable
from scheduler.solver import SolveOptions
from sfu.lessons import BROADCAST, TWINNING
from sfu.store import LessonStore, make_engine
from sfu.tokens import Role, TokenIssuer
from twinclass.lesson_port import StoreLessonPort

EXAMPLES = Path(__file__).resolve().parents[2] / "scheduler" / "examples"
SECRET = "bureau-secret-for-the-lesson-server-0123"


def test_a_broadcast_class_becomes_a_broadcast_lesson_with_listener_tokens(tmp_path: Path) -> None:
    data = json.loads((EXAMPLES / "small.json").read_text(encoding="utf-8"))
    music = next(c for c in data["classes"] if c["id"] == "mu3-fri")
    music.update(kind="名师课堂", listeners="hexi-g4, shanling-g12")  # the Chinese name works as well
    source = tmp_path / "broadcast.json"
    source.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    tt = make_timetable(load_problem(source), SolveOptions(time_limit_s=10, workers=2))
    store = LessonStore(make_engine(f"sqlite:///{tmp_path / 'lessons.db'}"))
    tokens = TokenIssuer(SECRET)
    port = StoreLessonPort(store, tokens)
    now = datetime.fromisoformat("2025-09-01T00:00:00+08:00")

    applied = {a.id: a for a in apply_week(tt, date(2025, 9, 1), port, now=now)}
    friday = applied["tt-20250905-mu3-fri"]
    assert friday.created and not friday.error
    stored = store.get(friday.id)
    assert stored is not None and stored.kind == BROADCAST and "名师课堂" in stored.title
    assert [r.id for r in stored.rurals] == ["hexi-g3"]  # the classroom the solver gave it still interacts
    roles = {classroom: tokens.verify(token) for classroom, token in friday.tokens.items()}
    assert {c: str(claims.role) for c, claims in roles.items()} == {
        "t-li": "master", "hexi-g3": "rural", "hexi-g4": "listener", "shanling-g12": "listener"}
    assert all(c.lesson == friday.id and c.classroom == k for k, c in roles.items())
    assert roles["hexi-g4"].role == Role.LISTENER
    assert all(store.get(a.id).kind == TWINNING for a in applied.values() if a.id != friday.id)  # type: ignore[union-attr]

    # applied again: nothing changes; the class turned back into a twinning class: the lesson follows
    again = {a.id: a for a in apply_week(tt, date(2025, 9, 1), port, now=now)}
    assert again[friday.id].state == "already exists"
    music.update(kind="twinning", listeners="")
    source.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    plain = make_timetable(load_problem(source), SolveOptions(time_limit_s=10, workers=2))
    back = {a.id: a for a in apply_week(plain, date(2025, 9, 1), port, now=now)}[friday.id]
    assert back.updated and "kind broadcast → twinning" in back.changes
    assert store.get(friday.id).kind == TWINNING  # type: ignore[union-attr]
    assert set(back.tokens) == {"t-li", "hexi-g3"}
