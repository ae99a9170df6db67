"""Join tokens: HS256 JWTs with the claims `lesson`, `classroom`, `name`, `role`, `exp` (and `sub`).

Other systems mint these too, so the claims are the contract (see README "Join tokens").
Admin tokens carry `role: "admin"` and need no lesson or classroom. The optional `sub` names
who holds the token (a unique subject, so tokens minted alike are still different authors):
every token this server mints carries one, a new one unless the minter names it.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import jwt

from sfu.lessons import Role

ALGORITHM = "HS256"


class TokenError(Exception):
    """A token that is refused; the message is the reason shown to the client."""


@dataclass(frozen=True)
class Claims:
    lesson: str
    classroom: str
    name: str
    role: Role
    exp: int
    sub: str = ""  # optional: who holds the token ("" when the minter gave none)
    school: str = ""  # an admin scoped to one school (a school admin's login; see sfu.scope); "" for JWTs


def new_subject() -> str:
    """A fresh, unique `sub` for a token."""
    return secrets.token_urlsafe(12)


def load_or_create_secret(data_dir: Path) -> str:
    """The signing secret kept in the data directory (created on first use, mode 0600)."""
    path = data_dir / "token-secret"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret)
    return secret


class TokenIssuer:
    """Mints and verifies join tokens with one shared secret."""

    def __init__(self, secret: str) -> None:
        if len(secret.encode()) < 32:
            raise ValueError("token secret must be at least 32 bytes (HS256)")
        self._secret = secret

    def mint(
        self, *, lesson: str, classroom: str, name: str, role: Role | str, ttl_s: float = 6 * 3600,
        sub: str | None = None,
    ) -> str:
        """A signed token. `sub`: who holds it; None gives a new subject, "" none (as other systems may)."""
        if sub is None:
            sub = new_subject()
        payload = {
            "lesson": lesson,
            "classroom": classroom,
            "name": name,
            "role": str(Role(role)),
            "exp": int(time.time() + ttl_s),
        }
        if sub:
            payload["sub"] = sub
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM)

    def mint_admin(self, name: str = "admin", ttl_s: float = 12 * 3600, sub: str | None = None) -> str:
        """An admin token; each its own author (a new `sub`) unless `sub` is given."""
        return self.mint(lesson="", classroom="", name=name, role=Role.ADMIN, ttl_s=ttl_s, sub=sub)

    def verify(self, token: object) -> Claims:
        """Check signature, expiry and claims; raise TokenError with the reason."""
        if not isinstance(token, str) or not token:
            raise TokenError("token missing")
        try:
            data = jwt.decode(
                token, self._secret, algorithms=[ALGORITHM], options={"require": ["exp", "role"]}
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenError("token expired") from exc
        except jwt.InvalidSignatureError as exc:
            raise TokenError("token signature invalid (forged or signed with another secret)") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError(f"token lacks the claim {exc.claim!r}") from exc
        except jwt.PyJWTError as exc:
            raise TokenError(f"token malformed: {exc}") from exc
        exp = data["exp"]
        if isinstance(exp, bool) or not isinstance(exp, int | float):  # PyJWT also takes "123" strings
            raise TokenError("token claim 'exp' must be a number (seconds since 1970)")
        try:
            role = Role(data["role"])
        except ValueError as exc:
            raise TokenError(f"token role {data['role']!r} is unknown") from exc
        if role == Role.SYSTEM:
            raise TokenError("system role cannot be used in a token")
        fields = {}
        for key in ("lesson", "classroom", "name", "sub"):
            value = data.get(key, "")
            if not isinstance(value, str):
                raise TokenError(f"token claim {key!r} must be a string")
            fields[key] = value
        if role != Role.ADMIN and not fields["lesson"]:
            raise TokenError("token lacks the claim 'lesson'")
        if role in (Role.MASTER, Role.RURAL, Role.LISTENER) and not fields["classroom"]:
            raise TokenError("token lacks the claim 'classroom'")
        return Claims(role=role, exp=int(exp), **fields)
