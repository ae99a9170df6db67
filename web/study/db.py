"""The lesson-study tables' metadata (created in the lesson server's database on start)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

metadata = sa.MetaData()


def utcnow() -> datetime:
    """Naive UTC, as every table here stores it."""
    return datetime.now(UTC).replace(tzinfo=None)


def iso_utc(dt: datetime | None) -> str | None:
    return dt.replace(tzinfo=UTC).isoformat() if dt else None
