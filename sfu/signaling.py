"""Socket.io signaling: join with a token, publish/subscribe offer-answer, ICE, classroom events.

Client -> server (each answered through the socket.io ack as {"ok": true, ...} or
{"ok": false, "error": {"code", "message"}}):
  join {token, lesson?}            -> {lesson, you, classrooms, hands, floor, courseware, guests,
                                       nodes? (a viewer in a cluster: the live nodes, to try if ours dies)}
  publish {sdp, sources{mid: camera|mic|courseware}} -> {sdp}   (answer)
  subscribe {mode?: full|patrol}   -> {sdp, slots}               (our offer; patrol: observers,
                                      camera slots only, keyframes only: a patrol wall's tile)
  subscribe_answer {sdp}           -> {}
  ice {target: publish|subscribe, candidate: {candidate, sdpMid, sdpMLineIndex}}
  raise_hand {} / lower_hand {classroom?} / give_floor {classroom} / take_floor {}
  request_mute {classroom} / courseware {on} / leave {}
  relay_hand {classroom, name, up}  (only an edge node's relay link, sfu.cascade: a hand raised there)
Server -> client events: classroom_joined, classroom_left, hand_raised, hand_lowered, hands,
  floor, mute_requested, courseware, slots, error, kicked {reason, code?: "lesson_ended" when an
  administrator ended the lesson}, and server_stopping {reason,
  retry_after_s} when the server drains (SIGTERM): it then closes the socket; come back after
  retry_after_s (twinclass/server.py `drain`).
  media_lost {target: publish|subscribe, state: failed|closed, ufrag}: the server's side of that
  media connection failed or was closed (ICE or DTLS gave up, a DTLS close, ICE consent expired)
  while the session stays; the server has ended it (a publication's tracks are unpublished, the
  slots they fed freed). `ufrag` is the ICE username fragment of the classroom's side of the lost
  connection: if it is the connection the classroom uses now, it publishes (or subscribes) again on
  this session. A publish offer with another ICE username fragment than the publishing
  connection's, or another subscribe, replaces the connection the same way.

A malformed message or SDP gets an `error` event and closes that session only. Limits
(`sfu.admission.Limits`: sockets per token and address, joins per second, the join deadline,
message and field sizes) are refused the same way with a `limit_<name>` code; every code sent
is counted in `Signaling.error_counts`. An `ice` candidate is checked field by field
(`candidate` a string, `sdpMid` a short string or null, `sdpMLineIndex` a small integer or null).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import socketio

from sfu.admission import Admission, LimitError, Limits
from sfu.cascade import VIEWER_ROLES, Cascade
from sfu.cluster import LocalRegistry, NodeRegistry
from sfu.lessons import Role
from sfu.media.endpoint import SdpError
from sfu.room import CLASSROOM_ROLES, LessonRoom, Participant, RoomDirectory, RoomError
from sfu.store import AttendanceLog, LessonStore
from sfu.tokens import TokenError, TokenIssuer

logger = logging.getLogger(__name__)

MAX_ICE_MID_CHARS = 64
MAX_ICE_MLINE_INDEX = 1023
MAX_ICE_CANDIDATE_CHARS = 1024
# subscribe's `mode`: "full" (every slot, every frame) or "patrol" (observers: cameras only,
# keyframes only, a few seconds apart; `sfu.media.forwarder` low-frame slots)
SUBSCRIBE_MODES = ("full", "patrol")


class ProtocolError(Exception):
    """A message that does not follow the protocol; the session is closed."""


def _failure(event: str, exc: Exception) -> str:
    """What a client is told when handling its message failed unexpectedly (details in the log)."""
    detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{event}: the server could not handle this message ({type(exc).__name__}{': ' + detail if detail else ''})"


@dataclass
class Session:
    sid: str
    lesson_id: str
    participant: Participant


Handler = Callable[[Session, dict[str, Any]], Awaitable[dict[str, Any] | None]]


def _field(data: dict[str, Any], key: str, kind: type, *, required: bool = True, max_len: int | None = None) -> Any:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, kind):
        raise ProtocolError(f"{key}: expected {kind.__name__}")
    if max_len is not None and isinstance(value, str | dict) and len(value) > max_len:
        raise ProtocolError(f"{key}: too long (at most {max_len})")
    return value


def ice_candidate(data: object) -> dict[str, Any]:
    """An `ice` message's candidate, checked field by field (ProtocolError names the field)."""
    if not isinstance(data, dict):
        raise ProtocolError("candidate: expected an object {candidate, sdpMid, sdpMLineIndex}")
    text = data.get("candidate")
    if not isinstance(text, str):
        raise ProtocolError("candidate.candidate: expected a string")
    if len(text) > MAX_ICE_CANDIDATE_CHARS:
        raise ProtocolError(f"candidate.candidate: too long (at most {MAX_ICE_CANDIDATE_CHARS})")
    mid = data.get("sdpMid")
    if mid is not None and (not isinstance(mid, str) or len(mid) > MAX_ICE_MID_CHARS):
        raise ProtocolError(f"candidate.sdpMid: expected a string of at most {MAX_ICE_MID_CHARS} or null")
    index = data.get("sdpMLineIndex")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int)
                              or not 0 <= index <= MAX_ICE_MLINE_INDEX):
        raise ProtocolError(f"candidate.sdpMLineIndex: expected an integer 0..{MAX_ICE_MLINE_INDEX} or null")
    ufrag = data.get("usernameFragment")
    if ufrag is not None and (not isinstance(ufrag, str) or len(ufrag) > 256):
        raise ProtocolError("candidate.usernameFragment: expected a string of at most 256 or null")
    return {"candidate": text, "sdpMid": mid, "sdpMLineIndex": index}


class Signaling:
    """Binds socket.io events to lesson rooms."""

    def __init__(self, sio: socketio.AsyncServer, store: LessonStore, tokens: TokenIssuer, rooms: RoomDirectory,
                 registry: NodeRegistry | None = None, attendance: AttendanceLog | None = None,
                 admission: Admission | None = None, error_counts: Counter[str] | None = None,
                 cascade: Cascade | None = None):
        self.sio = sio
        self.admission = admission or Admission(Limits())
        self.limits = self.admission.limits
        # error code -> how often a client was told it (shared with the socket.io server's own refusals)
        self.error_counts: Counter[str] = error_counts if error_counts is not None else Counter()
        self.media_lost: Counter[str] = Counter()  # "<publish|subscribe>/<failed|closed>" -> connections lost
        self.registry: NodeRegistry = registry or LocalRegistry("")
        self.cascade = cascade or Cascade(self.registry, rooms, tokens)
        self.attendance = attendance
        self._attendance_rows: dict[str, int] = {}  # sid -> open attendance row
        self.store = store
        self.tokens = tokens
        self.rooms = rooms
        self.sessions: dict[str, Session] = {}
        self._listening: set[str] = set()
        self._joining: set[str] = set()  # sids whose join is in progress (it awaits the database)
        self._tasks: set[asyncio.Future[Any]] = set()
        sio.on("connect", self._on_connect)
        sio.on("disconnect", self._on_disconnect)
        sio.on("join", self._on_join)
        handlers: dict[str, Handler] = {
            "publish": self._publish,
            "subscribe": self._subscribe,
            "subscribe_answer": self._subscribe_answer,
            "ice": self._ice,
            "raise_hand": self._raise_hand,
            "lower_hand": self._lower_hand,
            "give_floor": self._give_floor,
            "take_floor": self._take_floor,
            "request_mute": self._request_mute,
            "courseware": self._courseware,
            "bring_in": self._bring_in,
            "send_back": self._send_back,
            "relay_hand": self._relay_hand,
            "leave": self._leave,
        }
        for event, handler in handlers.items():
            sio.on(event, self._wrap(event, handler))
        rooms.on_room_closed(self._room_closed)

    def _room_closed(self, room: LessonRoom) -> None:
        self._listening.discard(room.lesson.id)
        self._spawn(self.registry.release(room.lesson.id))

    # -- plumbing ------------------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        self.admission.connected(sid, environ)
        logger.debug("connect %s from %s", sid, self.admission.address_of(sid))

    async def _on_disconnect(self, sid: str, *args: Any) -> None:
        try:
            await self._drop(sid, "disconnected")
        finally:
            self.admission.disconnected(sid)

    async def _drop(self, sid: str, reason: str) -> None:
        self.admission.left(sid)
        session = self.sessions.pop(sid, None)
        if session is None:
            return
        await self._close_attendance(sid, reason)
        room = self.rooms.get(session.lesson_id)
        if room is not None:
            await room.leave(sid, reason=reason)

    # The store is synchronous SQL (SQLAlchemy; its pool hands each worker thread its own
    # connection): run it in a thread so a slow disk or a remote database never stalls media.

    async def _open_attendance(self, session: Session) -> None:
        if self.attendance is None or session.participant.role == Role.RELAY:  # a node, not a classroom
            return
        p = session.participant
        row = await asyncio.to_thread(self.attendance.opened, session.lesson_id, p.classroom, str(p.role), p.name,
                                      datetime.now(UTC))
        if self.sessions.get(session.sid) is session:
            self._attendance_rows[session.sid] = row
        else:  # the session ended while the row was being written
            await asyncio.to_thread(self.attendance.closed, row, datetime.now(UTC), "left while joining")

    async def _close_attendance(self, sid: str, reason: str) -> None:
        row = self._attendance_rows.pop(sid, None)
        if row is None or self.attendance is None:
            return
        try:
            await asyncio.to_thread(self.attendance.closed, row, datetime.now(UTC), reason)
        except Exception:  # the classroom still leaves the room; the row is closed at the next start
            logger.exception("could not close attendance row %d", row)

    async def _refuse(self, sid: str, code: str, message: str, *, close: bool, **extra: Any) -> dict[str, Any]:
        self.error_counts[code] += 1
        await self.sio.emit("error", {"code": code, "message": message, **extra}, to=sid)
        if close:
            await self._drop(sid, f"closed: {message}")
            # let the error event go out before the socket closes
            asyncio.get_running_loop().call_later(0.2, lambda: self._spawn(self.sio.disconnect(sid)))
        return {"ok": False, "error": {"code": code, "message": message, **extra}}

    def _wrap(self, event: str, handler: Handler) -> Callable[[str, Any], Awaitable[dict[str, Any]]]:
        async def on_event(sid: str, data: Any = None, *more: Any) -> dict[str, Any]:
            session = self.sessions.get(sid)
            if session is None:
                return await self._refuse(sid, "not_joined", f"{event}: join the lesson first", close=False)
            if data is None:
                data = {}
            try:
                if not isinstance(data, dict) or more:
                    raise ProtocolError("message must be one object")
                result = await handler(session, data)
                return {"ok": True, **(result or {})}
            except RoomError as exc:
                return await self._refuse(sid, exc.code, str(exc), close=False)
            except (ProtocolError, SdpError) as exc:
                logger.info("closing %s (%s): %s", sid, session.participant.classroom, exc)
                return await self._refuse(sid, "protocol_error", f"{event}: {exc}", close=True)
            except Exception as exc:  # aiortc, aioice, the database...: never leave a client waiting
                logger.exception("%s from %s (%s) failed; closing that session", event, sid,
                                 session.participant.classroom)
                return await self._refuse(sid, "server_error", _failure(event, exc), close=True)

        return on_event

    def _listen(self, room: LessonRoom) -> None:
        if room.lesson.id in self._listening:
            return
        self._listening.add(room.lesson.id)
        channel = f"lesson:{room.lesson.id}"

        def on_room_event(event: str, data: dict[str, Any]) -> None:
            if event == "media_lost":  # that connection alone: the classroom makes a new one, same session
                self.media_lost[f"{data['target']}/{data['state']}"] += 1
                self._spawn(self.sio.emit("media_lost", {k: data[k] for k in ("target", "state", "ufrag")},
                                          to=data["sid"]))
                return
            if event == "relay_lost":  # an edge's link to the origin: its viewers come back and are placed again
                for sid in list(room.participants):
                    self._spawn(self._refuse(sid, "relay_lost", "this node lost the lesson's link to its origin",
                                             close=True))
                return
            if event == "move":  # an edge's listener brought in: it goes to the origin to publish
                self._spawn(self._refuse(data["sid"], "redirect", "brought in: publish on the lesson's node",
                                         close=True, url=data["url"]))
                return
            if event == "rebound":  # an edge room follows the origin: only its own viewers' slots changed
                for viewer in room.participants.values():
                    if viewer.subscriber is not None:
                        self._spawn(self.sio.emit("slots", {"slots": room.slots_json(viewer)}, to=viewer.sid))
                return
            if event in ("classroom_joined", "classroom_left"):
                presence = [p.to_json() for p in room.connected_classrooms()]
                self._spawn(self.registry.publish_presence(room.lesson.id, presence))
            if event == "link":  # one classroom's own downlink: for it alone
                self._spawn(self.sio.emit("link", {k: v for k, v in data.items() if k != "sid"}, to=data["sid"]))
                return
            if event == "tiers":
                p = room.participants.get(data["sid"])
                if p is not None and p.subscriber is not None:
                    self._spawn(self.sio.emit("slots", {"slots": room.slots_json(p)}, to=p.sid))
                return
            if event not in ("published", "unpublished"):
                self._spawn(self.sio.emit(event, data, room=channel))
            if event in ("classroom_joined", "classroom_left", "floor", "courseware", "published", "unpublished",
                         "sent_back"):
                for p in room.participants.values():
                    if p.subscriber is not None:
                        self._spawn(self.sio.emit("slots", {"slots": room.slots_json(p)}, to=p.sid))

        room.add_listener(on_room_event)

    # -- join ----------------------------------------------------------------------------------

    async def _on_join(self, sid: str, data: Any = None, *more: Any) -> dict[str, Any]:
        if sid in self._joining:
            return await self._refuse(sid, "bad_request", "join: already joining", close=False)
        self._joining.add(sid)
        try:
            return await self._join(sid, data if not more else None)
        except Exception as exc:
            logger.exception("join from %s failed; closing that session", sid)
            if sid not in self.sessions:  # failed between entering the room and becoming a session
                for room in list(self.rooms.rooms.values()):
                    if sid in room.participants:
                        await room.leave(sid, reason="join failed")
            return await self._refuse(sid, "server_error", _failure("join", exc), close=True)
        finally:
            self._joining.discard(sid)
            if sid not in self.sessions:  # refused or failed: it holds no place for its token
                self.admission.left(sid)

    async def _join(self, sid: str, data: Any) -> dict[str, Any]:
        if sid in self.sessions:
            return await self._refuse(sid, "bad_request", "join: already joined", close=False)
        if not isinstance(data, dict):
            return await self._refuse(sid, "protocol_error", "join: message must be one object", close=True)
        for key in ("token", "lesson"):
            value = data.get(key)
            if isinstance(value, str) and len(value) > self.limits.max_field_chars:
                return await self._refuse(sid, "protocol_error",
                                          f"join: {key}: too long (at most {self.limits.max_field_chars})", close=True)
        try:
            claims = self.tokens.verify(data.get("token"))
        except TokenError as exc:
            return await self._refuse(sid, "bad_token", str(exc), close=True)
        try:  # before any database work: a flood of joins costs no lookups and no attendance rows
            self.admission.admit_join(sid, claims)
        except LimitError as exc:
            logger.info("refusing join from %s: %s", self.admission.address_of(sid), exc)
            return await self._refuse(sid, exc.code, str(exc), close=True)
        if claims.role == Role.ADMIN:
            lesson_id = data.get("lesson")
            role = Role.OBSERVER  # admins watch lessons as observers (patrol)
        else:
            lesson_id = claims.lesson
            role = claims.role
            if data.get("lesson") not in (None, "", claims.lesson):
                return await self._refuse(sid, "bad_token", "token is for another lesson", close=True)
        lesson = None
        if isinstance(lesson_id, str) and lesson_id:
            lesson = await asyncio.to_thread(self.store.get, lesson_id)
        if lesson is None:
            return await self._refuse(sid, "not_found", f"lesson {lesson_id!r} not found", close=True)
        if lesson.extra.get("ended_at"):  # an administrator ended it (until its times are edited again)
            ended = f"lesson {lesson.id} was ended at {lesson.extra['ended_at']}"
            return await self._refuse(sid, "lesson_ended", ended, close=True)
        if role == Role.LISTENER:
            if not lesson.broadcast:
                return await self._refuse(sid, "bad_token", "listener tokens are for broadcast lessons", close=True)
            if lesson.role_of(claims.classroom) is not None:
                return await self._refuse(
                    sid, "bad_token", f"classroom {claims.classroom!r} is an interactive classroom of this lesson: "
                    "its token must say so", close=True)
        elif role in (Role.MASTER, Role.RURAL):
            actual = lesson.role_of(claims.classroom)
            if actual is None:
                return await self._refuse(
                    sid, "bad_token", f"classroom {claims.classroom!r} is not part of this lesson", close=True
                )
            if actual != role:
                return await self._refuse(
                    sid, "bad_token", f"token role {role} does not match classroom's role {actual}", close=True
                )
        owner = await self.registry.claim(lesson.id)
        here = self.registry.node_url
        local = self.rooms.get(lesson.id)
        # a listening classroom the master brought in publishes on the lesson's node, wherever it knocks
        guest = role == Role.LISTENER and local is not None and claims.classroom in local.guests
        # classrooms that publish (and an edge's relay) meet on the lesson's node; a viewer stays on
        # this node while it has room (an edge of the lesson if the lesson lives elsewhere)
        target = owner if role not in VIEWER_ROLES or guest else await self.cascade.place(role)
        if target != here:
            return await self._refuse(sid, "redirect", f"lesson {lesson.id} is live on {target}", close=True,
                                      url=target)
        if role == Role.RELAY:
            classroom = f"relay:{claims.classroom}"
        else:
            classroom = claims.classroom if role in CLASSROOM_ROLES else f"observer-{sid[:8]}"
        room: LessonRoom
        if owner != here:  # a viewer placed here, on an edge of the lesson
            try:
                room = await self.cascade.edge_room(lesson, owner)
            except Exception as exc:
                logger.warning("lesson %s: no relay link to %s (%s); sending the viewer there", lesson.id, owner, exc)
                return await self._refuse(sid, "redirect", f"lesson {lesson.id} is live on {owner}", close=True,
                                          url=owner)
        else:
            room = self.rooms.get_or_create(lesson)
        self._listen(room)
        participant = Participant(sid=sid, classroom=classroom, name=claims.name or classroom, role=role)
        replaced = await room.join(participant)
        if replaced is not None:
            self.sessions.pop(replaced.sid, None)
            self.admission.left(replaced.sid)
            await self._close_attendance(replaced.sid, "replaced by a new connection")
            await self.sio.emit("kicked", {"reason": "replaced by a new connection"}, to=replaced.sid)
            self._spawn(self.sio.disconnect(replaced.sid))
        session = Session(sid=sid, lesson_id=lesson.id, participant=participant)
        self.sessions[sid] = session
        await self._open_attendance(session)
        # the socket may have closed while the join awaited the database (a page that navigates
        # away): its disconnect came before it was a session, so undo the join here, quietly
        try:
            await self.sio.enter_room(sid, f"lesson:{lesson.id}")
        except KeyError:  # python-socketio: the sid is no longer connected
            logger.info("join from %s: the socket closed while joining", sid)
            await self._drop(sid, "disconnected while joining")
            return {"ok": False, "error": {"code": "not_connected", "message": "join: the socket closed"}}
        nodes = await self.cascade.node_urls() if role in VIEWER_ROLES else []
        return {
            "ok": True,
            "you": {"classroom": classroom, "name": participant.name, "role": str(role)},
            **room.state(),
            **({"nodes": nodes} if nodes else {}),  # a viewer whose node dies tries these
        }

    async def end_lesson(self, lesson_id: str, reason: str = "the lesson was ended by an administrator") -> list[str]:
        """Close every session of a lesson on this node: each is told `kicked` {reason, code:
        "lesson_ended"} (the page and the terminal then stay away) and its socket is closed.
        Returns the classrooms that were connected (observers are not counted)."""
        ended = [s for s in self.sessions.values() if s.lesson_id == lesson_id]
        for session in ended:
            await self.sio.emit("kicked", {"reason": reason, "code": "lesson_ended"}, to=session.sid)
            await self._drop(session.sid, reason)
            # let the event go out before the socket closes
            asyncio.get_running_loop().call_later(0.2, self._close_socket, session.sid)
        return [s.participant.classroom for s in ended if s.participant.visible]

    def _close_socket(self, sid: str) -> None:
        self._spawn(self.sio.disconnect(sid))

    # -- handlers ------------------------------------------------------------------------------

    def _room(self, session: Session) -> LessonRoom:
        room = self.rooms.get(session.lesson_id)
        if room is None:
            raise RoomError("not_found", "lesson is no longer live")
        return room

    async def _publish(self, session: Session, data: dict[str, Any]) -> dict[str, Any]:
        sdp = _field(data, "sdp", str, max_len=self.limits.max_sdp_bytes)
        sections = sdp.count("\nm=") + sdp.startswith("m=")
        if sections > self.limits.max_media_sections:
            raise ProtocolError(f"sdp: {sections} media sections (at most {self.limits.max_media_sections})")
        sources = _field(data, "sources", dict, required=False, max_len=self.limits.max_media_sections) or {}
        if not all(isinstance(k, str) and isinstance(v, str) and len(k) <= MAX_ICE_MID_CHARS and len(v) <= 32
                   for k, v in sources.items()):
            raise ProtocolError("sources: must map mid strings to source names")
        answer = await self._room(session).publish(session.sid, sdp, sources)
        return {"sdp": answer, "type": "answer"}

    async def _subscribe(self, session: Session, data: dict[str, Any]) -> dict[str, Any]:
        mode = _field(data, "mode", str, required=False, max_len=16) or "full"
        if mode not in SUBSCRIBE_MODES:
            raise RoomError("bad_request", f"mode: expected one of {', '.join(SUBSCRIBE_MODES)}, not {mode!r}")
        offer, slots = await self._room(session).subscribe(session.sid, patrol=mode == "patrol")
        return {"sdp": offer, "type": "offer", "slots": slots}

    async def _subscribe_answer(self, session: Session, data: dict[str, Any]) -> None:
        sdp = _field(data, "sdp", str, max_len=self.limits.max_sdp_bytes)
        await self._room(session).subscribe_answer(session.sid, sdp)

    async def _ice(self, session: Session, data: dict[str, Any]) -> None:
        target = _field(data, "target", str, max_len=16)
        candidate = ice_candidate(data.get("candidate"))
        await self._room(session).add_ice_candidate(session.sid, target, candidate)

    async def _raise_hand(self, session: Session, data: dict[str, Any]) -> None:
        self._room(session).raise_hand(session.sid)

    async def _lower_hand(self, session: Session, data: dict[str, Any]) -> None:
        self._room(session).lower_hand(session.sid, _field(data, "classroom", str, required=False, max_len=64))

    async def _give_floor(self, session: Session, data: dict[str, Any]) -> None:
        self._room(session).give_floor(session.sid, data.get("classroom"))

    async def _take_floor(self, session: Session, data: dict[str, Any]) -> None:
        self._room(session).take_floor(session.sid)

    async def _request_mute(self, session: Session, data: dict[str, Any]) -> None:
        self._room(session).request_mute(session.sid, data.get("classroom"))

    async def _courseware(self, session: Session, data: dict[str, Any]) -> None:
        self._room(session).set_courseware(session.sid, bool(_field(data, "on", bool)))

    async def _bring_in(self, session: Session, data: dict[str, Any]) -> None:
        self._room(session).bring_in(session.sid, _field(data, "classroom", str, max_len=64))

    async def _send_back(self, session: Session, data: dict[str, Any]) -> None:
        await self._room(session).send_back(session.sid, _field(data, "classroom", str, max_len=64))

    async def _relay_hand(self, session: Session, data: dict[str, Any]) -> None:
        self._room(session).remote_hand(session.sid, _field(data, "classroom", str, max_len=64),
                                        _field(data, "name", str, max_len=self.limits.max_field_chars),
                                        bool(_field(data, "up", bool)))

    async def _leave(self, session: Session, data: dict[str, Any]) -> None:
        await self._drop(session.sid, "left")
