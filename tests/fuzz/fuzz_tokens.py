"""Fuzz target: join tokens (sfu/tokens.py, through `join` on the real server).

Tokens are random strings or JWTs made by hand: any `alg` in the header (none, RS256, HS512...),
signed with the server's secret, another secret, or not at all, over generated claims (missing,
extra, mistyped, unicode, huge `exp`). The property: a join is accepted only when the token is
valid by the contract (HS256 with the server's secret, a known role that is not `system`, string
claims, an `exp` in the future, an existing lesson and a classroom of that lesson in that role);
every refusal has a code and a message. Real lesson classrooms (master, rural-1) never appear as
claims, so an accepted token cannot replace the running lesson's terminals.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

from fuzz_client import FuzzClient, Outcome
from fuzz_rig import FuzzFailure, LoopThread
from harness import ServerProcess
from hypothesis import strategies as st

# lesson -> {classroom: role} as created by the server (demo) and fuzz_signaling.ensure_other_lesson
LESSONS = {"demo": {"master": "master", "rural-1": "rural", "rural-2": "rural", "rural-3": "rural"},
           "fuzz-other": {"m-other": "master", "r-other": "rural"}}
CLAIM_VALUES = ("demo", "fuzz-other", "rural-2", "rural-3", "m-other", "r-other", "master", "rural", "observer",
                "admin", "system", "", "nope", "课堂", "😀", "\x00", "a" * 3000)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class TokenCase:
    header: dict[str, Any] | None  # None: `raw` is the whole token
    claims: dict[str, Any]
    key: str  # right | wrong | empty | garbage
    raw: str = ""
    lesson_field: Any = None  # the join message's own `lesson` (None: absent)

    def token(self, secret: str) -> str:
        if self.header is None:
            return self.raw
        head = b64(json.dumps(self.header).encode())
        body = b64(json.dumps(self.claims, ensure_ascii=False).encode())
        signing = f"{head}.{body}".encode()
        if self.key == "empty":
            return f"{head}.{body}."
        if self.key == "garbage":
            return f"{head}.{body}.{b64(b'not a signature')}"
        key = secret if self.key == "right" else secret[::-1] + "x"
        return f"{head}.{body}.{b64(hmac.new(key.encode(), signing, hashlib.sha256).digest())}"

    def valid(self) -> bool:
        """Whether the contract (README "Join tokens") lets this token in."""
        if self.header is None or self.key != "right" or self.header.get("alg") != "HS256":
            return False
        if set(self.header) - {"alg", "typ"} or self.header.get("typ", "JWT") != "JWT":
            return False  # PyJWT may refuse a `crit` or `kid` header: not valid by our own contract either
        c = self.claims
        exp = c.get("exp")
        if isinstance(exp, bool) or not isinstance(exp, int | float) or exp <= time.time() + 5:  # a NumericDate
            return False
        if any(not isinstance(c.get(k, ""), str) for k in ("lesson", "classroom", "name", "sub")):
            return False
        role = c.get("role")
        if role not in ("master", "rural", "observer", "admin"):
            return False
        if role == "admin":
            return self.lesson_field in LESSONS
        lesson = c.get("lesson", "")
        if lesson not in LESSONS or self.lesson_field not in (None, "", lesson):
            return False
        if role == "observer":
            return True
        return bool(LESSONS[lesson].get(c.get("classroom", "")) == role)


def claim_values() -> st.SearchStrategy[Any]:
    return (st.sampled_from(CLAIM_VALUES) | st.text(max_size=20) | st.integers() | st.none()
            | st.lists(st.text(max_size=4), max_size=2) | st.floats(allow_nan=False) | st.booleans())


NOW = int(time.time())  # once per process: a strategy's bounds must not move between its draws


def exp_values() -> st.SearchStrategy[Any]:
    now = NOW
    return st.sampled_from([now + 3600, now - 10, 10**30, 2**63, -(2**63), 0, "9999999999", 1e308, None, True]) \
        | st.integers(now - 10**6, now + 10**9)


@st.composite
def token_cases(draw: st.DrawFn) -> TokenCase:
    if draw(st.integers(0, 5)) == 0:
        raw = draw(st.text(max_size=300) | st.builds(lambda n: "eyJ" + "A" * n, st.integers(0, 5000))
                   | st.builds(lambda a, b, c: f"{a}.{b}.{c}", st.text(max_size=20), st.text(max_size=20),
                               st.text(max_size=20)))
        return TokenCase(None, {}, "right", raw=raw)
    header: dict[str, Any] = {"alg": draw(st.sampled_from(["HS256", "HS256", "HS256", "none", "None", "RS256",
                                                            "HS512", "ES256", ""]) | st.integers()), "typ": "JWT"}
    if draw(st.integers(0, 5)) == 0:
        header[draw(st.sampled_from(["kid", "crit", "jku", "x5u"]))] = draw(claim_values())
    claims: dict[str, Any] = {}
    for name in ("lesson", "classroom", "name", "role", "sub"):
        if draw(st.integers(0, 4)):
            claims[name] = draw(claim_values())
    if draw(st.integers(0, 5)):
        claims["exp"] = draw(exp_values())
    if draw(st.integers(0, 3)) == 0:
        claims.update(draw(st.dictionaries(st.text(max_size=8), claim_values(), max_size=3)))
    key = draw(st.sampled_from(["right", "right", "right", "wrong", "empty", "garbage"]))
    lesson_field = draw(st.none() | st.sampled_from(["demo", "fuzz-other", "nope", ""]) | claim_values())
    return TokenCase(header, claims, key, lesson_field=lesson_field)


class TokenTarget:
    """Joins with each generated token on a fresh socket."""

    def __init__(self, server: ServerProcess, loop: LoopThread) -> None:
        self.loop = loop
        self.secret = (server.data_dir / "token-secret").read_text().strip()
        self.client = FuzzClient(server.url)
        self.accepted = 0

    async def _join(self, case: TokenCase) -> Outcome:
        payload: dict[str, Any] = {"token": case.token(self.secret)}
        if case.lesson_field is not None:
            payload["lesson"] = case.lesson_field
        outcome = await self.client.send("join", payload, join=False)
        if outcome.ok:
            await self.client.send("leave", {}, join=False)
            await self.client.close()
        return outcome

    def check(self, case: TokenCase) -> Outcome:
        outcome = self.loop.run(self._join(case), timeout=60)
        if outcome.ok and not case.valid():
            raise FuzzFailure(f"an invalid token was accepted: {outcome.reply.get('you')}")
        if outcome.ok:
            self.accepted += 1
        elif not outcome.closed and outcome.code not in ("bad_token", "not_found", "protocol_error", "bad_request"):
            raise FuzzFailure(f"a token refused with {outcome.code!r}: {outcome.reply}")
        return outcome

    def close(self) -> None:
        self.loop.run(self.client.close())
