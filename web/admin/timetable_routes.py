"""The console's timetable API (admins; each change in the audit log):

    POST /api/admin/timetable/solve {files: {settings: CSV, schools: CSV, …}, time_limit?}
                                          202 {job}; 400 naming file, row and field; 409 while one runs
    GET  /api/admin/timetable/jobs/{job}  progress: elapsed, the solver's log lines, then the timetable id
    GET  /api/admin/timetable             the stored timetables, newest first
    GET  /api/admin/timetable/{id}        summary and unmet needs with their reasons
    GET  /api/admin/timetable/{id}/check  violations of its own input (a re-check)
    POST /api/admin/timetable/{id}/apply {week: YYYY-MM-DD}   the week's lessons, as `twinclass schedule apply`
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from scheduler.apply import apply_week
from scheduler.errors import InputError as TableError
from sfu.store import LessonStore
from sfu.tokens import Claims, TokenIssuer
from twinclass.http_input import InputError, date_value, float_param, http_error, int_param, json_body
from twinclass.lesson_port import StoreLessonPort
from web.admin.timetable import Busy, TimetableDesk, applied_json, describe

Record = Callable[[Claims, str, str, dict[str, Any]], Awaitable[None]]
MAX_TIME_LIMIT_S = 600.0


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


def _fail(kind: type[web.HTTPException], message: str, **extra: Any) -> web.HTTPException:
    return kind(text=json.dumps({"error": message, **extra}, ensure_ascii=False), content_type="application/json")


def timetable_routes(admin: Callable[[web.Request], Claims], record: Record, data_dir: Path, store: LessonStore,
                     tokens: TokenIssuer) -> list[web.RouteDef]:
    desk = TimetableDesk(data_dir)
    port = StoreLessonPort(store, tokens)

    def timetable_of(request: web.Request) -> Any:
        tt = desk.get(request.match_info["tt_id"])
        if tt is None:
            raise _fail(web.HTTPNotFound, f"id: no timetable {request.match_info['tt_id']!r}")
        return tt

    async def solve(request: web.Request) -> web.Response:
        who = admin(request)
        time_limit = float_param(request, "time_limit", 0, MAX_TIME_LIMIT_S, 20.0, lo_open=True)
        workers = int_param(request, "workers", 1, 64, 1)  # the server also forwards live lessons
        body = await json_body(request)
        files = body.get("files")
        if not isinstance(files, dict) or not files or not all(isinstance(v, str) for v in files.values()):
            raise http_error(InputError("files", "an object {name: CSV text} of the timetable input files"))
        try:
            upload = await asyncio.to_thread(desk.validate, files)
            job = desk.start(upload, time_limit, workers)
        except TableError as exc:
            raise _fail(web.HTTPBadRequest, str(exc.issues[0]), issues=[i.to_json() for i in exc.issues]) from None
        except Busy as exc:
            raise _fail(web.HTTPConflict, str(exc)) from None
        await record(who, "timetable.solve", job.id, {"files": sorted(files), "time_limit_s": time_limit})
        return _json(job.to_json(), status=202)

    async def job_state(request: web.Request) -> web.Response:
        admin(request)
        job = desk.jobs.get(request.match_info["job_id"])
        if job is None:
            raise _fail(web.HTTPNotFound, f"job: no solve {request.match_info['job_id']!r}")
        return _json(job.to_json())

    async def listing(request: web.Request) -> web.Response:
        admin(request)
        return _json({"timetables": await asyncio.to_thread(desk.listing)})

    async def one(request: web.Request) -> web.Response:
        admin(request)
        return _json(describe(timetable_of(request)))

    async def recheck(request: web.Request) -> web.Response:
        admin(request)
        tt = timetable_of(request)
        violations = await asyncio.to_thread(desk.recheck, tt)
        if violations is None:
            raise _fail(web.HTTPNotFound, "the input of this timetable is not kept (solved elsewhere)")
        return _json({"timetable": tt.id, "ok": not violations, "violations": violations})

    async def apply(request: web.Request) -> web.Response:
        who = admin(request)
        tt = timetable_of(request)
        body = await json_body(request)
        try:
            week = date_value(body.get("week"), "week")
        except InputError as exc:
            raise http_error(exc) from None
        items = await asyncio.to_thread(apply_week, tt, week, port)
        result = applied_json(week, items)
        await record(who, "timetable.apply", tt.id, {"week": result["week"],
                                                     "lessons": [i["id"] for i in result["lessons"]]})
        return _json(result)

    return [
        web.post("/api/admin/timetable/solve", solve),
        web.get("/api/admin/timetable/jobs/{job_id}", job_state),
        web.get("/api/admin/timetable", listing),
        web.get("/api/admin/timetable/{tt_id}", one),
        web.get("/api/admin/timetable/{tt_id}/check", recheck),
        web.post("/api/admin/timetable/{tt_id}/apply", apply),
    ]
