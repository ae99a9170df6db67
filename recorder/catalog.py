"""The recordings catalog: one row per recording, in the same SQL database as the lessons.

Rows are what `GET /api/recordings` filters on; the files themselves (and the full manifest)
stay in the recording's directory, so a catalog can always be rebuilt from disk.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()
_IN_CHUNK = 500  # lesson ids per `IN (...)`

recordings_table = sa.Table(
    "recordings",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("lesson_id", sa.String(64), nullable=False, index=True),
    sa.Column("title", sa.Text, nullable=False, default=""),
    sa.Column("subject", sa.Text, nullable=False, default=""),
    sa.Column("grade", sa.Text, nullable=False, default=""),
    sa.Column("classrooms", sa.Text, nullable=False, default="[]"),  # JSON list of classroom ids
    sa.Column("started_at", sa.DateTime, nullable=False, index=True),  # UTC
    sa.Column("ended_at", sa.DateTime, nullable=True),
    sa.Column("duration_s", sa.Float, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("interrupted", sa.Boolean, nullable=False, default=False),
    sa.Column("directory", sa.Text, nullable=False),  # relative to <data dir>/recordings
    sa.Column("size_bytes", sa.BigInteger, nullable=False, default=0),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

# recording -> captured (lesson over) -> building -> ready | failed
STATUSES = ("recording", "captured", "building", "ready", "failed")


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None)


def iso(dt: datetime | None) -> str | None:
    return dt.replace(tzinfo=UTC).isoformat() if dt else None


@dataclass
class Recording:
    id: str
    lesson_id: str
    started_at: datetime
    directory: str
    status: str = "recording"
    title: str = ""
    subject: str = ""
    grade: str = ""
    classrooms: list[str] = field(default_factory=list)
    ended_at: datetime | None = None
    duration_s: float | None = None
    interrupted: bool = False
    size_bytes: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "lesson": self.lesson_id,
            "title": self.title,
            "subject": self.subject,
            "grade": self.grade,
            "classrooms": self.classrooms,
            "start": iso(self.started_at),
            "end": iso(self.ended_at),
            "duration_s": self.duration_s,
            "status": self.status,
            "interrupted": self.interrupted,
            "size_bytes": self.size_bytes,
            "error": self.error,
        }


@dataclass
class RecordingFilter:
    lesson: str | None = None
    subject: str | None = None
    grade: str | None = None
    classroom: str | None = None
    since: datetime | None = None  # UTC, inclusive
    until: datetime | None = None  # UTC, exclusive
    status: str | None = None
    statuses: tuple[str, ...] | None = None  # any of these
    lessons: Collection[str] | None = None  # recordings of these lessons only (any number)
    limit: int | None = 500  # None: every match
    offset: int = 0

    @staticmethod
    def local_day(day: str) -> tuple[datetime, datetime]:
        """The UTC bounds of a calendar day (YYYY-MM-DD) in the server's local time zone."""
        start = datetime.fromisoformat(day).replace(hour=0, minute=0, second=0, microsecond=0)
        if start.tzinfo is None:
            start = start.astimezone()  # local
        return (start.astimezone(UTC).replace(tzinfo=None), (start + timedelta(days=1)).astimezone(UTC).replace(
            tzinfo=None))


Recordings = list[Recording]  # (in RecordingCatalog, `list` is a method)


class RecordingCatalog:
    """Small synchronous queries; fine on the event loop (like the lesson store)."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        metadata.create_all(engine)

    def save(self, rec: Recording) -> None:
        values = {
            "lesson_id": rec.lesson_id,
            "title": rec.title,
            "subject": rec.subject,
            "grade": rec.grade,
            "classrooms": json.dumps(rec.classrooms),
            "started_at": rec.started_at,
            "ended_at": rec.ended_at,
            "duration_s": rec.duration_s,
            "status": rec.status,
            "interrupted": rec.interrupted,
            "directory": rec.directory,
            "size_bytes": rec.size_bytes,
            "error": rec.error,
            "updated_at": datetime.now(UTC).replace(tzinfo=None),
        }
        t = recordings_table
        with self._engine.begin() as conn:
            done = conn.execute(t.update().where(t.c.id == rec.id).values(**values)).rowcount
            if not done:
                conn.execute(t.insert().values(id=rec.id, **values))

    def delete(self, recording_id: str) -> bool:
        t = recordings_table
        with self._engine.begin() as conn:
            return bool(conn.execute(t.delete().where(t.c.id == recording_id)).rowcount)

    def get(self, recording_id: str) -> Recording | None:
        t = recordings_table
        with self._engine.connect() as conn:
            row = conn.execute(t.select().where(t.c.id == recording_id)).first()
        return _row(row) if row is not None else None

    def list(self, f: RecordingFilter | None = None) -> list[Recording]:
        f = f or RecordingFilter()
        t = recordings_table
        q = t.select()
        if f.lesson:
            q = q.where(t.c.lesson_id == f.lesson)
        if f.subject:
            q = q.where(t.c.subject == f.subject)
        if f.grade:
            q = q.where(t.c.grade == f.grade)
        if f.classroom:
            q = q.where(t.c.classrooms.like(f"%{json.dumps(f.classroom)}%"))
        if f.since:
            q = q.where(t.c.started_at >= f.since)
        if f.until:
            q = q.where(t.c.started_at < f.until)
        if f.status:
            q = q.where(t.c.status == f.status)
        if f.statuses is not None:
            q = q.where(t.c.status.in_(f.statuses))
        if f.classroom:  # '_' and '%' in the id are escaped: an exact match of the JSON string
            q = q.where(t.c.classrooms.contains(json.dumps(f.classroom), autoescape=True))
        q = q.order_by(t.c.started_at.desc(), t.c.id)
        if f.lessons is None:
            return self._fetch(q.limit(f.limit).offset(f.offset or None))
        ids = list(dict.fromkeys(f.lessons))
        rows = [r for i in range(0, len(ids), _IN_CHUNK) for r in self._fetch(
            q.where(t.c.lesson_id.in_(ids[i:i + _IN_CHUNK])))]
        rows.sort(key=lambda r: r.id)
        rows.sort(key=lambda r: r.started_at, reverse=True)  # newest first, as one query would
        return rows[f.offset:None if f.limit is None else f.offset + f.limit]

    def _fetch(self, q: sa.Select[Any]) -> Recordings:
        with self._engine.connect() as conn:
            return [_row(r) for r in conn.execute(q)]


def _row(row: sa.Row) -> Recording:
    m = row._mapping
    return Recording(
        id=m["id"],
        lesson_id=m["lesson_id"],
        title=m["title"],
        subject=m["subject"],
        grade=m["grade"],
        classrooms=list(json.loads(m["classrooms"] or "[]")),
        started_at=m["started_at"],
        ended_at=m["ended_at"],
        duration_s=m["duration_s"],
        status=m["status"],
        interrupted=bool(m["interrupted"]),
        directory=m["directory"],
        size_bytes=int(m["size_bytes"] or 0),
        error=m["error"],
    )
