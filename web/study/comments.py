"""Comments at moments of a recording (观课评论), with one level of replies.

A comment has a time in the video (seconds), an author (name and role from the token) and a
text; a reply points at a top-level comment and shares its moment. Deleting keeps the row (so
replies keep their thread) and blanks the text.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from twinclass.http_input import MAX_ID
from web.study.access import Author
from web.study.db import count_by_recording, iso_utc, metadata, utcnow

MAX_BODY = 2000

comments_table = sa.Table(
    "study_comments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("recording_id", sa.String(128), nullable=False, index=True),
    sa.Column("parent_id", sa.Integer, nullable=True),
    sa.Column("t", sa.Float, nullable=False),  # seconds on the recording's timeline
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("author_key", sa.Text, nullable=False),
    sa.Column("author_name", sa.Text, nullable=False),
    sa.Column("author_role", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),  # UTC
    sa.Column("deleted", sa.Boolean, nullable=False, default=False),
)


class CommentError(ValueError):
    """A comment that cannot be accepted (the message says why)."""


@dataclass
class Comment:
    id: int
    recording_id: str
    parent_id: int | None
    t: float
    body: str
    author_key: str
    author_name: str
    author_role: str
    created_at: Any
    deleted: bool = False

    def to_json(self, viewer_key: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "recording": self.recording_id,
            "parent": self.parent_id,
            "t": round(self.t, 2),
            "body": "" if self.deleted else self.body,
            "deleted": self.deleted,
            "author": {"name": self.author_name, "role": self.author_role},
            "mine": viewer_key == self.author_key,
            "created_at": iso_utc(self.created_at),
        }


class CommentStore:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        metadata.create_all(engine)

    def add(self, recording_id: str, author: Author, body: object, t: object = None,
            parent: object = None, duration_s: float | None = None) -> Comment:
        if not isinstance(body, str) or not body.strip():
            raise CommentError("body: write something")
        body = body.strip()
        if len(body) > MAX_BODY:
            raise CommentError(f"body: at most {MAX_BODY} characters")
        parent_id: int | None = None
        if parent is not None:
            if not isinstance(parent, int) or isinstance(parent, bool):
                raise CommentError("parent: must be a comment id")
            top = self.get(parent)
            if top is None or top.recording_id != recording_id:
                raise CommentError("parent: no such comment on this recording")
            parent_id = top.parent_id or top.id  # replies to replies join the same thread
            root = self.get(parent_id)
            at = root.t if root else top.t
        else:
            if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t < 0:
                raise CommentError("t: the moment in the video, in seconds (a number ≥ 0)")
            at = float(t)
            if duration_s is not None and at > duration_s + 1:
                raise CommentError(f"t: the recording lasts {duration_s:.0f} s")
        row: dict[str, Any] = {"recording_id": recording_id, "parent_id": parent_id, "t": at, "body": body,
               "author_key": author.key, "author_name": author.name, "author_role": author.role,
               "created_at": utcnow(), "deleted": False}
        with self._engine.begin() as conn:
            key = conn.execute(comments_table.insert().values(**row)).inserted_primary_key
        assert key is not None
        return Comment(id=int(key[0]), **row)

    def get(self, comment_id: int) -> Comment | None:
        if not 1 <= comment_id <= MAX_ID:  # SQLite's INTEGER: a larger id is no comment (not an OverflowError)
            return None
        with self._engine.connect() as conn:
            row = conn.execute(comments_table.select().where(comments_table.c.id == comment_id)).first()
        return Comment(**row._mapping) if row is not None else None

    def list(self, recording_id: str) -> list[Comment]:
        t = comments_table
        q = t.select().where(t.c.recording_id == recording_id).order_by(t.c.t, t.c.id)
        with self._engine.connect() as conn:
            return [Comment(**r._mapping) for r in conn.execute(q)]

    def delete(self, comment_id: int) -> None:
        with self._engine.begin() as conn:
            conn.execute(comments_table.update().where(comments_table.c.id == comment_id).values(deleted=True))

    def counts(self, recording_ids: Iterable[str] | None = None) -> Counter[str]:
        """Comments (not deleted) per recording."""
        t = comments_table
        q = sa.select(t.c.recording_id, sa.func.count()).where(t.c.deleted.is_(False)).group_by(t.c.recording_id)
        return count_by_recording(self._engine, q, t.c.recording_id, recording_ids)


def threads(comments: list[Comment], viewer_key: str | None = None) -> list[dict[str, Any]]:
    """Top-level comments in time order, each with its replies in the order written."""
    out: dict[int, dict[str, Any]] = {}
    for c in comments:
        if c.parent_id is None:
            out[c.id] = {**c.to_json(viewer_key), "replies": []}
    for c in sorted(comments, key=lambda c: c.id):
        if c.parent_id is not None and c.parent_id in out:
            out[c.parent_id]["replies"].append(c.to_json(viewer_key))
    return sorted(out.values(), key=lambda c: (c["t"], c["id"]))
