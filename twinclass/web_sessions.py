"""Login sessions, server-side, in the lesson database (SQLAlchemy Core, like `sfu.store`).

- `oidc_logins`: a login under way: the hash of its `state`, the hash of the browser's login cookie
  (a callback from another browser is refused), its nonce, PKCE verifier and where to go next.
  Taken once: a replayed callback finds nothing.
- `web_sessions`: a logged-in person: the hash of the session id (the cookie holds the id only;
  a database reader cannot replay it), the claims it resolves to, the ID token (logout hint),
  an absolute expiry and an idle expiry (`last_seen` + idle time).

Synchronous: the event loop calls it through asyncio.to_thread.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import asdict, dataclass

import sqlalchemy as sa

from sfu.lessons import Role
from sfu.tokens import Claims

metadata = sa.MetaData()
LOGIN_TTL_S = 600.0  # a login must come back from the provider within 10 minutes
TOUCH_EVERY_S = 30.0  # last_seen is written at most this often per session (a tenth of the idle time if less)

logins_table = sa.Table(
    "oidc_logins",
    metadata,
    sa.Column("state_hash", sa.String(64), primary_key=True),
    sa.Column("browser_hash", sa.String(64), nullable=False),
    sa.Column("nonce", sa.Text, nullable=False),
    sa.Column("code_verifier", sa.Text, nullable=False),
    sa.Column("next_path", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),  # unix s
)

sessions_table = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("subject", sa.Text, nullable=False),  # the provider's `sub`
    sa.Column("claims", sa.Text, nullable=False),  # JSON of sfu.tokens.Claims (exp = expires_at)
    sa.Column("roles", sa.Text, nullable=False),  # JSON list: the provider's role values that counted
    sa.Column("id_token", sa.Text, nullable=False),  # for the provider's logout (id_token_hint)
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),  # absolute
)


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class LoginAttempt:
    nonce: str
    code_verifier: str
    next_path: str


@dataclass(frozen=True)
class WebSession:
    claims: Claims
    roles: list[str]
    id_token: str
    created_at: float
    last_seen: float
    expires_at: float


class SessionStore:
    def __init__(self, engine: sa.Engine, *, absolute_s: float, idle_s: float) -> None:
        self._engine = engine
        self.absolute_s = absolute_s
        self.idle_s = idle_s
        metadata.create_all(engine)

    # -- logins under way ---------------------------------------------------------------------------

    def begin_login(self, state: str, browser: str, attempt: LoginAttempt, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._engine.begin() as conn:
            conn.execute(logins_table.delete().where(logins_table.c.created_at < now - LOGIN_TTL_S))
            conn.execute(logins_table.insert().values(
                state_hash=_hash(state), browser_hash=_hash(browser), nonce=attempt.nonce,
                code_verifier=attempt.code_verifier, next_path=attempt.next_path, created_at=now))

    def take_login(self, state: str, browser: str, now: float | None = None) -> LoginAttempt | None:
        """The login this `state` began, once: deleted whatever the answer. None if unknown, used,
        expired, or begun in another browser."""
        now = time.time() if now is None else now
        t = logins_table
        with self._engine.begin() as conn:
            row = conn.execute(t.select().where(t.c.state_hash == _hash(state))).first()
            if row is None:
                return None
            conn.execute(t.delete().where(t.c.state_hash == row.state_hash))
        if row.created_at < now - LOGIN_TTL_S or not secrets.compare_digest(row.browser_hash, _hash(browser)):
            return None
        return LoginAttempt(nonce=row.nonce, code_verifier=row.code_verifier, next_path=row.next_path)

    # -- sessions -----------------------------------------------------------------------------------

    def create(self, claims: Claims, roles: list[str], id_token: str, now: float | None = None) -> tuple[str, float]:
        """A new session; returns (the session id for the cookie, its absolute expiry)."""
        now = time.time() if now is None else now
        session_id = new_secret()
        expires = now + self.absolute_s
        stored = asdict(claims) | {"exp": int(expires)}
        self.purge(now)  # sessions nobody came back to go when the next one begins
        with self._engine.begin() as conn:
            conn.execute(sessions_table.insert().values(
                id_hash=_hash(session_id), subject=claims.sub, claims=json.dumps(stored, ensure_ascii=False),
                roles=json.dumps(roles, ensure_ascii=False), id_token=id_token, created_at=now, last_seen=now,
                expires_at=expires))
        return session_id, expires

    def get(self, session_id: str, now: float | None = None) -> WebSession | None:
        """The live session of this id (its idle clock restarted), or None: unknown, or expired
        (absolute or idle; an expired one is deleted)."""
        now = time.time() if now is None else now
        t = sessions_table
        key = _hash(session_id)
        with self._engine.begin() as conn:
            row = conn.execute(t.select().where(t.c.id_hash == key)).first()
            if row is None:
                return None
            if now >= row.expires_at or now >= row.last_seen + self.idle_s:
                conn.execute(t.delete().where(t.c.id_hash == key))
                return None
            if now - row.last_seen >= min(TOUCH_EVERY_S, self.idle_s / 10):
                conn.execute(t.update().where(t.c.id_hash == key).values(last_seen=now))
        data = json.loads(row.claims)
        claims = Claims(**{**data, "role": Role(data["role"])})
        return WebSession(claims=claims, roles=json.loads(row.roles), id_token=row.id_token,
                          created_at=row.created_at, last_seen=max(row.last_seen, now), expires_at=row.expires_at)

    def delete(self, session_id: str) -> WebSession | None:
        """End a session (logout); returns what it was, or None."""
        found = self.get(session_id)
        with self._engine.begin() as conn:
            conn.execute(sessions_table.delete().where(sessions_table.c.id_hash == _hash(session_id)))
        return found

    def purge(self, now: float | None = None) -> int:
        """Delete every expired session and stale login; returns how many sessions went."""
        now = time.time() if now is None else now
        t = sessions_table
        with self._engine.begin() as conn:
            conn.execute(logins_table.delete().where(logins_table.c.created_at < now - LOGIN_TTL_S))
            res = conn.execute(t.delete().where((t.c.expires_at <= now) | (t.c.last_seen + self.idle_s <= now)))
        return res.rowcount or 0
