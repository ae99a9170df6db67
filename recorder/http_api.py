"""Recordings over HTTP: the catalog, one recording's manifest, and its files with range requests.

    GET  /api/recordings?lesson=&subject=&grade=&classroom=&date=YYYY-MM-DD&from=&to=&status=&limit=&offset=
    GET  /api/recordings/{id}                    the manifest (+ catalog row and file URLs)
    GET  /api/recordings/{id}/files/{path}       any file the manifest lists (Range: seekable)
    POST /api/recordings/{id}/build              rebuild now (admin)

Who may watch: admins and observers whose token's `lesson` is "*" every recording; any other
token (master, rural, or an observer link for one lesson) the recordings of its own lesson.
The token goes in ``Authorization: Bearer`` or, for a ``<video src>`` that cannot send
headers, in ``?token=``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from recorder.catalog import Recording, RecordingFilter
from recorder.chunks import read_status
from recorder.manifest import MANIFEST, read_manifest
from sfu.http_api import bearer_claims, require_admin
from sfu.lessons import Role
from sfu.scope import covered, covers, is_scoped, sees_all
from sfu.tokens import Claims, TokenIssuer
from twinclass.http_input import date_param, int_param, path_param, utc_naive_param

if TYPE_CHECKING:
    from recorder.service import RecorderService

CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".mkv": "video/x-matroska",
    ".jpg": "image/jpeg",
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
}


def _error(exc: type[web.HTTPException], message: str) -> web.HTTPException:
    return exc(text=json.dumps({"error": message}, ensure_ascii=False), content_type="application/json")


def may_watch_lesson(claims: Claims, lesson_id: str) -> bool:
    """Every lesson's recordings, or those of the token's own lesson (scoped logins: see `lookup`)."""
    if sees_all(claims):
        return True
    return claims.role in (Role.MASTER, Role.RURAL, Role.OBSERVER) and claims.lesson == lesson_id


def may_watch(claims: Claims, record: Recording) -> bool:
    return may_watch_lesson(claims, record.lesson_id)


MAX_PAGE = 1000
MAX_OFFSET = 10**9


def page_params(q: web.Request | Mapping[str, str], default: int = 500) -> tuple[int, int]:
    """`?limit=` (1 to 1000, newest first) and `?offset=` (0 to 10^9) of a recordings listing, or 400."""
    return (int_param(q, "limit", 1, MAX_PAGE, default), int_param(q, "offset", 0, MAX_OFFSET, 0))


def _urls(record: Recording) -> dict[str, str]:
    base = f"/api/recordings/{record.id}/files"
    return {"video": f"{base}/lesson.mp4", "poster": f"{base}/poster.jpg", "manifest": f"{base}/{MANIFEST}"}


def _backlogs(service: RecorderService, records: list[Recording]) -> dict[str, dict[str, Any]]:
    """For recordings in progress: how far behind live the chunk worker's archive build is."""
    out = {}
    for r in records:
        if r.status != "recording":
            continue
        status = read_status(service.root / r.directory)
        if status is not None:
            # the capture has kept growing since the worker last looked (it may be starved of CPU)
            since = max(0.0, time.time() - float(status["at"]))
            out[r.id] = {"behind_live_s": round(float(status["behind_s"]) + since, 1), "built_s": status["built_s"],
                         "recorded_s": round(float(status["capture_s"]) + since, 1), "state": status["state"],
                         "updated": status["at"]}
    return out


def recording_routes(service: RecorderService, tokens: TokenIssuer) -> list[web.RouteDef]:
    catalog = service.catalog

    def lookup(request: web.Request) -> tuple[Recording, Claims]:
        claims = bearer_claims(request, tokens)
        record = catalog.get(request.match_info["recording_id"])
        if record is None:
            raise _error(web.HTTPNotFound, "recording not found")
        lesson = service.store.get(record.lesson_id) if is_scoped(claims) else None
        if not (may_watch(claims, record) or (lesson is not None and covers(claims, lesson))):
            raise _error(web.HTTPForbidden, f"this token ({claims.role}) may not watch lesson {record.lesson_id!r}")
        return record, claims

    async def list_recordings(request: web.Request) -> web.Response:
        claims = bearer_claims(request, tokens)
        q = request.query
        f = RecordingFilter(lesson=q.get("lesson") or None, subject=q.get("subject") or None,
                            grade=q.get("grade") or None, classroom=q.get("classroom") or None,
                            status=q.get("status") or None)
        day = date_param(request, "date")  # years bounded: its local midnight converts to UTC
        if day is not None:
            f.since, f.until = RecordingFilter.local_day(day.isoformat())
        f.since = utc_naive_param(request, "from") or f.since
        f.until = utc_naive_param(request, "to") or f.until
        limit, f.offset = page_params(request)
        f.limit = limit + 1  # one more: is there a next page?
        if is_scoped(claims):  # a school admin's or teacher's login: the lessons its rule covers
            f.lessons = [lesson.id for lesson in covered(claims, await asyncio.to_thread(service.store.list))]
        elif not sees_all(claims):
            if f.lesson not in (None, claims.lesson):
                raise _error(web.HTTPForbidden, "this token may only list its own lesson's recordings")
            f.lesson = claims.lesson
        records = await asyncio.to_thread(catalog.list, f)
        backlog = await asyncio.to_thread(_backlogs, service, records[:limit])
        return web.json_response({"recordings": [{**r.to_json(), "urls": _urls(r), "build": backlog.get(r.id)}
                                                 for r in records[:limit]],
                                  "offset": f.offset, "limit": limit, "more": len(records) > limit})

    async def get_recording(request: web.Request) -> web.Response:
        record, _claims = lookup(request)
        directory = service.root / record.directory
        manifest = await asyncio.to_thread(read_manifest, directory) if record.status == "ready" else None
        body: dict[str, Any] = dict(manifest or {})
        body["recording"] = record.to_json()
        body["urls"] = _urls(record) if manifest else {}
        return web.json_response(body)

    async def get_file(request: web.Request) -> web.StreamResponse:
        record, _claims = lookup(request)
        directory = service.root / record.directory
        rel = path_param(request, "path")
        manifest = await asyncio.to_thread(read_manifest, directory)
        if manifest is None:
            raise _error(web.HTTPNotFound, f"recording {record.id} has no archive yet ({record.status})")
        listed = {f["path"] for f in manifest.get("files", [])} | {MANIFEST}
        if rel not in listed:
            raise _error(web.HTTPNotFound, f"{rel}: not a file of this archive")
        path = directory / rel
        if not path.is_file():
            raise _error(web.HTTPNotFound, f"{rel}: missing on disk")
        suffix = path.suffix.lower()
        headers = {"Content-Type": CONTENT_TYPES.get(suffix, "application/octet-stream"),
                   "Cache-Control": "private, max-age=3600"}
        return web.FileResponse(path, headers=headers)

    async def rebuild(request: web.Request) -> web.Response:
        require_admin(request, tokens)
        record = catalog.get(request.match_info["recording_id"])
        if record is None:
            raise _error(web.HTTPNotFound, "recording not found")
        if record.status == "recording":
            raise _error(web.HTTPConflict, "the lesson is still being recorded")
        service.enqueue_build(record.id)
        return web.json_response({"id": record.id, "status": "queued"}, status=202)

    return [
        web.get("/api/recordings", list_recordings),
        web.get("/api/recordings/{recording_id}", get_recording),
        web.get("/api/recordings/{recording_id}/files/{path:.+}", get_file),
        web.post("/api/recordings/{recording_id}/build", rebuild),
    ]
