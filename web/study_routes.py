"""Lesson study, patrol and usage reports over HTTP: the pages and their JSON API.

Pages (static shells under ``web/static/study/``; each takes ``?token=`` and ``?lang=en``):
    GET /recordings                      the recordings library
    GET /recordings/{id}                 player with markers, analysis, comments, rubric
    GET /recordings/{id}/report          the printable lesson-study report
    GET /patrol                          the patrol wall (巡课), admins and observers
    GET /reports                         usage reports with charts, admins

API (token in ``Authorization: Bearer`` or ``?token=``; see `web.study.access` for who may do what):
    GET    /api/study/recordings?subject=&grade=&school=&teacher=&classroom=&county=&from=&to=
    GET    /api/study/recordings/{id}    a recording with its lesson, markers and what you may do
    GET    /api/recordings/{id}/analysis[?interval=S]     classroom analysis (202 while computing)
    GET    /api/recordings/{id}/comments                  threads in time order
    POST   /api/recordings/{id}/comments {t, body} | {parent, body}
    DELETE /api/recordings/{id}/comments/{comment_id}     the author or an admin
    GET    /api/recordings/{id}/evaluations
    PUT    /api/recordings/{id}/evaluations/mine {scores: {dimension: {score, note}}, note}
    GET    /api/study/rubric             PUT (admin) to change dimensions and weights
    GET    /api/study/report/{id}        everything the printable report shows
    GET    /api/patrol[?county=]         live lessons and the missing ones, with tile tokens
    GET    /api/reports/usage?from=&to=&group=classroom|school|county|subject&county=&format=json|csv

The recorder owns ``/api/recordings`` and ``/api/recordings/{id}`` (and the media files); this
module only adds sub-resources of a recording and reads the recorder's catalog and manifests.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from recorder.analysis import AnalysisOptions
from recorder.catalog import Recording
from recorder.http_api import page_params
from sfu.http_api import bearer_claims
from sfu.lessons import Role
from sfu.room import RoomDirectory
from sfu.scope import covered, is_scoped
from sfu.store import AttendanceLog, LessonStore
from sfu.tokens import TokenIssuer
from twinclass.http_input import (
    InputError,
    choice_param,
    date_param,
    float_param,
    http_error,
    id_param,
    id_value,
    json_body,
)
from web.study import reports
from web.study.access import Viewer
from web.study.comments import CommentError, CommentStore, threads
from web.study.config import StudyConfig
from web.study.directory import Directory
from web.study.library import AnalysisRunner, LibraryFilter, RecordingLibrary
from web.study.patrol import patrol
from web.study.rubric import RubricError, RubricStore, summary

PAGES_DIR = Path(__file__).resolve().parent / "static" / "study"
_NO_CACHE = {"Cache-Control": "no-cache"}
PAGES = {"library": "recordings.html", "recording": "recording.html", "report": "report.html",
         "patrol": "patrol.html", "reports": "reports.html"}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


def _fail(exc: type[web.HTTPException], message: str) -> web.HTTPException:
    return exc(text=json.dumps({"error": message}, ensure_ascii=False), content_type="application/json")


def add_study_routes(app: web.Application, *, store: LessonStore, tokens: TokenIssuer, rooms: RoomDirectory,
                     data_dir: Path, engine: sa.Engine, config: StudyConfig | None = None) -> None:
    """Register every lesson-study, patrol and report route and page (called by the composition root)."""
    config = config or StudyConfig.from_env()
    directory = Directory(data_dir)
    library = RecordingLibrary(engine, store, data_dir, directory)
    comments = CommentStore(engine)
    rubrics = RubricStore(engine)
    attendance = AttendanceLog(engine)
    runner = AnalysisRunner(engine, library, poll_s=config.analysis_poll_s, nice=config.analysis_nice,
                            enabled=config.analysis_enabled)
    app.on_startup.append(runner.start)
    app.on_shutdown.append(runner.stop)
    app["study_analysis"] = runner

    def viewer(request: web.Request) -> Viewer:
        claims = bearer_claims(request, tokens)
        if not is_scoped(claims):
            return Viewer(claims)
        return Viewer(claims, frozenset(lesson.id for lesson in covered(claims, store.list())))

    def recording(request: web.Request, *, study: bool = False) -> tuple[Recording, Viewer]:
        who = viewer(request)
        record = library.catalog.get(request.match_info["recording_id"])
        if record is None:
            raise _fail(web.HTTPNotFound, "recording not found")
        allowed = who.may_read_study(record.lesson_id) if study else who.may_watch(record.lesson_id)
        if not allowed:
            raise _fail(web.HTTPForbidden, f"this token ({who.role}) may not open this recording's "
                                           f"{'comments and evaluations' if study else 'lesson'}")
        return record, who

    def require_writer(who: Viewer, record: Recording) -> None:
        if not who.may_write_study:
            raise _fail(web.HTTPForbidden, "only observers and administrators write comments and evaluations")
        if not who.may_write_study_on(record.lesson_id):
            raise _fail(web.HTTPForbidden, "this observer token is for another lesson")

    # -- pages ------------------------------------------------------------------------------------

    def page(name: str) -> Any:
        async def handler(request: web.Request) -> web.FileResponse:
            return web.FileResponse(PAGES_DIR / PAGES[name], headers={**_NO_CACHE, "Content-Type": "text/html"})

        return handler

    # -- recordings -------------------------------------------------------------------------------

    async def search(request: web.Request) -> web.Response:
        who = viewer(request)
        q = request.query
        f = LibraryFilter(subject=q.get("subject", ""), grade=q.get("grade", ""), school=q.get("school", ""),
                          teacher=q.get("teacher", ""), classroom=q.get("classroom", ""),
                          county=q.get("county", ""), lesson=q.get("lesson", ""),
                          since=date_param(request, "from"), until=date_param(request, "to"))
        limit, offset = page_params(request, default=200)

        allowed = None if who.sees_all else who.lessons if is_scoped(who.claims) else who.claims.lesson

        def page() -> tuple[list[dict[str, Any]], bool]:
            found, more = library.search(f, lessons_allowed=allowed, limit=limit, offset=offset)
            ids = [r["id"] for r in found]
            n_comments, n_evals = comments.counts(ids), rubrics.counts(ids)
            for item in found:
                item["comments"] = n_comments.get(item["id"], 0)
                item["evaluations"] = n_evals.get(item["id"], 0)
            return found, more

        found, more = await asyncio.to_thread(page)
        facets = {k: sorted({str(v) for r in found for v in ([r[k]] if isinstance(r[k], str) else r[k]) if v})
                  for k in ("subject", "grade", "schools", "teacher", "counties")}
        return _json({"recordings": found, "facets": facets, "offset": offset, "limit": limit, "more": more,
                      "you": _you(who)})

    async def detail(request: web.Request) -> web.Response:
        record, who = recording(request)

        def describe() -> dict[str, Any]:  # the lesson, the manifest (files): off the event loop
            lesson = library.lesson_of(record)
            manifest = library.manifest(record)
            body = library.describe(record, lesson)
            base = f"/api/recordings/{record.id}/files"
            body.update(
                markers=library.markers(record),
                video=f"{base}/lesson.mp4" if manifest else None,
                poster=f"{base}/{manifest['poster']}" if manifest and manifest.get("poster") else None,
                thumbnails=[{"t": t["t"], "url": f"{base}/{t['file']}"}
                            for t in (manifest or {}).get("thumbnails", [])],
                subject=lesson.subject if lesson else record.subject,
                grade=lesson.grade if lesson else record.grade,
            )
            return body

        body = await asyncio.to_thread(describe)
        body.update(you=_you(who), may={"study": who.may_read_study(record.lesson_id),
                                        "write": who.may_write_study_on(record.lesson_id)})
        return _json(body)

    async def analysis(request: web.Request) -> web.Response:
        record, _who = recording(request)
        options: AnalysisOptions | None = None
        value = float_param(request, "interval", 1, 600, config.st_interval_s)  # seconds between S-T samples
        if request.query.get("interval") or value != AnalysisOptions.st_interval_s:
            options = AnalysisOptions(st_interval_s=value)
        state = runner.state(record, options)
        if state["status"] == "ready":
            return _json(state["analysis"])
        status = 202 if state["status"] in ("pending", "running") else 409
        return _json({"recording": record.id, **state}, status=status)

    # -- comments ---------------------------------------------------------------------------------

    async def list_comments(request: web.Request) -> web.Response:
        record, who = recording(request, study=True)
        return _json({"recording": record.id, "comments": threads(comments.list(record.id), who.author.key)})

    async def add_comment(request: web.Request) -> web.Response:
        record, who = recording(request, study=True)
        require_writer(who, record)
        data = await json_body(request)
        try:
            parent = None if data.get("parent") is None else id_value(data["parent"], "parent")
            c = comments.add(record.id, who.author, data.get("body"), data.get("t"), parent,
                             duration_s=record.duration_s)
        except InputError as exc:
            raise http_error(exc) from None
        except CommentError as exc:
            raise _fail(web.HTTPBadRequest, str(exc)) from exc
        return _json(c.to_json(who.author.key), status=201)

    async def delete_comment(request: web.Request) -> web.Response:
        record, who = recording(request, study=True)
        c = comments.get(id_param(request, "comment_id"))
        if c is None or c.recording_id != record.id:
            raise _fail(web.HTTPNotFound, "comment not found")
        if not (who.is_admin or c.author_key == who.author.key):
            raise _fail(web.HTTPForbidden, "only its author or an administrator deletes a comment")
        comments.delete(c.id)
        return _json({"deleted": c.id})

    # -- rubric and evaluations --------------------------------------------------------------------

    async def get_rubric(request: web.Request) -> web.Response:
        viewer(request)
        return _json(rubrics.rubric().to_json())

    async def put_rubric(request: web.Request) -> web.Response:
        who = viewer(request)
        if not who.is_admin:
            raise _fail(web.HTTPForbidden, "only administrators change the rubric")
        try:
            rubric = rubrics.set_rubric(await json_body(request), who.author.name)
        except RubricError as exc:
            raise _fail(web.HTTPBadRequest, str(exc)) from exc
        return _json(rubric.to_json())

    async def list_evaluations(request: web.Request) -> web.Response:
        record, who = recording(request, study=True)
        items = rubrics.list(record.id, who.author.key)
        return _json({"recording": record.id, "evaluations": items, "summary": summary(items),
                      "rubric": rubrics.rubric().to_json()})

    async def save_evaluation(request: web.Request) -> web.Response:
        record, who = recording(request, study=True)
        require_writer(who, record)
        data = await json_body(request)
        try:
            saved = rubrics.save(record.id, who.author, data.get("scores"), data.get("note", ""))
        except RubricError as exc:
            raise _fail(web.HTTPBadRequest, str(exc)) from exc
        return _json(saved)

    async def report_data(request: web.Request) -> web.Response:
        record, who = recording(request, study=True)
        state = runner.state(record, AnalysisOptions(st_interval_s=config.st_interval_s))

        def gather() -> dict[str, Any]:  # the lesson, the manifest, comments, evaluations: off the event loop
            lesson = library.lesson_of(record)
            evaluations = rubrics.list(record.id, who.author.key)
            return {
                "recording": library.describe(record, lesson),
                "lesson": lesson.to_json() if lesson else None,
                "markers": library.markers(record),
                "comments": threads(comments.list(record.id), who.author.key),
                "evaluations": evaluations,
                "summary": summary(evaluations),
                "rubric": rubrics.rubric().to_json(),
            }

        body = await asyncio.to_thread(gather)
        return _json({**body, "analysis": state.get("analysis"), "analysis_status": state["status"],
                      "generated_at": datetime.now().astimezone().isoformat(), "you": _you(who)})

    # -- patrol -----------------------------------------------------------------------------------

    async def patrol_wall(request: web.Request) -> web.Response:
        who = viewer(request)
        if not who.may_patrol:
            raise _fail(web.HTTPForbidden, "the patrol wall is for administrators and observers")
        wall = await patrol(store, rooms, directory, county=request.query.get("county", ""))
        name = f"{who.author.name}（巡课）"
        subject = who.claims.sub or who.author.key
        for tile in wall["live"]:
            # the tile's token is the patroller's, for that one lesson (same author, if it writes)
            tile["token"] = tokens.mint(lesson=tile["lesson"], classroom="observer", name=name, role=Role.OBSERVER,
                                        ttl_s=config.patrol_token_ttl_s, sub=subject)
        wall["ice_servers"] = [{"urls": url} for url in rooms.ice_servers]
        wall["you"] = _you(who)
        return _json(wall)

    # -- usage reports ----------------------------------------------------------------------------

    async def usage(request: web.Request) -> web.StreamResponse:
        who = viewer(request)
        if not who.may_report:
            raise _fail(web.HTTPForbidden, "usage reports are for administrators")
        q = request.query
        try:
            since, until = reports.parse_range(date_param(request, "from"), date_param(request, "to"))
        except ValueError as exc:
            raise _fail(web.HTTPBadRequest, str(exc)) from exc
        group = choice_param(request, "group", reports.GROUPS, "classroom")
        report = await asyncio.to_thread(reports.usage_between, store, attendance, library.catalog, comments,
                                         rubrics, directory, since=since, until=until, group=group,
                                         county=q.get("county", ""))
        if q.get("format") == "csv":
            name = f"usage-{group}-{since}-{until}{'-' + q['county'] if q.get('county') else ''}.csv"
            return web.Response(
                text=reports.to_csv(report), content_type="text/csv", charset="utf-8",
                headers={"Content-Disposition": f"attachment; filename*=UTF-8''{_quote(name)}"})
        return _json(report)

    app.router.add_get("/recordings", page("library"))
    app.router.add_get("/recordings/{recording_id}", page("recording"))
    app.router.add_get("/recordings/{recording_id}/report", page("report"))
    app.router.add_get("/patrol", page("patrol"))
    app.router.add_get("/reports", page("reports"))
    app.router.add_get("/api/study/recordings", search)
    app.router.add_get("/api/study/recordings/{recording_id}", detail)
    app.router.add_get("/api/study/report/{recording_id}", report_data)
    app.router.add_get("/api/study/rubric", get_rubric)
    app.router.add_put("/api/study/rubric", put_rubric)
    app.router.add_get("/api/recordings/{recording_id}/analysis", analysis)
    app.router.add_get("/api/recordings/{recording_id}/comments", list_comments)
    app.router.add_post("/api/recordings/{recording_id}/comments", add_comment)
    app.router.add_delete("/api/recordings/{recording_id}/comments/{comment_id}", delete_comment)
    app.router.add_get("/api/recordings/{recording_id}/evaluations", list_evaluations)
    app.router.add_put("/api/recordings/{recording_id}/evaluations/mine", save_evaluation)
    app.router.add_get("/api/patrol", patrol_wall)
    app.router.add_get("/api/reports/usage", usage)


def _you(who: Viewer) -> dict[str, Any]:
    return {"name": who.author.name, "role": who.author.role, "lesson": who.claims.lesson or None,
            "admin": who.is_admin, "may_patrol": who.may_patrol, "may_report": who.may_report,
            "may_write": who.may_write_study}


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")
