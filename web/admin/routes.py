"""The admin console's pages and JSON API. Every API call is an administrator's: the bureau's
(`sfu.http_api.require_admin`: an admin token or a bureau admin's login) for planning, or a school
admin's login for their own school's day (`web.admin.school_scope`: marked [school] below, answers
scoped to the school); every change is written to the audit log.

Pages (static shells under ``web/static/admin/``; data from the API below):
    GET /admin                 schools and classrooms, lessons, live state, join links and QR codes
    GET /admin/audit           the audit log, newest first
    GET /admin/timetable       the term timetable: upload, solve, unmet needs, check, apply a week

API:
    GET   /api/admin/me                             [school] who is using the console, and its scope
    GET   /api/admin/directory                      [school] schools and classrooms (county, school, role)
    POST  /api/admin/directory/import               {schools: CSV text, classrooms: CSV text}
    GET   /api/admin/directory/{schools|classrooms}.csv[?kind=rural|urban]   [school]
    GET   /api/admin/lessons?from=&to=              [school] lessons planned in [from, to) (default: this week)
                                                    and every live one, with connected classrooms
    POST  /api/admin/lessons                        {title, master, rurals, planned_start, planned_end, …}
    GET   /api/admin/lessons/{id}                   [school] one lesson, live state
    PATCH /api/admin/lessons/{id}                   change it (classrooms only while not live)
    POST  /api/admin/lessons/{id}/end               [school] end it now: every connection is closed, and joins are
                                                    refused until its planned times are edited
    POST  /api/admin/lessons/{id}/links?ttl=        [school] join links with expiry and QR code (a school
                                                    admin gets their own classrooms' links only)
    GET   /api/admin/audit?limit=&offset=
    …/api/admin/timetable…                          the term timetable (`web.admin.timetable_routes`)
"""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from scheduler.errors import InputError as TableError
from sfu.cluster import LocalRegistry, NodeRegistry
from sfu.http_api import require_admin
from sfu.lessons import Lesson, LessonExists
from sfu.room import RoomDirectory
from sfu.signaling import Signaling
from sfu.store import LessonStore
from sfu.tokens import Claims, TokenIssuer
from twinclass.http_input import InputError, choice_param, date_param, float_param, http_error, int_param, json_body
from web.admin.audit import AuditLog
from web.admin.directory import CSV_TABLES, SchoolDirectory
from web.admin.hooks import audit_middleware
from web.admin.lessons import Recordings, changes, edited_lesson, ended_lesson, live_state, new_lesson
from web.admin.links import join_links
from web.admin.school_scope import ConsoleUser, console_user
from web.admin.timetable_routes import timetable_routes

PAGES_DIR = Path(__file__).resolve().parent.parent / "static" / "admin"
PAGES = {"/admin": "index.html", "/admin/audit": "audit.html", "/admin/timetable": "timetable.html"}
MAX_LINK_TTL_S = 366 * 24 * 3600
_NO_CACHE = {"Cache-Control": "no-cache"}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


def _fail(status: int, message: str, **extra: Any) -> web.HTTPException:
    kinds: dict[int, type[web.HTTPException]] = {400: web.HTTPBadRequest, 404: web.HTTPNotFound,
                                                 409: web.HTTPConflict}
    body = json.dumps({"error": message, **extra}, ensure_ascii=False)
    return kinds[status](text=body, content_type="application/json")


def table_error(exc: TableError) -> web.HTTPException:
    """400 naming the first bad file, row and field (all of them in `issues`)."""
    return _fail(400, str(exc.issues[0]), issues=[i.to_json() for i in exc.issues])


def add_admin_routes(app: web.Application, *, store: LessonStore, tokens: TokenIssuer, rooms: RoomDirectory,
                     engine: sa.Engine, signaling: Signaling, recordings: Recordings | None, public_url: str,
                     data_dir: Path, registry: NodeRegistry | None = None) -> None:
    """Register the console (called by the composition root). With a cluster `registry`, lessons
    live on other nodes show their classrooms too; ending such a lesson marks it ended in the
    shared store (no node lets anyone join it again), but its open sessions on that node stay
    until they leave (only this node's sessions are closed at once)."""
    nodes: NodeRegistry = registry or LocalRegistry(public_url)
    directory = SchoolDirectory(engine)
    audit = AuditLog(engine)
    app.middlewares.append(audit_middleware(audit, tokens))

    def admin(request: web.Request) -> Claims:
        return require_admin(request, tokens)

    def user(request: web.Request) -> ConsoleUser:
        return console_user(request, tokens)

    async def record(who: Claims, action: str, target: str = "", detail: dict[str, Any] | None = None) -> None:
        await asyncio.to_thread(audit.record, who, action, target, detail)

    async def state(lesson: Lesson) -> dict[str, Any]:
        elsewhere = None if rooms.get(lesson.id) is not None else await nodes.presence(lesson.id)
        return live_state(lesson, rooms, recordings, elsewhere)

    async def lesson_of(request: web.Request, by: ConsoleUser | None = None) -> Lesson:
        """The lesson of the path; 404 also when it is outside a school admin's scope (as if absent)."""
        lesson = await asyncio.to_thread(store.get, request.match_info["lesson_id"])
        if lesson is None or (by is not None and not by.sees_lesson(lesson)):
            raise _fail(404, f"lesson: no lesson {request.match_info['lesson_id']!r}")
        return lesson

    def page(name: str) -> Any:
        async def handler(request: web.Request) -> web.FileResponse:
            return web.FileResponse(PAGES_DIR / name, headers={**_NO_CACHE, "Content-Type": "text/html"})

        return handler

    # -- schools and classrooms ---------------------------------------------------------------------

    async def whoami(request: web.Request) -> web.Response:
        return _json(user(request).to_json())

    async def list_directory(request: web.Request) -> web.Response:
        by = user(request)
        data = await asyncio.to_thread(directory.to_json)
        places = [p.to_json() for p in by.places(await asyncio.to_thread(directory.places))]
        data = {"schools": [s for s in data["schools"] if by.bureau or by.school in (s["id"], s["name"])],
                "classrooms": places}
        return _json(data)

    async def import_directory(request: web.Request) -> web.Response:
        who = admin(request)
        body = await json_body(request)
        files = {k: v for k, v in body.items() if v not in (None, "")}
        for key, value in files.items():
            if not isinstance(value, str):
                raise http_error(InputError(key, "must be the CSV file's text"))
        try:
            counts = await asyncio.to_thread(directory.import_csv, files)
        except TableError as exc:
            raise table_error(exc) from None
        await record(who, "directory.import", ",".join(f"{k}.csv" for k in sorted(files)), counts)
        return _json({"imported": counts, **await asyncio.to_thread(directory.to_json)})

    async def export_directory(request: web.Request) -> web.Response:
        by = user(request)
        table = request.match_info["table"]
        if table not in CSV_TABLES:
            raise _fail(404, f"table: {table!r} is not one of {', '.join(CSV_TABLES)}")
        kind = choice_param(request, "kind", ("rural", "urban"), "")  # "": every school
        text = await asyncio.to_thread(directory.export_csv, table, kind, by.school)
        return web.Response(text=text, content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{table}.csv"'})

    # -- lessons ------------------------------------------------------------------------------------

    async def list_lessons(request: web.Request) -> web.Response:
        by = user(request)
        today = date.today()
        since = date_param(request, "from") or today - timedelta(days=today.weekday())
        until = date_param(request, "to") or since + timedelta(days=7)
        if until <= since:
            raise http_error(InputError("to", "must be after from"))
        planned = await asyncio.to_thread(store.planned_between, datetime.combine(since, datetime.min.time()),
                                          datetime.combine(until, datetime.min.time()))
        ids = {lesson.id for lesson in planned}
        live = [room.lesson for lesson_id, room in sorted(rooms.rooms.items())
                if lesson_id not in ids and room.connected_classrooms()]
        lessons = [await state(lesson) for lesson in [*live, *planned] if by.sees_lesson(lesson)]
        return _json({"from": since.isoformat(), "to": until.isoformat(), "today": today.isoformat(),
                      "lessons": lessons})

    async def create_lesson(request: web.Request) -> web.Response:
        who = admin(request)
        body = await json_body(request)
        places = {p.id: p for p in await asyncio.to_thread(directory.places)}
        lesson_id = f"l-{date.today():%Y%m%d}-{secrets.token_hex(3)}"
        try:
            lesson = await asyncio.to_thread(store.create, new_lesson(body, places, lesson_id))
        except InputError as exc:
            raise http_error(exc) from None
        except LessonExists as exc:
            raise _fail(409, str(exc)) from None
        await record(who, "lesson.create", lesson.id, {"title": lesson.title, "master": lesson.master.id,
                                                      "rurals": [r.id for r in lesson.rurals],
                                                      "planned_start": _iso(lesson.planned_start),
                                                      "planned_end": _iso(lesson.planned_end)})
        return _json(await state(lesson), status=201)

    async def get_lesson(request: web.Request) -> web.Response:
        return _json(await state(await lesson_of(request, user(request))))

    async def edit_lesson(request: web.Request) -> web.Response:
        who = admin(request)
        lesson = await lesson_of(request)
        body = await json_body(request)
        places = {p.id: p for p in await asyncio.to_thread(directory.places)}
        room = rooms.get(lesson.id)
        try:
            changed = edited_lesson(lesson, body, places, live=bool(room and room.connected_classrooms()))
        except InputError as exc:
            raise http_error(exc) from None
        changed = await asyncio.to_thread(store.update, changed)
        if room is not None:
            room.update_lesson(changed)  # the recorder stops or starts, the title follows
        await record(who, "lesson.edit", lesson.id, changes(lesson, changed))
        return _json(await state(changed))

    async def end_lesson(request: web.Request) -> web.Response:
        by = user(request)
        lesson = await asyncio.to_thread(store.update, ended_lesson(await lesson_of(request, by), datetime.now()))
        room = rooms.get(lesson.id)
        if room is not None:
            room.update_lesson(lesson)
        ended = await signaling.end_lesson(lesson.id)
        await record(by.claims, "lesson.end", lesson.id, {"disconnected": ended})
        return _json({"lesson": lesson.id, "disconnected": ended, "ended_at": lesson.extra["ended_at"]})

    async def lesson_links(request: web.Request) -> web.Response:
        by = user(request)
        lesson = await lesson_of(request, by)
        ttl = float_param(request, "ttl", 0, MAX_LINK_TTL_S, _default_ttl(lesson), lo_open=True)
        links = by.link_rows(lesson, await asyncio.to_thread(join_links, lesson, tokens, public_url, ttl))
        await record(by.claims, "lesson.links", lesson.id, {
            "ttl_s": round(ttl), "classrooms": [x["classroom"] for x in links],
            "expires_at": links[0]["expires_at"] if links else None})
        return _json({"lesson": lesson.id, "links": links})

    # -- audit --------------------------------------------------------------------------------------

    async def audit_page(request: web.Request) -> web.Response:
        admin(request)
        limit = int_param(request, "limit", 1, 200, 50)
        offset = int_param(request, "offset", 0, 10**9, 0)
        entries, total = await asyncio.to_thread(audit.page, limit=limit, offset=offset)
        return _json({"entries": entries, "total": total, "limit": limit, "offset": offset})

    app.add_routes(timetable_routes(admin, record, data_dir, store, tokens))
    for path, name in PAGES.items():
        app.router.add_get(path, page(name))
    app.router.add_get("/api/admin/me", whoami)
    app.router.add_get("/api/admin/directory", list_directory)
    app.router.add_post("/api/admin/directory/import", import_directory)
    app.router.add_get("/api/admin/directory/{table}.csv", export_directory)
    app.router.add_get("/api/admin/lessons", list_lessons)
    app.router.add_post("/api/admin/lessons", create_lesson)
    app.router.add_get("/api/admin/lessons/{lesson_id}", get_lesson)
    app.router.add_patch("/api/admin/lessons/{lesson_id}", edit_lesson)
    app.router.add_post("/api/admin/lessons/{lesson_id}/end", end_lesson)
    app.router.add_post("/api/admin/lessons/{lesson_id}/links", lesson_links)
    app.router.add_get("/api/admin/audit", audit_page)


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def _default_ttl(lesson: Lesson) -> float:
    """Links last until an hour after the planned end (at least 6 h when it has no end)."""
    if lesson.planned_end is None:
        return 6 * 3600.0
    left = (lesson.planned_end - datetime.now()).total_seconds()
    return max(3600.0, left + 3600.0)
