"""The audit log of admin actions: who (the token's or session's `sub`, name and role), when,
what, and to what, in the table ``admin_audit``; read newest first, a page at a time."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from sfu.tokens import Claims

metadata = sa.MetaData()

audit_table = sa.Table(
    "admin_audit", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime, nullable=False, index=True),  # naive UTC
    sa.Column("sub", sa.Text, nullable=False, default=""),
    sa.Column("name", sa.Text, nullable=False, default=""),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),  # e.g. "lesson.create"
    sa.Column("target", sa.Text, nullable=False, default=""),  # e.g. the lesson id
    sa.Column("detail", sa.Text, nullable=False, default="{}"),  # JSON: what changed (never a token)
)


class AuditLog:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        metadata.create_all(engine)

    def record(self, who: Claims, action: str, target: str = "", detail: dict[str, Any] | None = None) -> None:
        with self._engine.begin() as conn:
            conn.execute(audit_table.insert().values(
                at=datetime.now(UTC).replace(tzinfo=None), sub=who.sub, name=who.name, role=str(who.role),
                action=action, target=target, detail=json.dumps(detail or {}, ensure_ascii=False)))

    def page(self, *, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        """Entries newest first, and how many there are in all."""
        t = audit_table
        q = t.select().order_by(t.c.at.desc(), t.c.id.desc()).limit(limit).offset(offset)
        with self._engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q)]
            total = int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
        for r in rows:
            r["at"] = r["at"].replace(tzinfo=UTC).isoformat()
            r["detail"] = json.loads(r["detail"] or "{}")
        return rows, total
