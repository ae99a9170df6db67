"""The lesson-study tables' metadata (created in the lesson server's database on start)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()
IN_CHUNK = 500  # ids per `IN (...)`: well under any database's limit on bound parameters


def utcnow() -> datetime:
    """Naive UTC, as every table here stores it."""
    return datetime.now(UTC).replace(tzinfo=None)


def iso_utc(dt: datetime | None) -> str | None:
    return dt.replace(tzinfo=UTC).isoformat() if dt else None


def count_by_recording(engine: sa.Engine, q: sa.Select[Any], column: sa.ColumnElement[str],
                       recording_ids: Iterable[str] | None) -> Counter[str]:
    """Run a `SELECT recording_id, count(*) … GROUP BY recording_id` for these ids (all if None)."""
    if recording_ids is None:
        chunks: list[sa.Select[Any]] = [q]
    else:
        ids = list(dict.fromkeys(recording_ids))
        chunks = [q.where(column.in_(ids[i:i + IN_CHUNK])) for i in range(0, len(ids), IN_CHUNK)]
    out: Counter[str] = Counter()
    with engine.connect() as conn:
        for chunk in chunks:
            out.update({r[0]: int(r[1]) for r in conn.execute(chunk)})
    return out
