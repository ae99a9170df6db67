"""The live HLS streams over HTTP: the watch page, the playlist and the segments.

    GET /live/{lesson}?token=…                 the watch page (hls.js, or the browser's own HLS)
    GET /live/{lesson}/index.m3u8?token=…      the playlist (or ``Authorization: Bearer``)
    GET /live/{lesson}/{expires}-{sig}/{file}  the init segment and the segments (no token)

Who may watch: whom `sfu.scope.covers` lets read the lesson (a token of that lesson, a ``*``
observer, an admin of the lesson's schools); no token 401, another lesson's 403, a lesson that
is not live (or has no stream) 404.

Caching: the playlist is per viewer (it was fetched with a token) and changes every segment:
``private, max-age=1``. Its segment URIs sit under a signed prefix (an HMAC of the lesson and an
expiry time, keyed by a secret of this process) that is the same for every viewer for
`SIGN_STEP_S`, so a CDN or any shared cache in front of the server keeps one copy of each
segment for all of them: ``public, max-age=…, immutable`` (a name is never reused). The
signature is valid for `SIGN_STEP_S` to 2 × `SIGN_STEP_S`; a player refetches the playlist
every segment and so always holds a valid one. Segments leave the window (and the disk) after
about `WINDOW` × `SEGMENT_S`; later requests get 404.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import math
import re
import secrets
import time
from collections.abc import Mapping
from pathlib import Path

from aiohttp import web

from recorder.live_hls import PLAYLIST, LiveHls
from sfu.http_api import bearer_claims
from sfu.scope import covers
from sfu.store import LessonStore
from sfu.tokens import TokenIssuer
from twinclass.http_input import path_param

SIGN_STEP_S = 300  # the signed prefix changes this often (and stays valid twice as long)
SEGMENT_MAX_AGE_S = 60  # > WINDOW * SEGMENT_S, how long a segment stays listed: a cache never needs it later
_FILE_RE = re.compile(r"[0-9]{1,20}-(?:init\.mp4|[0-9]{1,12}\.m4s)")
_PREFIX_RE = re.compile(r"([0-9]{1,12})-([0-9a-f]{32})")
_CONTENT_TYPES = {".mp4": "video/mp4", ".m4s": "video/iso.segment"}
WATCH_PAGE = Path(__file__).resolve().parent.parent / "web" / "static" / "live.html"
_TITLE_MARK = "{{LESSON_TITLE}}"


class Signer:
    """Signed, shared, short-lived path prefixes for one lesson's segments."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def _sig(self, lesson_id: str, expires: int) -> str:
        return hmac.new(self._key, f"{lesson_id}\n{expires}".encode(), hashlib.sha256).hexdigest()[:32]

    def prefix(self, lesson_id: str, now: float | None = None) -> str:
        now = time.time() if now is None else now
        expires = (math.floor(now / SIGN_STEP_S) + 2) * SIGN_STEP_S
        return f"{expires}-{self._sig(lesson_id, expires)}"

    def valid(self, lesson_id: str, prefix: str, now: float | None = None) -> bool:
        match = _PREFIX_RE.fullmatch(prefix)
        if match is None:
            return False
        expires = int(match.group(1))
        now = time.time() if now is None else now
        return expires >= now and hmac.compare_digest(match.group(2), self._sig(lesson_id, expires))


def rewrite_playlist(text: str, prefix: str) -> str:
    """The muxer's playlist with every URI (segments, the init segment's EXT-X-MAP) under `prefix`."""
    out = []
    for line in text.splitlines():
        if line.startswith("#EXT-X-MAP:URI=\""):
            line = line.replace('URI="', f'URI="{prefix}/', 1)
        elif line and not line.startswith("#"):
            line = f"{prefix}/{line}"
        out.append(line)
    return "\n".join(out) + "\n"


def live_routes(streams: Mapping[str, LiveHls], store: LessonStore, tokens: TokenIssuer,
                signer: Signer | None = None) -> list[web.RouteDef]:
    signer = signer or Signer()

    def authorised(request: web.Request) -> str:
        """The lesson id, once the request's token (or login) may watch it."""
        claims = bearer_claims(request, tokens)  # 401 without a valid token
        lesson_id = request.match_info["lesson_id"]
        lesson = store.get(lesson_id)
        if lesson is None:
            raise web.HTTPNotFound(text=f'{{"error": "lesson {lesson_id!r} not found"}}',
                                   content_type="application/json")
        if not covers(claims, lesson):
            raise web.HTTPForbidden(text='{"error": "this token may not watch this lesson"}',
                                    content_type="application/json")
        return lesson_id

    def not_live(lesson_id: str) -> web.HTTPNotFound:
        return web.HTTPNotFound(text=f'{{"error": "lesson {lesson_id!r} is not live (no HLS stream)"}}',
                                content_type="application/json", headers={"Cache-Control": "no-store"})

    async def playlist(request: web.Request) -> web.Response:
        lesson_id = authorised(request)
        stream = streams.get(lesson_id)
        path = stream.directory / PLAYLIST if stream is not None else None
        if path is None or not path.is_file():
            raise not_live(lesson_id)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:  # the stream ended just now
            raise not_live(lesson_id) from exc
        return web.Response(text=rewrite_playlist(text, signer.prefix(lesson_id)),
                            content_type="application/vnd.apple.mpegurl",
                            headers={"Cache-Control": "private, max-age=1"})

    async def segment(request: web.Request) -> web.FileResponse:
        lesson_id, prefix = request.match_info["lesson_id"], request.match_info["prefix"]
        name = path_param(request, "file")
        if not signer.valid(lesson_id, prefix):
            raise web.HTTPForbidden(text='{"error": "segment link expired or not signed: fetch the playlist again"}',
                                    content_type="application/json")
        stream = streams.get(lesson_id)
        if stream is None or not _FILE_RE.fullmatch(name) or not (stream.directory / name).is_file():
            raise web.HTTPNotFound(text='{"error": "no such segment (it may have left the live window)"}',
                                   content_type="application/json", headers={"Cache-Control": "no-store"})
        path = stream.directory / name
        return web.FileResponse(path, headers={
            "Cache-Control": f"public, max-age={SEGMENT_MAX_AGE_S}, immutable",
            "Content-Type": _CONTENT_TYPES[path.suffix],
            "Access-Control-Allow-Origin": "*",  # a player on a CDN's own host name
        })

    async def watch_page(request: web.Request) -> web.Response:
        lesson_id = authorised(request)
        lesson = store.get(lesson_id)
        title = html.escape(lesson.title if lesson is not None else lesson_id)
        text = WATCH_PAGE.read_text(encoding="utf-8").replace(_TITLE_MARK, title)
        return web.Response(text=text, content_type="text/html", headers={"Cache-Control": "no-store"})

    return [
        web.get("/live/{lesson_id}", watch_page),
        web.get("/live/{lesson_id}/index.m3u8", playlist),
        web.get("/live/{lesson_id}/{prefix}/{file}", segment),
    ]

