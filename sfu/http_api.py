"""The lesson JSON API: health, lessons (admin), and what is live now.

The lesson store is called through `asyncio.to_thread` (as in `sfu.signaling`), never on the event
loop that forwards RTP.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from datetime import datetime
from typing import Any

from aiohttp import web

from sfu.cascade import EdgeRoom
from sfu.cluster import LocalRegistry, NodeRegistry
from sfu.lessons import CLASSROOM_ID, Lesson, LessonError, Role
from sfu.media.aiortc_adapter import decoders_created
from sfu.room import LessonRoom, RoomDirectory
from sfu.scope import covers, is_full_admin, is_scoped
from sfu.store import LessonStore
from sfu.tokens import Claims, TokenError, TokenIssuer, new_subject
from twinclass.http_input import InputError, float_param, http_error, json_body, local_naive

SESSION_CLAIMS = "twinclass.session_claims"  # request key: the claims of a login session (twinclass.login_routes)


def request_token(request: web.Request) -> str | None:
    """The JWT of `Authorization: Bearer …`, else of `?token=`; None when neither is given."""
    header = request.headers.get("Authorization", "")
    token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else request.query.get("token")
    return token or None


def bearer_claims(request: web.Request, tokens: TokenIssuer) -> Claims:
    """Who this request is: THE resolver of every route. A token in the request (a signed link, a
    classroom device, another system) wins; else the claims of the login session its cookie names
    (set by the login middleware when OpenID Connect is on); else 401."""
    token = request_token(request)
    if token is None:
        session: Claims | None = request.get(SESSION_CLAIMS)
        if session is not None:
            return session
        raise web.HTTPUnauthorized(text='{"error": "bearer token required (or log in)"}',
                                   content_type="application/json")
    try:
        return tokens.verify(token)
    except TokenError as exc:
        raise web.HTTPUnauthorized(text=_err(str(exc)), content_type="application/json") from exc


def request_claims(request: web.Request, tokens: TokenIssuer) -> Claims | None:
    """`bearer_claims`, or None for a request that has neither a valid token nor a login (pages)."""
    try:
        return bearer_claims(request, tokens)
    except web.HTTPUnauthorized:
        return None


def require_admin(request: web.Request, tokens: TokenIssuer) -> Claims:
    """A full administrator: an admin token, or a bureau admin's login. A school admin is not one
    (the routes that serve school admins scope their answers with `sfu.scope` themselves)."""
    claims = bearer_claims(request, tokens)
    if claims.role != Role.ADMIN:
        reason = _err(f"admin token required (this one is {claims.role})")
        raise web.HTTPForbidden(text=reason, content_type="application/json")
    if not is_full_admin(claims):
        reason = _err(f"admin token required (this login is a school admin of {claims.school})")
        raise web.HTTPForbidden(text=reason, content_type="application/json")
    return claims


def _err(message: str) -> str:
    import json

    return json.dumps({"error": message}, ensure_ascii=False)


MAX_TOKEN_TTL_S = 366 * 24 * 3600
MAX_LISTENER_TOKENS = 1000  # one request's listener tokens


def listener_ids(request: web.Request, lesson: Lesson) -> list[str]:
    """The `listeners` query parameter: listening classroom ids of a broadcast lesson (400 naming it)."""
    raw = request.query.get("listeners", "")
    if not raw:
        return []
    ids = [i.strip() for i in raw.split(",") if i.strip()]

    def bad(message: str) -> web.HTTPBadRequest:
        return web.HTTPBadRequest(text=_err(f"listeners: {message}"), content_type="application/json")

    if not lesson.broadcast:
        raise bad(f"lesson {lesson.id!r} is a {lesson.kind} lesson; listening classrooms are for broadcasts")
    if len(ids) > MAX_LISTENER_TOKENS:
        raise bad(f"at most {MAX_LISTENER_TOKENS} at a time")
    for listener in ids:
        if not CLASSROOM_ID.match(listener) or lesson.role_of(listener) is not None:
            raise bad(f"{listener[:64]!r} is not a free classroom id (1-64 letters, digits, '_', '.', '-')")
    return ids


def _ttl(request: web.Request) -> float:
    """The `ttl` query parameter (seconds a minted token stays valid), or 400 with the reason."""
    return float_param(request, "ttl", 0, MAX_TOKEN_TTL_S, 6 * 3600, lo_open=True)


CREATABLE = ("id", "kind", "title", "subject", "grade", "master", "rurals", "planned_start", "planned_end",
             "rural_see_each_other", "record", "extra")


def _planned_times(body: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """`planned_start`/`planned_end` of a body as server-local ISO times (as lessons keep them);
    a zone on one and none on the other is ambiguous: 400."""
    zoned = {}
    for key in ("planned_start", "planned_end"):
        value = given.get(key)
        if value in (None, ""):
            continue
        at = local_naive(value, key)
        zoned[key] = isinstance(value, str) and datetime.fromisoformat(value.strip()).tzinfo is not None
        body[key] = at.isoformat()
    if len(set(zoned.values())) > 1:
        missing = next(k for k, z in zoned.items() if not z)
        raise InputError(missing, "give a time zone as the other planned time does (or neither)")
    return body


def _new_lesson(body: dict[str, Any]) -> Lesson:
    """A lesson from a POST body; InputError/LessonError name a bad field."""
    unknown = sorted(set(body) - set(CREATABLE))
    if unknown:
        raise InputError(unknown[0], f"unknown field (a lesson has {', '.join(CREATABLE)})")
    if "extra" in body and body["extra"] is not None and not isinstance(body["extra"], dict):
        raise InputError("extra", "must be an object")
    return Lesson.from_json(_planned_times(dict(body), body))


PATCHABLE = ("title", "record", "planned_start", "planned_end")


def _patched(lesson: Lesson, body: Any) -> Lesson:
    """The lesson with a PATCH body's fields changed; LessonError names a bad field."""
    if not isinstance(body, dict) or not body:
        raise LessonError(f"body: an object with any of {', '.join(PATCHABLE)}")
    unknown = sorted(set(body) - set(PATCHABLE))
    if unknown:
        raise LessonError(f"{unknown[0]}: cannot be changed (only {', '.join(PATCHABLE)})")
    changes: dict[str, Any] = {}
    if "title" in body:
        if not isinstance(body["title"], str):
            raise LessonError("title: must be a string")
        changes["title"] = body["title"]
    if "record" in body:
        if not isinstance(body["record"], bool):
            raise LessonError("record: must be true or false")
        changes["record"] = body["record"]
    for key in ("planned_start", "planned_end"):
        if key in body:
            value = body[key]
            # stored lessons keep server-local wall-clock times: compare and store like with like
            changes[key] = None if value in (None, "") else local_naive(value, key)
    changed = dataclasses.replace(lesson, **changes)
    changed.validate()
    return changed


def cascade_stats(room: LessonRoom) -> dict[str, Any]:
    """The lesson across nodes: on its origin, the edges' relay links; on an edge, its link."""
    relays = [p.classroom.removeprefix("relay:") for p in room.participants.values() if p.role == Role.RELAY]
    return {"relays": relays, **({"edge": room.relay_stats()} if isinstance(room, EdgeRoom) else {})}


def lesson_routes(store: LessonStore, tokens: TokenIssuer, rooms: RoomDirectory,
                  registry: NodeRegistry | None = None) -> list[web.RouteDef]:
    nodes: NodeRegistry = registry or LocalRegistry("")

    async def live(lesson: Lesson) -> dict[str, Any]:
        data = lesson.to_json()
        room = rooms.get(lesson.id)
        if room is not None:
            data["connected"] = [p.to_json() for p in room.connected_classrooms()]
            data["node"] = nodes.node_url
        else:  # live on another node, or not live
            data["connected"] = await nodes.presence(lesson.id) or []
        data["floor"] = room.floor if room else None
        data["hands"] = room.hands_json() if room else []
        return data

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "live_lessons": len(rooms.rooms)})

    async def list_lessons(request: web.Request) -> web.Response:
        claims = bearer_claims(request, tokens)
        lessons = await asyncio.to_thread(store.list)
        if not is_full_admin(claims):
            lessons = [lesson for lesson in lessons if covers(claims, lesson)]
        return web.json_response({"lessons": [await live(lesson) for lesson in lessons]})

    async def get_lesson(request: web.Request) -> web.Response:
        claims = bearer_claims(request, tokens)
        lesson_id = request.match_info["lesson_id"]
        if not is_full_admin(claims) and claims.lesson != lesson_id and not is_scoped(claims):
            raise web.HTTPForbidden(text=_err("token is for another lesson"), content_type="application/json")
        lesson = await asyncio.to_thread(store.get, lesson_id)
        if lesson is not None and not covers(claims, lesson):  # a scoped login: same answer as above
            raise web.HTTPForbidden(text=_err("token is for another lesson"), content_type="application/json")
        if lesson is None:
            raise web.HTTPNotFound(text=_err(f"lesson {lesson_id!r} not found"), content_type="application/json")
        return web.json_response(await live(lesson))

    async def create_lesson(request: web.Request) -> web.Response:
        require_admin(request, tokens)
        body = await json_body(request)
        try:
            lesson = await asyncio.to_thread(store.create, _new_lesson(body))
        except InputError as exc:
            raise http_error(exc) from None
        except LessonError as exc:
            raise web.HTTPBadRequest(text=_err(str(exc)), content_type="application/json") from exc
        return web.json_response(lesson.to_json(), status=201)

    async def mint_tokens(request: web.Request) -> web.Response:
        """Join tokens for every classroom of a lesson (admin), so other systems can hand out links;
        `?listeners=ID,ID…` adds listener tokens for a broadcast's listening classrooms."""
        require_admin(request, tokens)
        lesson = await asyncio.to_thread(store.get, request.match_info["lesson_id"])
        if lesson is None:
            raise web.HTTPNotFound(text=_err("lesson not found"), content_type="application/json")
        ttl = _ttl(request)
        out = {
            c.id: tokens.mint(lesson=lesson.id, classroom=c.id, name=c.name, role=lesson.role_of(c.id) or Role.RURAL,
                              ttl_s=ttl)
            for c in lesson.classrooms
        }
        out["observer"] = tokens.mint(lesson=lesson.id, classroom="observer", name="observer", role=Role.OBSERVER,
                                      ttl_s=ttl, sub=new_subject())  # each link its own author
        for listener in listener_ids(request, lesson):
            out[listener] = tokens.mint(lesson=lesson.id, classroom=listener, name=listener, role=Role.LISTENER,
                                        ttl_s=ttl)
        return web.json_response({"lesson": lesson.id, "tokens": out})

    async def update_lesson(request: web.Request) -> web.Response:
        """Change a lesson (admin): `title`, `record`, `planned_start`, `planned_end`. A live room
        takes the change at once (the recorder stops or starts)."""
        require_admin(request, tokens)
        lesson = await asyncio.to_thread(store.get, request.match_info["lesson_id"])
        if lesson is None:
            raise web.HTTPNotFound(text=_err("lesson not found"), content_type="application/json")
        body = await json_body(request, require_object=False)  # _patched names what is wrong with it
        try:
            changed = _patched(lesson, body)
            changed = await asyncio.to_thread(store.update, changed)
        except InputError as exc:
            raise http_error(exc) from None
        except LessonError as exc:
            raise web.HTTPBadRequest(text=_err(str(exc)), content_type="application/json") from exc
        room = rooms.get(changed.id)
        if room is not None:
            room.update_lesson(changed)
        return web.json_response(await live(changed))

    async def cluster_nodes(request: web.Request) -> web.Response:
        """The cluster's live nodes and the load each last reported (admin)."""
        require_admin(request, tokens)
        return web.json_response({"nodes": [dataclasses.asdict(n) for n in await nodes.nodes()]})

    async def stats(request: web.Request) -> web.Response:
        """Forwarding counters (admin): proves the server forwards and never decodes."""
        require_admin(request, tokens)
        # aiortc names its decoder threads "video-decoder"/"audio-decoder"; Python 3.11 keeps
        # thread names to itself (the OS sees every thread under the process name), so say them here
        out: dict[str, Any] = {"decoders_created": decoders_created(),
                               "threads": sorted(t.name for t in threading.enumerate()), "lessons": {}}
        for lesson_id, room in rooms.rooms.items():
            tracks = {}
            for p in room.participants.values():
                for source, track in p.published.items():
                    tracks[f"{p.classroom}/{source}"] = {
                        "packets_in": track.stats.packets_in,
                        "bytes_in": track.stats.bytes_in,
                        "keyframe_requests": track.stats.keyframe_requests_sent,
                        "patrol_keyframe_requests": track.stats.patrol_keyframe_requests,  # of those
                        "subscribers": len(track.slots),
                        "uplink": {"remb_bps": track.uplink.target_bps, "loss": round(track.uplink.loss, 3),
                                   "incoming_bps": round(track.uplink.incoming_bps)},
                        "nack": {"requested": track.nack.requested, "repaired": track.nack.repaired,
                                 "given_up": track.nack.given_up},
                        "tiers": {name: tier.stats() for name, tier in track.tiers.items()},
                    }
            slots = {}
            for p in room.participants.values():
                if p.subscriber is None:
                    continue
                for key, slot in p.subscriber.slots.items():
                    slots[f"{p.classroom}<-{key}"] = {
                        "source": slot.source.label if slot.source else None,
                        "tier": slot.source.tier_name if slot.source else None,
                        "started": bool(slot.port and slot.port.started),
                        "link": p.subscriber.link.to_json(),
                        "retransmissions": slot.port.retransmissions if slot.port else 0,
                        "retransmit_misses": slot.port.retransmit_misses if slot.port else 0,
                        "retransmits_throttled": slot.port.retransmits_throttled if slot.port else 0,
                        **slot.stats.__dict__,
                    }
            ice = {p.classroom: {"publish": p.publisher.candidate_pair() if p.publisher else None,
                                 "subscribe": p.subscriber.candidate_pair() if p.subscriber else None}
                   for p in room.participants.values()}
            out["lessons"][lesson_id] = {"participants": len(room.participants), "tracks": tracks, "slots": slots,
                                         "ice": ice, "media_lost": dict(room.media_lost), **cascade_stats(room)}
        return web.json_response(out)

    return [
        web.get("/healthz", healthz),
        web.get("/api/lessons", list_lessons),
        web.post("/api/lessons", create_lesson),
        web.get("/api/lessons/{lesson_id}", get_lesson),
        web.post("/api/lessons/{lesson_id}/tokens", mint_tokens),
        web.patch("/api/lessons/{lesson_id}", update_lesson),
        web.get("/api/stats", stats),
        web.get("/api/cluster/nodes", cluster_nodes),
    ]
