"""The timetable HTTP API with a real aiohttp server and client."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from scheduler import cli
from scheduler.http import make_routes
from web.timetable import render as render_page

EXAMPLE_JSON = Path(__file__).resolve().parents[2] / "scheduler" / "examples" / "small.json"

ADMIN = {"Authorization": "Bearer admin-secret"}


def check_admin(request: web.Request) -> None:
    if request.headers.get("Authorization") != ADMIN["Authorization"]:
        raise web.HTTPUnauthorized(text="admin token required")


async def client_for(data_dir: Path) -> TestClient:
    app = web.Application()
    app.add_routes(make_routes(check_admin, data_dir, render_page))
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_solve_store_and_views(tmp_path: Path) -> None:
    client = await client_for(tmp_path)
    try:
        body = json.loads(EXAMPLE_JSON.read_text(encoding="utf-8"))
        r = await client.post("/api/schedule/solve", json=body)
        assert r.status == 401
        r = await client.post("/api/schedule/solve?time_limit=10&workers=2", json=body, headers=ADMIN)
        assert r.status == 201
        tt = await r.json()
        tid = tt["id"]
        assert tt["summary"]["covered"] == 5
        assert (tmp_path / "timetables" / f"{tid}.json").exists()

        r = await client.get(f"/api/timetable/{tid}", headers=ADMIN)
        assert (await r.json())["assignments"] == tt["assignments"]
        r = await client.get(f"/api/timetable/{tid}/unmet", headers=ADMIN)
        assert {u["cause"] for u in (await r.json())["unmet"]} == {"no_common_time", "no_class"}
        r = await client.get(f"/api/timetable/{tid}/check", headers=ADMIN)
        assert (await r.json()) == {"violations": [], "ok": True}

        r = await client.get(f"/api/timetable/{tid}/classroom/hexi-g3", headers=ADMIN)
        view = await r.json()
        assert view["kind"] == "classroom" and len(view["lessons"]) == 3
        r = await client.get(f"/api/timetable/{tid}/classroom/hexi-g3?format=html", headers=ADMIN)
        assert r.content_type == "text/html" and "河西村小 三年级" in await r.text()
        r = await client.get(f"/api/timetable/{tid}/teacher/t-wang", headers={**ADMIN, "Accept": "text/html"})
        assert r.content_type == "text/html" and "王老师" in await r.text()
        r = await client.get(f"/api/timetable/{tid}/county/清水县", headers=ADMIN)
        assert (await r.json())["covered"] == 5
        r = await client.get(f"/api/timetable/{tid}/teacher/nobody", headers=ADMIN)
        assert r.status == 404
        r = await client.get("/api/timetable/..%2Fsecret", headers=ADMIN)
        assert r.status == 404
        r = await client.get(f"/api/timetable/{tid}/county/清水县", headers={"Authorization": "Bearer wrong"})
        assert r.status == 401

        r = await client.post(f"/api/schedule/solve?time_limit=10&previous={tid}", json=body, headers=ADMIN)
        again = await r.json()
        assert again["changes"]["kept"] == 5 and again["changes"]["removed"] == []
        r = await client.get("/api/timetable", headers=ADMIN)
        assert {t["id"] for t in (await r.json())["timetables"]} == {tid, again["id"]}
    finally:
        await client.close()


async def test_bad_input_names_row_and_field(tmp_path: Path) -> None:
    client = await client_for(tmp_path)
    try:
        body = json.loads(EXAMPLE_JSON.read_text(encoding="utf-8"))
        body["bells"][0]["start"] = "25:00"
        r = await client.post("/api/schedule/solve", json=body, headers=ADMIN)
        assert r.status == 400
        err = await r.json()
        assert err["issues"] == [{"file": "request body", "row": "bells[0]", "field": "start",
                                  "message": "'25:00' is not a time of day (00:00-23:59)"}]
        assert not (tmp_path / "timetables").exists()
        r = await client.post("/api/schedule/solve?time_limit=-1", json=body, headers=ADMIN)
        assert r.status == 400
        r = await client.post("/api/schedule/solve", data=b"{nope", headers=ADMIN)
        assert r.status == 400
    finally:
        await client.close()


async def test_solve_defaults_to_the_cli_worker_count(tmp_path: Path, monkeypatch: Any) -> None:
    from scheduler import http
    from scheduler.solver import SolveOptions

    seen: list[SolveOptions] = []
    real = http.make_timetable

    def spy(problem: Any, options: SolveOptions, previous: Any = None) -> Any:
        seen.append(options)
        options.time_limit_s = 2.0
        return real(problem, options, previous)

    monkeypatch.setattr(http, "make_timetable", spy)
    parser = argparse.ArgumentParser()
    cli.add_commands(parser.add_subparsers(), None)
    cli_default = parser.parse_args(["schedule", "solve", "x.json", "--out", "o"]).workers
    client = await client_for(tmp_path)
    try:
        body = json.loads(EXAMPLE_JSON.read_text(encoding="utf-8"))
        r = await client.post("/api/schedule/solve", json=body, headers=ADMIN)
        assert r.status == 201
        r = await client.post("/api/schedule/solve?workers=2", json=body, headers=ADMIN)
        assert r.status == 201
    finally:
        await client.close()
    assert [o.workers for o in seen] == [cli_default, 2] and cli_default == 0  # 0: one per CPU
