"""Fuzz target: every HTTP route of the server with generated path parameters, query strings and
JSON bodies, with no token, an admin's, an observer's or a broken one.

The routes are read at run time from the application `twinclass.server.build` makes (the same
code the server process runs), so a route added later is fuzzed without touching this file;
socket.io's own endpoint is left to the signaling target. Property: no status of 500 or more, no
hang, and an error is a JSON, HTML or plain-text body (a JSON one that parses).
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import yarl
from fuzz_rig import REPLY_TIMEOUT_S, FuzzFailure, LoopThread
from harness import ServerProcess, mint_token
from hypothesis import strategies as st

from twinclass.server import ServerConfig, build

PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")
QUERY_NAMES = ("offset", "limit", "from", "to", "date", "token", "ttl", "q", "lesson", "classroom", "teacher",
               "county", "school", "subject", "page", "kind", "at", "parent", "format", "term", "week", "id")
SEGMENTS = ("demo-x", "0", "-1", "9223372036854775808", "99999999999999999999", "..", "%2e%2e", "main.js%00.png",
            "%00", "a" * 3000, "课堂", "😀", "js/main.js", "socket.io/socket.io.esm.min.js", "index.css", "{}",
            "1e309", "NaN", " ", "%ZZ", "\\", "null")
VALUES = ("0", "-1", "9223372036854775808", "1e309", "NaN", "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00",
          "9999-12-31", "2026-13-45", "", "true", "%00", "a" * 5000, "课", "[]", "{}")


class ServerErrorAnswer(FuzzFailure):
    """A route answered 5xx."""


def routes() -> list[tuple[str, str]]:
    """(method, path template) of every route the server serves, as the server builds them."""
    with tempfile.TemporaryDirectory() as tmp:
        app = build(ServerConfig(data_dir=Path(tmp), create_demo=False)).app
        found = set()
        for route in app.router.routes():
            info = route.resource.get_info() if route.resource is not None else {}
            template = info.get("formatter") or info.get("path") or ""
            if route.method in ("HEAD", "*") or not template or template.startswith("/socket.io"):
                continue
            found.add((route.method, template))
    return sorted(found)


@dataclass(frozen=True)
class HttpCase:
    method: str
    template: str
    params: dict[str, str]
    query: tuple[tuple[str, str], ...]
    body: Any = None  # JSON value, or a Raw body
    auth: str = "none"  # none | admin | observer | broken
    raw_params: bool = False  # path parameters sent as they are, not percent-quoted

    def path(self) -> str:
        def fill(m: re.Match[str]) -> str:
            value = self.params.get(m.group(1), "x")
            return value if self.raw_params else quote(value, safe="/" if "path" in m.group(1) else "")

        path = PARAM.sub(fill, self.template)
        return path + ("?" + urlencode(self.query) if self.query else "")


@dataclass(frozen=True)
class Raw:
    text: str

    def __repr__(self) -> str:  # a 100,000-deep body is not for printing
        return f"Raw({self.text[:40]!r}{'...' if len(self.text) > 40 else ''}, {len(self.text)} chars)"


def json_bodies() -> st.SearchStrategy[Any]:
    scalars = (st.none() | st.booleans() | st.integers() | st.sampled_from([2**63, 10**30, -1])
               | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30) | st.sampled_from(VALUES))
    names = st.sampled_from(["id", "title", "master", "rurals", "record", "planned_start", "planned_end", "extra",
                             "parent", "text", "at", "scores", "dimensions", "teachers", "classrooms", "body"]) \
        | st.text(max_size=10)
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner,
                                                                                               max_size=5),
                          max_leaves=15)
    deep = st.builds(lambda n, obj: Raw('{"a":' * n + "1" + "}" * n) if obj else Raw("[" * n + "]" * n),
                     st.integers(100, 100_000), st.booleans())
    broken = st.sampled_from([Raw("{"), Raw("\xff\xfe"), Raw('{"a": 1,}'), Raw("NaN"), Raw(""), Raw("\x00")])
    return values | st.dictionaries(names, values, max_size=6) | deep | broken


@st.composite
def http_cases(draw: st.DrawFn, table: list[tuple[str, str]]) -> HttpCase:
    method, template = draw(st.sampled_from(table))
    params = {}
    for name in PARAM.findall(template):
        value = draw(st.sampled_from(SEGMENTS) | st.text(min_size=1, max_size=40))
        if method != "GET" and value == "demo":
            value = "demo-x"  # never change the running lesson itself
        params[name] = value
    query = draw(st.lists(st.tuples(st.sampled_from(QUERY_NAMES) | st.text(max_size=8),
                                    st.sampled_from(VALUES) | st.text(max_size=30)), max_size=4))
    body = draw(json_bodies()) if method in ("POST", "PUT", "PATCH", "DELETE") and draw(st.integers(0, 5)) else None
    auth = draw(st.sampled_from(["none", "admin", "admin", "observer", "broken"]))
    return HttpCase(method, template, params, tuple(query), body, auth, raw_params=draw(st.integers(0, 4)) == 0)


@dataclass
class HttpTarget:
    server: ServerProcess
    loop: LoopThread
    table: list[tuple[str, str]] = field(default_factory=routes)
    statuses: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tokens = {"admin": mint_token(self.server, role="admin", name="fuzz admin"),
                       "observer": mint_token(self.server, role="observer", name="fuzz observer"),
                       "broken": "eyJhbGciOiJub25lIn0.e30."}
        self.session: aiohttp.ClientSession | None = None

    async def _request(self, case: HttpCase) -> tuple[int, str, bytes]:
        if self.session is None:
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REPLY_TIMEOUT_S))
        headers = {"Content-Type": "application/json"}
        if case.auth in self.tokens:
            headers["Authorization"] = f"Bearer {self.tokens[case.auth]}"
        data: bytes | None = None
        if isinstance(case.body, Raw):
            data = case.body.text.encode("utf-8", "surrogatepass")
        elif case.body is not None:
            data = json.dumps(case.body).encode()
        url = yarl.URL(self.server.url + case.path(), encoded=True)
        async with self.session.request(case.method, url, data=data, headers=headers,
                                        allow_redirects=False) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), await resp.read()

    def check(self, case: HttpCase) -> int:
        try:
            status, kind, body = self.loop.run(self._request(case), timeout=REPLY_TIMEOUT_S + 5)
        except (ValueError, UnicodeError):  # aiohttp will not put this path on the wire: nothing reached the server
            self.statuses[0] = self.statuses.get(0, 0) + 1
            return 0
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise FuzzFailure(f"{case.method} {case.path()[:200]}: no answer in {REPLY_TIMEOUT_S:.0f} s") from exc
        except aiohttp.ClientError as exc:
            raise FuzzFailure(f"{case.method} {case.path()[:200]}: the server dropped the request ({exc})") from exc
        self.statuses[status] = self.statuses.get(status, 0) + 1
        where = f"{case.method} {case.template} as {case.path()[:200]!r} ({case.auth})"
        if status >= 500:
            raise ServerErrorAnswer(f"{where}: {status} {body[:300]!r}")
        if status >= 400:
            if not any(k in kind for k in ("application/json", "text/html", "text/plain")):
                raise FuzzFailure(f"{where}: {status} with a body of type {kind!r}")
            if "application/json" in kind:
                try:
                    json.loads(body)
                except ValueError as exc:
                    raise FuzzFailure(f"{where}: {status} with a JSON body that does not parse: {body[:200]!r}") \
                        from exc
        return status

    def close(self) -> None:
        if self.session is not None:
            self.loop.run(self.session.close())
            self.session = None
