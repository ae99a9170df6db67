"""HTTP API for the timetable (admin token): solve, read, per-classroom/teacher/county views,
unmet needs and a re-check. Solving runs in a thread so the event loop stays responsive."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from scheduler.errors import InputError, SchedulerError
from scheduler.export import write_json
from scheduler.inputs import build_problem
from scheduler.io_json import tables_from_json
from scheduler.pipeline import make_timetable
from scheduler.ports import HtmlRenderer
from scheduler.solver import SolveOptions
from scheduler.timetable import INPUT_SUFFIX, Timetable, read_timetable, stored_timetables, timetable_store
from scheduler.validate import check
from scheduler.views import NotFound, classroom_view, county_view, teacher_view
from twinclass import http_input
from twinclass.http_input import float_param, http_error, int_param, json_body

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MAX_TIME_LIMIT_S = 600.0


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return _json({"error": message, **extra}, status=status)


def make_routes(check_admin: Callable[[web.Request], None], data_dir: Path,
                render_html: HtmlRenderer | None = None) -> list[web.RouteDef]:
    store = timetable_store(data_dir)

    def load(request: web.Request) -> Timetable:
        tid = request.match_info["id"]
        path = store / f"{tid}.json"
        if not _ID_RE.match(tid) or not path.exists():
            raise http_error(http_input.InputError("id", "no such timetable", status=404))
        return read_timetable(path)

    def wants_html(request: web.Request) -> bool:
        fmt = request.query.get("format")
        if fmt:
            return fmt == "html"
        accept = request.headers.get("Accept", "")
        return "text/html" in accept and "application/json" not in accept

    async def solve(request: web.Request) -> web.Response:
        check_admin(request)
        time_limit = float_param(request, "time_limit", 0, MAX_TIME_LIMIT_S, 30.0, lo_open=True)
        workers = int_param(request, "workers", 1, 64, SolveOptions().workers)  # default as the CLI's: one per CPU
        body = await json_body(request, require_object=False)  # tables_from_json names what is wrong
        previous = None
        if "previous" in request.query:
            prev_id = request.query["previous"]
            if not _ID_RE.match(prev_id) or not (store / f"{prev_id}.json").exists():
                return _error(404, f"previous: no timetable {prev_id!r}")
            previous = read_timetable(store / f"{prev_id}.json")
        try:
            problem = build_problem(tables_from_json(body, "request body"))
        except InputError as exc:
            return _error(400, "input", issues=[i.to_json() for i in exc.issues])
        options = SolveOptions(time_limit_s=time_limit, workers=workers)
        loop = asyncio.get_running_loop()
        tt = await loop.run_in_executor(None, make_timetable, problem, options, previous)
        write_json(tt, store / f"{tt.id}.json")
        (store / f"{tt.id}{INPUT_SUFFIX}").write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
        return _json(tt.to_json(), status=201)

    async def listing(request: web.Request) -> web.Response:
        check_admin(request)
        items = []
        for path in stored_timetables(store):
            try:
                tt = read_timetable(path)
            except SchedulerError:
                continue
            items.append({"id": tt.id, "created_at": tt.created_at, "summary": tt.summary})
        return _json({"timetables": items})

    async def whole(request: web.Request) -> web.Response:
        check_admin(request)
        return _json(load(request).to_json())

    async def unmet(request: web.Request) -> web.Response:
        check_admin(request)
        return _json({"unmet": load(request).unmet})

    async def recheck(request: web.Request) -> web.Response:
        check_admin(request)
        tt = load(request)
        raw = store / f"{tt.id}{INPUT_SUFFIX}"
        if not raw.exists():
            return _error(404, "the input of this timetable was not stored")
        problem = build_problem(tables_from_json(json.loads(raw.read_text(encoding="utf-8")), raw.name))
        violations = check(problem, tt)
        return _json({"violations": [v.to_json() for v in violations], "ok": not violations})

    def view(build: Callable[[Timetable, str], dict[str, Any]], key: str) -> Callable[..., Any]:
        async def handler(request: web.Request) -> web.Response:
            check_admin(request)
            tt = load(request)
            try:
                data = build(tt, request.match_info[key])
            except NotFound:
                return _error(404, f"no {key} {request.match_info[key]!r} in timetable {tt.id}")
            if wants_html(request) and render_html is not None:
                return web.Response(text=render_html(data), content_type="text/html", charset="utf-8")
            return _json(data)

        return handler

    return [
        web.post("/api/schedule/solve", solve),
        web.get("/api/timetable", listing),
        web.get("/api/timetable/{id}", whole),
        web.get("/api/timetable/{id}/unmet", unmet),
        web.get("/api/timetable/{id}/check", recheck),
        web.get("/api/timetable/{id}/classroom/{classroom}", view(classroom_view, "classroom")),
        web.get("/api/timetable/{id}/teacher/{teacher}", view(teacher_view, "teacher")),
        web.get("/api/timetable/{id}/county/{county}", view(county_view, "county")),
    ]
