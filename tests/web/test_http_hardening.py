"""Bad input on every route (issue 10, item 4) against a real `twinclass serve` process: each is a
4xx whose JSON names the field, never a 500, and the server stays healthy with no traceback."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from harness import ServerProcess, mint_token, start_server, wait_for

from recorder.catalog import Recording, RecordingCatalog
from sfu.store import make_engine, sqlite_url

REC_ID = "hardening-20261201-090000"
REC = f"/api/recordings/{REC_ID}"
DEEP = "[" * 100_000 + "]" * 100_000
LESSON = {"id": "bad-input", "title": "边界课", "master": "m", "rurals": ["r1"]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("hardening") / "var"
    with start_server(data_dir, env={"TWINCLASS_RECORDER": "0"}) as srv:
        RecordingCatalog(make_engine(sqlite_url(data_dir))).save(Recording(
            id=REC_ID, lesson_id="demo", started_at=datetime(2026, 12, 1, 1, 0, tzinfo=UTC).replace(tzinfo=None),
            directory=REC_ID, status="ready", title="演示课", classrooms=["master", "rural-1"], duration_s=60.0))
        yield srv


def call(server: ServerProcess, method: str, path: str, *, raw: str | None = None, body: Any = None,
         token: str | None = None) -> tuple[int, str]:
    data = raw.encode() if raw is not None else json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server.url + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


OUT_OF_RANGE = {"to": "9999-12-31T23:59:59-05:00", "from": "0001-01-01T00:00:00+05:00"}

# (who, method, path, raw body or JSON body, field the error must name; None: a 404 page, no JSON)
CASES: list[tuple[str, str, str, Any, str | None]] = [
    ("admin", "GET", "/api/recordings?offset=9223372036854775808", None, "offset"),
    ("admin", "GET", "/api/recordings?limit=99999999999999999999999", None, "limit"),
    ("admin", "GET", "/api/study/recordings?offset=9223372036854775808", None, "offset"),
    *[("admin", "GET", f"/api/recordings?{k}={v.replace('+', '%2B')}", None, k) for k, v in OUT_OF_RANGE.items()],
    ("admin", "GET", "/api/recordings?date=9999-12-31", None, "date"),
    *[("admin", "GET", f"/api/study/recordings?{k}={v.replace('+', '%2B')}", None, k)
      for k, v in OUT_OF_RANGE.items()],
    ("admin", "GET", "/api/study/recordings?to=9999-12-31", None, "to"),
    *[("admin", "GET", f"/api/reports/usage?{k}={v.replace('+', '%2B')}", None, k) for k, v in OUT_OF_RANGE.items()],
    ("admin", "GET", "/api/reports/usage?to=9999-12-31", None, "to"),
    ("admin", "GET", "/api/reports/usage?group=nope", None, "group"),
    ("admin", "GET", f"{REC}/analysis?interval=1e400", None, "interval"),
    ("admin", "POST", f"{REC}/comments", {"parent": 2**63, "body": "回复"}, "parent"),
    ("admin", "POST", f"{REC}/comments", {"parent": 1.5, "body": "回复"}, "parent"),
    ("admin", "DELETE", f"{REC}/comments/99999999999999999999", None, "comment_id"),
    ("admin", "DELETE", f"{REC}/comments/{2**63}", None, "comment_id"),
    ("admin", "POST", f"{REC}/comments", DEEP, "body"),
    ("admin", "POST", f"{REC}/comments", '{"t": NaN, "body": "x"}', "body"),
    ("admin", "POST", f"{REC}/comments", "[1, 2]", "body"),
    ("admin", "PUT", f"{REC}/evaluations/mine", '{"scores":' * 50_000 + "1" + "}" * 50_000, "body"),
    ("admin", "PUT", "/api/study/rubric", DEEP, "body"),
    ("admin", "POST", "/api/schedule/solve", DEEP, "body"),
    ("admin", "POST", "/api/schedule/solve?workers=1e9", {}, "workers"),
    ("admin", "POST", "/api/lessons", DEEP, "body"),
    ("admin", "POST", "/api/lessons", {**LESSON, "extra": 5}, "extra"),
    ("admin", "POST", "/api/lessons", {**LESSON, "title": "\ud800"}, "body"),
    ("admin", "POST", f"{REC}/comments", {"t": 1, "body": "\udfff"}, "body"),
    ("admin", "POST", "/api/lessons", {**LESSON, "colour": "red"}, "colour"),
    ("admin", "POST", "/api/lessons", {**LESSON, "planned_start": "2026-12-01T09:00:00+08:00",
                                       "planned_end": "2026-12-01T09:40:00"}, "planned_end"),
    ("admin", "POST", "/api/lessons", {**LESSON, "planned_start": "9999-12-31T23:59:59-12:00"}, "planned_start"),
    ("admin", "PATCH", "/api/lessons/demo", {"planned_start": "9999-12-31T23:59:59-12:00"}, "planned_start"),
    ("admin", "PATCH", "/api/lessons/demo", {"planned_end": "0001-01-01T00:00:00+05:00"}, "planned_end"),
    ("admin", "PATCH", "/api/lessons/demo", DEEP, "body"),
    ("admin", "POST", "/api/lessons/demo/tokens?ttl=nan", None, "ttl"),
    (None, "GET", "/static/js/main.js%00.png", None, None),
    (None, "GET", "/vendor/socket.io/x%00.js", None, None),
    ("admin", "GET", f"{REC}/files/lesson.mp4%00", None, None),
]


def test_bad_input_is_a_4xx_naming_the_field(server: ServerProcess) -> None:
    admin = mint_token(server, role="admin")
    failures = []
    for who, method, path, body, field in CASES:
        raw = body if isinstance(body, str) else None
        status, text = call(server, method, path, raw=raw, body=None if raw is not None else body,
                            token=admin if who == "admin" else None)
        if not 400 <= status < 500:
            failures.append(f"{method} {path[:80]}: {status} {text[:200]}")
            continue
        if field is None:
            if status not in (400, 404):
                failures.append(f"{method} {path[:80]}: {status}, expected 400 or 404")
            continue
        try:
            error = json.loads(text)["error"]
        except (ValueError, KeyError, TypeError):
            failures.append(f"{method} {path[:80]}: {status} without a JSON error: {text[:200]}")
            continue
        if not error.startswith(f"{field}:"):
            failures.append(f"{method} {path[:80]}: {status} {error!r} does not name {field!r}")
    assert not failures, "\n".join(failures)

    # still healthy, still answering good requests, and nothing in its log was a traceback
    assert server.api("/healthz")[0] == 200
    status, listing = server.api("/api/recordings?offset=0&limit=5&from=2026-01-01&to=2026-12-31", token=admin)
    assert status == 200 and [r["id"] for r in listing["recordings"]] == [REC_ID], listing
    status, created = server.api(f"{REC}/comments", method="POST", body={"t": 3, "body": "好"}, token=admin)
    assert status == 201, created
    status, reply = server.api(f"{REC}/comments", method="POST", body={"parent": created["id"], "body": "同意"},
                               token=admin)
    assert status == 201 and reply["parent"] == created["id"], reply
    assert server.api(f"{REC}/comments/{created['id']}", method="DELETE", token=admin)[0] == 200
    status, patched = server.api("/api/lessons/demo", method="PATCH", token=admin,
                                 body={"planned_start": "2026-12-01T09:00:00+08:00",
                                       "planned_end": "2026-12-01T09:40:00+08:00"})
    assert status == 200 and patched["planned_start"] is not None, patched
    log = server.log.read_text(errors="replace")
    assert "Traceback" not in log and "\" 500 " not in log, log[-3000:]


def test_an_unexpected_error_is_a_500_json_with_a_request_id(tmp_path: Path) -> None:
    """The safety net: a route that lets an exception through answers JSON with a request id and
    logs one line for it (a traceback only the first time that place fails)."""
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from twinclass.http_errors import error_middleware

    async def broken(request: web.Request) -> web.Response:
        raise KeyError("a bug")

    async def run() -> list[tuple[int, dict[str, Any]]]:
        app = web.Application(middlewares=[error_middleware()])
        app.router.add_get("/broken", broken)
        async with TestClient(TestServer(app)) as client:
            out = []
            for _ in range(2):
                r = await client.get("/broken?token=x")
                out.append((r.status, await r.json()))
            return out

    import asyncio
    import logging

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("twinclass.http").addHandler(handler)
    try:
        answers = asyncio.run(run())
    finally:
        logging.getLogger("twinclass.http").removeHandler(handler)
    for status, body in answers:
        assert status == 500 and body["request_id"] in body["error"], body
    assert len(records) == 2 and records[0].exc_info and not records[1].exc_info
    assert all(body["request_id"] in r.getMessage() and "token" not in r.getMessage()
               for r, (_s, body) in zip(records, answers, strict=True))


def test_the_landing_page_lists_live_lessons_only_to_a_token_that_may_see_them(server: ServerProcess) -> None:
    import asyncio

    from harness import raw_client

    admin = mint_token(server, role="admin")
    inspector = mint_token(server, role="observer", lesson="*", classroom="observer")
    other_lesson = mint_token(server, role="observer", lesson="other", classroom="observer")
    title = "演示课"

    def landing(token: str | None = None) -> str:
        return call(server, "GET", "/" + (f"?token={token}" if token else ""))[1]

    async def scenario() -> tuple[str, list[str]]:
        watcher = await raw_client(server.url)  # an administrator watching: invisible, not "online"
        assert (await watcher.call("join", {"token": admin, "lesson": "demo"}))["ok"]
        admin_only = await asyncio.to_thread(landing, admin)
        rural = await raw_client(server.url)
        assert (await rural.call("join", {"token": mint_token(server, role="rural", classroom="rural-2")}))["ok"]
        await asyncio.to_thread(wait_for, lambda: title in landing(admin), 10, "the lesson on the admin's page")
        pages = [await asyncio.to_thread(landing, t) for t in (None, "forged.token.x", other_lesson, inspector,
                                                                 admin)]
        await rural.disconnect()
        await watcher.disconnect()
        return admin_only, pages

    admin_only, (anonymous, forged, other, inspector_page, admin_page) = asyncio.run(scenario())
    assert title not in admin_only and "No lesson is live now" in admin_only, "an admin alone is not a live lesson"
    for page in (anonymous, forged, other):
        assert "Open the lesson link" in page
        assert title not in page and "demo" not in page and "online" not in page, page
    for page in (inspector_page, admin_page):
        assert title in page and "1/4" in page, page  # one classroom online; the admin does not count
