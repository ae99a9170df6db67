"""Durable lesson metadata in SQL (SQLite under the data dir by default; PostgreSQL by URL)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from sfu.lessons import TWINNING, Classroom, Lesson, LessonError, LessonExists

metadata = sa.MetaData()
_IN_CHUNK = 500  # ids per `IN (...)`: well under any database's limit on bound parameters
Lessons = list[Lesson]  # (in LessonStore, `list` is a method)

lessons_table = sa.Table(
    "lessons",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("subject", sa.Text, nullable=False, default=""),
    sa.Column("grade", sa.Text, nullable=False, default=""),
    sa.Column("master", sa.Text, nullable=False),  # JSON classroom
    sa.Column("rurals", sa.Text, nullable=False),  # JSON list of classrooms
    sa.Column("planned_start", sa.DateTime, nullable=True),
    sa.Column("planned_end", sa.DateTime, nullable=True),
    sa.Column("rural_see_each_other", sa.Boolean, nullable=False, default=False),
    sa.Column("record", sa.Boolean, nullable=False, default=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("extra", sa.Text, nullable=False, default="{}"),
    sa.Column("kind", sa.String(16), nullable=True),  # "twinning" | "broadcast" (NULL: rows from before: twinning)
)


attendance_table = sa.Table(
    "attendance",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("lesson_id", sa.String(64), nullable=False, index=True),
    sa.Column("classroom", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("name", sa.Text, nullable=False, default=""),
    sa.Column("joined_at", sa.DateTime, nullable=False),  # UTC
    sa.Column("left_at", sa.DateTime, nullable=True),  # NULL while connected (or if the server died)
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("node", sa.Text, nullable=True),  # the node's URL that served the session (NULL: rows from before)
)

# Columns added to a table after its first release: (table, column DDL). `make_engine` adds those
# an existing database lacks; the rows already there keep their data (the new column is NULL).
_ADDED_COLUMNS = [(attendance_table, "node TEXT"), (lessons_table, "kind VARCHAR(16)")]


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'twinclass.db').resolve()}"


def make_engine(url: str) -> sa.Engine:
    """The engine for a database URL. Its connections are used from worker threads (signaling runs
    the store through asyncio.to_thread): fine for a SQLite file (QueuePool, check_same_thread off)
    and PostgreSQL; not for ``sqlite://`` in memory, where each thread would see its own database."""
    engine = sa.create_engine(url, future=True)
    metadata.create_all(engine)
    add_missing_columns(engine)
    return engine


def add_missing_columns(engine: sa.Engine) -> list[str]:
    """Migrate an older database in place: `ALTER TABLE ... ADD COLUMN` for each column it lacks
    (SQLite and PostgreSQL alike). Returns `table.column` of those added. Two nodes starting at once
    may race: a column the other one added meanwhile counts as there."""
    added = []
    for table, ddl in _ADDED_COLUMNS:
        column = ddl.split()[0]
        if column in {c["name"] for c in sa.inspect(engine).get_columns(table.name)}:
            continue
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {ddl}"))
        except sa.exc.DBAPIError:
            if column not in {c["name"] for c in sa.inspect(engine).get_columns(table.name)}:
                raise
            continue
        added.append(f"{table.name}.{column}")
    return added


class LessonStore:
    """Create, read and list lessons. Synchronous: the event loop calls it through asyncio.to_thread.

    Safe from worker threads: each call checks a connection out of the engine's pool (for a SQLite
    file SQLAlchemy uses a QueuePool with check_same_thread=False; PostgreSQL pools are thread-safe).
    """

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        metadata.create_all(engine)

    def create(self, lesson: Lesson) -> Lesson:
        lesson.validate()
        if self.get(lesson.id) is not None:
            raise LessonExists(lesson.id)
        lesson.created_at = lesson.created_at or datetime.now(UTC).replace(tzinfo=None)
        with self._engine.begin() as conn:
            conn.execute(
                lessons_table.insert().values(id=lesson.id, created_at=lesson.created_at, **_definition(lesson))
            )
        return lesson

    def update(self, lesson: Lesson) -> Lesson:
        """Replace a stored lesson's definition (classrooms, times, title…); its id and creation
        time stay. Raises LessonError when no lesson has this id."""
        lesson.validate()
        with self._engine.begin() as conn:
            res = conn.execute(
                lessons_table.update().where(lessons_table.c.id == lesson.id).values(**_definition(lesson))
            )
        if res.rowcount == 0:
            raise LessonError(f"id: no lesson {lesson.id!r}")
        return self.get(lesson.id) or lesson

    def get(self, lesson_id: str) -> Lesson | None:
        with self._engine.connect() as conn:
            row = conn.execute(lessons_table.select().where(lessons_table.c.id == lesson_id)).first()
        return _row_to_lesson(row) if row is not None else None

    def list(self, *, limit: int = 500) -> list[Lesson]:
        q = lessons_table.select().order_by(lessons_table.c.created_at.desc()).limit(limit)
        with self._engine.connect() as conn:
            return [_row_to_lesson(r) for r in conn.execute(q)]

    def delete(self, lesson_id: str) -> bool:
        with self._engine.begin() as conn:
            res = conn.execute(lessons_table.delete().where(lessons_table.c.id == lesson_id))
        return res.rowcount > 0

    def get_many(self, lesson_ids: Iterable[str]) -> Lessons:
        """The stored lessons among these ids (any order; unknown ids are left out)."""
        ids = list(dict.fromkeys(lesson_ids))
        out: Lessons = []
        for i in range(0, len(ids), _IN_CHUNK):
            q = lessons_table.select().where(lessons_table.c.id.in_(ids[i:i + _IN_CHUNK]))
            with self._engine.connect() as conn:
                out += [_row_to_lesson(r) for r in conn.execute(q)]
        return out

    def planned_between(self, since: datetime, until: datetime) -> Lessons:
        """Lessons whose planned start is in [since, until) (server-local times), by planned start."""
        t = lessons_table
        q = (t.select().where(t.c.planned_start >= _local_naive(since), t.c.planned_start < _local_naive(until))
             .order_by(t.c.planned_start, t.c.id))
        with self._engine.connect() as conn:
            return [_row_to_lesson(r) for r in conn.execute(q)]

    def planned_at(self, at: datetime, *, open_end_s: float = 0.0) -> Lessons:
        """Lessons planned to be on at `at`: planned_start <= at < planned_end (server-local times);
        a lesson without a planned end counts as on for `open_end_s` after its start."""
        t = lessons_table
        now = _local_naive(at)
        assert now is not None
        ends = sa.or_(t.c.planned_end > now,
                      sa.and_(t.c.planned_end.is_(None), t.c.planned_start > now - timedelta(seconds=open_end_s)))
        q = t.select().where(t.c.planned_start <= now, ends).order_by(t.c.planned_start, t.c.id)
        with self._engine.connect() as conn:
            return [_row_to_lesson(r) for r in conn.execute(q)]


def _definition(lesson: Lesson) -> dict[str, object]:
    """The columns a lesson's definition fills (everything but its id and creation time)."""
    return {
        "title": lesson.title,
        "subject": lesson.subject,
        "grade": lesson.grade,
        "master": json.dumps(lesson.master.to_json()),
        "rurals": json.dumps([c.to_json() for c in lesson.rurals]),
        "planned_start": _local_naive(lesson.planned_start),
        "planned_end": _local_naive(lesson.planned_end),
        "rural_see_each_other": lesson.rural_see_each_other,
        "record": lesson.record,
        "extra": json.dumps(lesson.extra),
        "kind": lesson.kind,
    }


def _local_naive(at: datetime | None) -> datetime | None:
    """Planned times are kept as the server's local wall-clock time (naive), as readers expect.

    A time given with an offset (the scheduler writes +08:00) is converted, not truncated.
    """
    if at is None or at.tzinfo is None:
        return at
    return at.astimezone().replace(tzinfo=None)


def _row_to_lesson(row: sa.Row) -> Lesson:
    m = row._mapping
    return Lesson(
        id=m["id"],
        title=m["title"],
        subject=m["subject"],
        grade=m["grade"],
        master=Classroom(**json.loads(m["master"])),
        rurals=[Classroom(**c) for c in json.loads(m["rurals"])],
        planned_start=m["planned_start"],
        planned_end=m["planned_end"],
        rural_see_each_other=bool(m["rural_see_each_other"]),
        record=bool(m["record"]),
        created_at=m["created_at"],
        extra=json.loads(m["extra"] or "{}"),
        kind=m["kind"] or TWINNING,
    )


class AttendanceLog:
    """Who was connected to which lesson, when: the basis of usage reports (开课率, minutes attended).

    Each row names the `node` (its URL) that served the session. A node of a cluster (`shared`:
    nodes share the database) closes only its own rows when it starts or stops; a single node is
    the only writer and closes every row left open (rows from before the `node` column included).
    """

    def __init__(self, engine: sa.Engine, node: str | None = None, shared: bool = False) -> None:
        self._engine = engine
        self.node = node
        self.shared = shared
        if shared and not node:
            raise ValueError("attendance: a node sharing the database needs its own node name")
        metadata.create_all(engine)
        add_missing_columns(engine)

    def opened(self, lesson_id: str, classroom: str, role: str, name: str, at: datetime) -> int:
        with self._engine.begin() as conn:
            res = conn.execute(attendance_table.insert().values(
                lesson_id=lesson_id, classroom=classroom, role=role, name=name, joined_at=_utc(at), node=self.node))
        key = res.inserted_primary_key
        assert key is not None
        return int(key[0])

    def closed(self, row_id: int, at: datetime, reason: str) -> None:
        """Close a row once: a row the server already closed (it is stopping) keeps its reason."""
        with self._engine.begin() as conn:
            conn.execute(attendance_table.update().where(attendance_table.c.id == row_id)
                         .where(attendance_table.c.left_at.is_(None)).values(left_at=_utc(at), reason=reason))

    def close_open(self, at: datetime, reason: str) -> int:
        """Close this node's rows left open (server shutdown, or after a crash on the next start):
        in a cluster only the rows this node wrote, never another live node's."""
        q = attendance_table.update().where(attendance_table.c.left_at.is_(None))
        if self.shared:
            q = q.where(attendance_table.c.node == self.node)
        with self._engine.begin() as conn:
            res = conn.execute(q.values(left_at=_utc(at), reason=reason))
        return int(res.rowcount)

    def rows(self, *, lesson_id: str | None = None, since: datetime | None = None,
             until: datetime | None = None, lesson_ids: Iterable[str] | None = None) -> list[dict[str, object]]:
        q = attendance_table.select().order_by(attendance_table.c.joined_at)
        if lesson_id:
            q = q.where(attendance_table.c.lesson_id == lesson_id)
        if since:
            q = q.where(attendance_table.c.joined_at >= _utc(since))
        if until:
            q = q.where(attendance_table.c.joined_at < _utc(until))
        if lesson_ids is None:
            with self._engine.connect() as conn:
                return [dict(r._mapping) for r in conn.execute(q)]
        ids = list(dict.fromkeys(lesson_ids))  # only these lessons' rows
        out: list[dict[str, object]] = []
        with self._engine.connect() as conn:
            for i in range(0, len(ids), _IN_CHUNK):
                chunk = q.where(attendance_table.c.lesson_id.in_(ids[i:i + _IN_CHUNK]))
                out += [dict(r._mapping) for r in conn.execute(chunk)]
        out.sort(key=lambda r: r["joined_at"])  # type: ignore[arg-type,return-value]
        return out


def _utc(at: datetime) -> datetime:
    """Naive UTC for the database."""
    return at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo else at
