"""The browser lesson page and the files it loads, served by the lesson server itself.

- `GET /lesson/{lesson_id}?token=…`: the lesson page (master, rural or observer view: the token
  decides, when the page joins over socket.io). The page is static apart from a small JSON
  config block (ICE servers); the token never leaves the browser except in the `join` message.
- `GET /static/…`: the page's own modules, styles and string tables (`web/static/`).
- `GET /vendor/…`: browser libraries installed from npm with a lockfile (`web/node_modules/`,
  `make web-deps`); nothing comes from a CDN, schools' networks are often offline.
- `GET /`: a plain landing page ("open your lesson link"). It lists live lessons only to a token
  that may see them (`?token=` or `Authorization: Bearer`): admins and `*` observers every live
  lesson, a lesson's own token that lesson; no join links (those come from the timetable or
  `twinclass serve`). Only classrooms count as online (observers and admins are invisible).
  With a login (OpenID Connect), it says who is logged in, with a logout button, and lists the
  live lessons the login covers (`sfu.scope`); `/lesson/{id}` without a token then needs a login
  that covers the lesson (no login: to `/login`; another's lesson: 403).
"""

from __future__ import annotations

import asyncio
import html
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from sfu.http_api import SESSION_CLAIMS, request_claims, request_token
from sfu.lessons import Lesson
from sfu.room import LessonRoom, RoomDirectory
from sfu.scope import covered, covers, sees_all
from sfu.store import LessonStore
from sfu.tokens import Claims, TokenIssuer
from twinclass.http_input import path_param
from twinclass.login_routes import LOGIN_ENABLED, session_banner

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
NODE_MODULES = WEB_DIR / "node_modules"

# /vendor/<name>/... -> a folder of an npm package under web/node_modules (only these, only these kinds)
VENDOR_DIRS = {
    "socket.io": "socket.io-client/dist",  # socket.io.esm.min.js
    "noto-sans-sc": "@fontsource-variable/noto-sans-sc",  # index.css + files/*.woff2 (CJK for any OS)
    "hls.js": "hls.js/dist",  # hls.min.js + hls.worker.js: the live HLS watch page (recorder.live_routes)
}
VENDOR_SUFFIXES = (".js", ".map", ".css", ".woff2")

_NO_CACHE = {"Cache-Control": "no-cache"}  # revalidate (ETag/Last-Modified) so upgrades show at once
_CONFIG_MARK = "{{TWINCLASS_CONFIG}}"


def page_config(rooms: RoomDirectory) -> dict[str, Any]:
    """What the page needs from the server configuration before it joins."""
    return {"iceServers": [{"urls": url} for url in rooms.ice_servers]}


def _script_json(data: dict[str, Any]) -> str:
    """JSON that is safe inside a <script> element."""
    return json.dumps(data, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e")


def _simple_page(title: str, body: str, status: int = 200) -> web.Response:
    text = (
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><link rel='stylesheet' href='/static/css/lesson.css'></head>"
        f"<body class='simple-page'><main>{body}</main></body></html>"
    )
    return web.Response(text=text, content_type="text/html", status=status, headers=_NO_CACHE)


def _safe_file(base: Path, relative: str) -> Path:
    if "\x00" in relative:
        raise web.HTTPNotFound()
    path = (base / relative).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        raise web.HTTPNotFound()
    return path


def add_routes(
    app: web.Application, *, store: LessonStore, tokens: TokenIssuer, rooms: RoomDirectory, data_dir: Path
) -> None:
    """Register the lesson page, its static files and the vendored browser libraries."""
    template = (STATIC_DIR / "lesson.html").read_text(encoding="utf-8")

    async def lesson_page(request: web.Request) -> web.Response:
        lesson_id = request.match_info["lesson_id"]
        lesson = store.get(lesson_id)
        if lesson is None:
            return _simple_page(
                "Twinclass",
                f"<h1>课堂不存在 · Lesson not found</h1><p>{html.escape(lesson_id)}</p>",
                status=404,
            )
        if request_token(request) is None:  # no link token: a login session opens the page, or the login
            session = request.get(SESSION_CLAIMS)
            if session is None and request.app.get(LOGIN_ENABLED, False):
                raise web.HTTPFound("/login?" + urlencode({"next": request.path_qs}))
            if session is not None and not covers(session, lesson):
                return _simple_page("Twinclass", "<h1>无权进入此课堂 · Not your lesson</h1><p>你的账号不能打开这节课。"
                                    "Your account may not open this lesson.</p>" + session_banner(request), status=403)
        text = template.replace(_CONFIG_MARK, _script_json(page_config(rooms)))
        return web.Response(text=text, content_type="text/html", headers=_NO_CACHE)

    async def static_file(request: web.Request) -> web.FileResponse:
        return web.FileResponse(_safe_file(STATIC_DIR, path_param(request, "path")), headers=_NO_CACHE)

    async def vendor_file(request: web.Request) -> web.StreamResponse:
        package, relative = request.match_info["package"], path_param(request, "path")
        if package not in VENDOR_DIRS or not relative.endswith(VENDOR_SUFFIXES):
            raise web.HTTPNotFound()
        base = (NODE_MODULES / VENDOR_DIRS[package]).resolve()
        if not base.is_dir():
            raise web.HTTPServiceUnavailable(
                text=f"{package} is not installed: run `make web-deps` (npm ci in web/)", content_type="text/plain"
            )
        return web.FileResponse(_safe_file(base, relative), headers={"Cache-Control": "max-age=86400"})

    async def index(request: web.Request) -> web.Response:
        claims = request_claims(request, tokens)
        body = (session_banner(request) + "<h1>城乡结对课堂 Twinclass</h1>"
                "<p>请打开你收到的课堂链接进入课堂。Open the lesson link you were given to join.</p>"
                "<p class='muted'>管理员和巡课员：请使用带令牌的链接。Administrators and inspectors: use your "
                "link with its token.</p>")
        session = request.get(SESSION_CLAIMS)
        if session is not None and request_token(request) is None:  # a login: its lessons and pages
            body += _login_links(session, covered(session, await asyncio.to_thread(store.list)))
        if claims is not None:
            live = sorted((lesson_id, room) for lesson_id, room in rooms.rooms.items()
                          if room.connected_classrooms() and covers(claims, room.lesson))
            items = "".join(_live_item(room) for _lesson_id, room in live)
            listing = f"<ul>{items}</ul>" if items else "<p>现在没有进行中的课堂。No lesson is live now.</p>"
            body += f"<h2>进行中的课堂 Live lessons</h2>{listing}"
        return _simple_page("Twinclass", body)

    app.router.add_get("/lesson/{lesson_id}", lesson_page)
    app.router.add_get("/static/{path:.+}", static_file)
    app.router.add_get("/vendor/{package}/{path:.+}", vendor_file)
    if not any(getattr(r, "canonical", None) == "/" for r in app.router.resources()):
        app.router.add_get("/", index)


MAX_LISTED = 50


def _login_links(claims: Claims, lessons: list[Lesson]) -> str:
    """A logged-in person's lessons (to open without a token) and study pages."""
    lessons = sorted(lessons, key=lambda lesson: (lesson.planned_start is None, lesson.planned_start, lesson.id))
    items = "".join(
        f"<li><a href='/lesson/{html.escape(lesson.id)}'>{html.escape(lesson.title)}</a> "
        f"<span class='muted'>({html.escape(lesson.id)}"
        f"{' · ' + lesson.planned_start.isoformat(' ', 'minutes') if lesson.planned_start else ''})</span></li>"
        for lesson in lessons[:MAX_LISTED])
    more = f"<p class='muted'>… {len(lessons) - MAX_LISTED} more</p>" if len(lessons) > MAX_LISTED else ""
    pages = "<a href='/recordings'>录播课程库 Recordings</a>" + (
        " · <a href='/patrol'>巡课 Patrol</a>" if sees_all(claims) else "")
    listing = f"<ul id='my-lessons'>{items}</ul>{more}" if items else "<p>没有你的课堂。No lessons of yours.</p>"
    return f"<h2>你的课堂 Your lessons</h2>{listing}<p>{pages}</p>"


def _live_item(room: LessonRoom) -> str:
    connected = len(room.connected_classrooms())  # classrooms only: observers and admins are invisible
    return (f"<li><strong>{html.escape(room.lesson.title)}</strong> "
            f"<span class='muted'>({html.escape(room.lesson.id)} · {connected}/{len(room.lesson.classrooms)} "
            "个教室在线 classrooms online)</span></li>")
