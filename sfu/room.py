"""A live lesson: who is connected, what they publish, who sees whom, hands and the floor.

The room decides which published track feeds each subscriber slot; the forwarding plane
(`sfu.media`) moves the packets. Every change (join, leave, publish, floor) re-resolves the
slots, so a classroom that comes back takes its place again without renegotiation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sfu.lessons import Lesson, Role
from sfu.media.endpoint import DEFAULT_VIDEO_CODECS, PublisherEndpoint, SubscriberEndpoint
from sfu.media.forwarder import PublishedTrack, Slot

logger = logging.getLogger(__name__)

SOURCES = ("camera", "mic", "courseware")
FLOOR = "floor"  # the slot group that shows whichever rural classroom has the floor


class RoomError(Exception):
    """A request the room refuses (not allowed, unknown classroom...); sent to the client."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class SlotSpec:
    key: str  # "<classroom id>:<source>" or "floor:<source>"
    kind: str  # "audio" | "video"

    @property
    def group(self) -> str:
        return self.key.split(":", 1)[0]

    @property
    def source(self) -> str:
        return self.key.split(":", 1)[1]


@dataclass
class Participant:
    """One connection to a lesson: a classroom, an observer or a hidden system client."""

    sid: str
    classroom: str
    name: str
    role: Role
    joined_at: float = field(default_factory=time.time)
    publisher: PublisherEndpoint | None = None
    subscriber: SubscriberEndpoint | None = None
    published: dict[str, PublishedTrack] = field(default_factory=dict)  # source -> track
    slot_specs: list[SlotSpec] = field(default_factory=list)

    @property
    def visible(self) -> bool:
        """Classrooms see each other; observers and system participants are invisible."""
        return self.role in (Role.MASTER, Role.RURAL)

    def to_json(self) -> dict[str, Any]:
        return {
            "classroom": self.classroom,
            "name": self.name,
            "role": str(self.role),
            "joined_at": self.joined_at,
            "publishing": sorted(self.published),
        }


RoomListener = Callable[[str, dict[str, Any]], None]


def _tier_of(slot: Slot | None) -> str:
    """The tier a slot sends now ("full" unless its video comes from a server-made tier)."""
    if slot is None or slot.source is None:
        return "full"
    return slot.source.tier_name


class LessonRoom:
    """The live state of one lesson on this node."""

    def __init__(self, lesson: Lesson, ice_servers: list[str],
                 on_empty: Callable[[LessonRoom], None] | None = None,
                 video_codecs: tuple[str, ...] = DEFAULT_VIDEO_CODECS, tiers: bool = True) -> None:
        self.lesson = lesson
        self.video_codecs = video_codecs
        self.tiers = tiers  # False: every subscriber gets the full streams, whatever its link (benches)
        self._on_empty = on_empty
        self.ice_servers = ice_servers
        self.participants: dict[str, Participant] = {}
        self.hands: list[tuple[str, float]] = []  # (classroom, raised at), in order
        self.floor: str | None = None
        self.courseware = False
        self.started_at = time.time()
        self._listeners: list[RoomListener] = []

    # -- listeners (signaling fan-out, recorder's timeline) ----------------------------------

    def add_listener(self, listener: RoomListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: RoomListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _emit(self, event: str, data: dict[str, Any]) -> None:
        for listener in tuple(self._listeners):
            try:
                listener(event, data)
            except Exception:
                logger.exception("room listener failed on %s", event)

    def update_lesson(self, lesson: Lesson) -> None:
        """The lesson was changed through the API (title, planned times, recording on or off)."""
        if lesson.id != self.lesson.id:
            raise ValueError(f"room of lesson {self.lesson.id!r} cannot take lesson {lesson.id!r}")
        self.lesson = lesson
        self._emit("lesson_updated", {"lesson": lesson.id, "title": lesson.title, "record": lesson.record})

    # -- membership --------------------------------------------------------------------------

    def by_classroom(self, classroom: str) -> Participant | None:
        for p in self.participants.values():
            if p.classroom == classroom and p.visible:
                return p
        return None

    def connected_classrooms(self) -> list[Participant]:
        return [p for p in self.participants.values() if p.visible]

    def state(self) -> dict[str, Any]:
        return {
            "lesson": self.lesson.to_json(),
            "classrooms": [p.to_json() for p in self.connected_classrooms()],
            "hands": self.hands_json(),
            "floor": self.floor,
            "courseware": self.courseware,
        }

    def hands_json(self) -> list[dict[str, Any]]:
        out = []
        for classroom, at in self.hands:
            room = self.lesson.classroom(classroom)
            out.append({"classroom": classroom, "name": room.name if room else classroom, "raised_at": at})
        return out

    async def join(self, participant: Participant) -> Participant | None:
        """Add a participant. Returns a stale participant of the same classroom that it replaces."""
        replaced = None
        if participant.visible:
            replaced = self.by_classroom(participant.classroom)
            if replaced is not None:
                await self.leave(replaced.sid, reason="replaced by a new connection")
        participant.slot_specs = self._slot_specs_for(participant)
        self.participants[participant.sid] = participant
        if participant.visible:
            self._emit("classroom_joined", participant.to_json())
        return replaced

    async def leave(self, sid: str, reason: str = "left") -> Participant | None:
        p = self.participants.pop(sid, None)
        if p is None:
            return None
        for track in p.published.values():
            track.close()
        if p.publisher:
            await p.publisher.close()
        if p.subscriber:
            await p.subscriber.close()
        if p.visible:
            if any(c == p.classroom for c, _ in self.hands):
                self.hands = [(c, t) for c, t in self.hands if c != p.classroom]
                self._emit("hands", {"queue": self.hands_json()})
            if p.role == Role.MASTER and self.courseware:
                self.courseware = False
                self._emit("courseware", {"on": False, "classroom": p.classroom})
            self._emit("classroom_left", {"classroom": p.classroom, "name": p.name, "reason": reason})
        self.rebind()
        if not self.participants and self._on_empty is not None:
            self._on_empty(self)  # nobody left, not even the recorder: the lesson is over on this node
        return p

    # -- media -------------------------------------------------------------------------------

    def _slot_specs_for(self, p: Participant) -> list[SlotSpec]:
        lesson = self.lesson
        specs: list[SlotSpec] = []

        def add(classroom: str, *, courseware: bool = False) -> None:
            specs.append(SlotSpec(f"{classroom}:camera", "video"))
            specs.append(SlotSpec(f"{classroom}:mic", "audio"))
            if courseware:
                specs.append(SlotSpec(f"{classroom}:courseware", "video"))

        if p.role == Role.MASTER:
            for r in lesson.rurals:
                add(r.id)
        elif p.role == Role.RURAL:
            add(lesson.master.id, courseware=True)
            if lesson.rural_see_each_other:
                for r in lesson.rurals:
                    if r.id != p.classroom:
                        add(r.id)
            else:
                add(FLOOR)
        else:  # observers and system participants receive everything
            add(lesson.master.id, courseware=True)
            for r in lesson.rurals:
                add(r.id)
        return specs

    def _resolve(self, spec: SlotSpec, viewer: Participant) -> PublishedTrack | None:
        group = spec.group
        if group == FLOOR:
            if self.floor is None or self.floor == viewer.classroom:
                return None
            group = self.floor
        if group == viewer.classroom:
            return None
        owner = self.by_classroom(group)
        if owner is None:
            return None
        track = owner.published.get(spec.source)
        if track is None or track.closed:
            return None
        if spec.source == "courseware" and not self.courseware:
            return None
        return track

    def bound_classroom(self, spec: SlotSpec, viewer: Participant) -> str | None:
        track = self._resolve(spec, viewer)
        if track is None:
            return None
        return self.floor if spec.group == FLOOR else spec.group

    def rebind(self) -> None:
        """Point every subscriber slot at the track it should carry now."""
        for viewer in self.participants.values():
            sub = viewer.subscriber
            if sub is None:
                continue
            for spec in viewer.slot_specs:
                slot = sub.slots.get(spec.key)
                if slot is not None:
                    slot.attach(self._resolve(spec, viewer))

    def _participant(self, sid: str) -> Participant:
        p = self.participants.get(sid)
        if p is None:
            raise RoomError("not_joined", "join the lesson first")
        return p

    async def publish(self, sid: str, sdp: str, sources: dict[str, str]) -> str:
        p = self._participant(sid)
        if p.role not in (Role.MASTER, Role.RURAL):
            raise RoomError("forbidden", f"a {p.role} cannot publish in a lesson")
        for mid, source in sources.items():
            if source not in SOURCES:
                raise RoomError("bad_request", f"sources[{mid}]: unknown source {source!r}")
            if source == "courseware" and p.role != Role.MASTER:
                raise RoomError("forbidden", "only the master classroom shares courseware")
        if p.publisher is None:

            def on_track(source: str, track: PublishedTrack) -> None:
                old = p.published.get(source)
                if old is not None and old is not track:
                    old.close()
                p.published[source] = track
                self.rebind()
                self._emit("published", {"classroom": p.classroom, "source": source, "kind": track.kind})

            p.publisher = PublisherEndpoint(self.ice_servers, p.classroom, on_track,
                                            lambda state: self._media_state(p, "publish", state))
        return await p.publisher.accept_offer(sdp, sources)

    async def subscribe(self, sid: str) -> tuple[str, list[dict[str, Any]]]:
        p = self._participant(sid)
        if p.subscriber is None:
            p.subscriber = SubscriberEndpoint(self.ice_servers, lambda state: self._media_state(p, "subscribe", state),
                                              self.video_codecs, on_link=lambda link, tiers: self._link(p, link, tiers),
                                              adaptive=self.tiers and p.role != Role.SYSTEM)
            for spec in p.slot_specs:
                p.subscriber.add_slot(spec.key, spec.kind)
            self.rebind()
        offer = await p.subscriber.create_offer()
        return offer, self.slots_json(p)

    def _media_state(self, p: Participant, which: str, state: str) -> None:
        if state == "failed" and p.sid in self.participants:
            # ICE/DTLS gave up: the session is useless; the signaling layer closes it and the
            # classroom's terminal reconnects from scratch.
            self._emit("media_failed", {"sid": p.sid, "classroom": p.classroom, "connection": which})

    def _link(self, p: Participant, link: dict[str, Any], tier_changed: bool) -> None:
        """The server's view of a classroom's downlink (and, when it moved, the tier it now takes)."""
        if p.sid in self.participants:
            self._emit("link", {"sid": p.sid, "classroom": p.classroom, **link})
            if tier_changed:
                self._emit("tiers", {"sid": p.sid, "classroom": p.classroom, "tier": link.get("tier")})

    def slots_json(self, p: Participant) -> list[dict[str, Any]]:
        mids = p.subscriber.slot_mids() if p.subscriber else {}
        slots = p.subscriber.slots if p.subscriber else {}
        return [
            {
                "key": spec.key,
                "mid": mids.get(spec.key),
                "kind": spec.kind,
                "source": spec.source,
                "group": spec.group,
                "classroom": self.bound_classroom(spec, p),
                "tier": _tier_of(slots.get(spec.key)),
            }
            for spec in p.slot_specs
        ]

    async def subscribe_answer(self, sid: str, sdp: str) -> None:
        p = self._participant(sid)
        if p.subscriber is None:
            raise RoomError("bad_request", "subscribe first")
        await p.subscriber.accept_answer(sdp)

    async def add_ice_candidate(self, sid: str, target: str, candidate: dict[str, Any]) -> None:
        p = self._participant(sid)
        endpoint = p.publisher if target == "publish" else p.subscriber if target == "subscribe" else None
        if endpoint is None:
            raise RoomError("bad_request", f"target: no {target!r} connection to add a candidate to")
        await endpoint.add_ice_candidate(candidate)

    # -- classroom interaction -----------------------------------------------------------------

    def _require_master(self, p: Participant, what: str) -> None:
        if p.role != Role.MASTER:
            raise RoomError("forbidden", f"only the master classroom can {what}")

    def _require_rural(self, classroom: object) -> str:
        if not isinstance(classroom, str) or self.lesson.role_of(classroom) != Role.RURAL:
            raise RoomError("bad_request", f"classroom: {classroom!r} is not a rural classroom of this lesson")
        return classroom

    def raise_hand(self, sid: str) -> None:
        p = self._participant(sid)
        if p.role != Role.RURAL:
            raise RoomError("forbidden", "only rural classrooms raise hands")
        if all(c != p.classroom for c, _ in self.hands):
            self.hands.append((p.classroom, time.time()))
            self._emit("hand_raised", {"classroom": p.classroom, "name": p.name})
            self._emit("hands", {"queue": self.hands_json()})

    def lower_hand(self, sid: str, classroom: str | None = None) -> None:
        p = self._participant(sid)
        target = p.classroom if classroom is None else classroom
        if target != p.classroom:
            self._require_master(p, "lower another classroom's hand")
        if any(c == target for c, _ in self.hands):
            self.hands = [(c, t) for c, t in self.hands if c != target]
            self._emit("hand_lowered", {"classroom": target})
            self._emit("hands", {"queue": self.hands_json()})

    def give_floor(self, sid: str, classroom: object) -> None:
        p = self._participant(sid)
        self._require_master(p, "give the floor")
        target = self._require_rural(classroom)
        self.floor = target
        if any(c == target for c, _ in self.hands):
            self.hands = [(c, t) for c, t in self.hands if c != target]
            self._emit("hands", {"queue": self.hands_json()})
        self.rebind()
        self._emit("floor", {"classroom": target, "by": p.classroom})

    def take_floor(self, sid: str) -> None:
        p = self._participant(sid)
        self._require_master(p, "take the floor back")
        previous = self.floor
        self.floor = None
        self.rebind()
        self._emit("floor", {"classroom": None, "by": p.classroom, "previous": previous})

    def request_mute(self, sid: str, classroom: object) -> None:
        p = self._participant(sid)
        self._require_master(p, "ask a classroom to mute")
        target = self._require_rural(classroom)
        self._emit("mute_requested", {"classroom": target, "by": p.classroom})

    def set_courseware(self, sid: str, on: bool) -> None:
        p = self._participant(sid)
        self._require_master(p, "share courseware")
        if self.courseware != on:
            self.courseware = on
            self.rebind()
            self._emit("courseware", {"on": on, "classroom": p.classroom})

    async def close(self) -> None:
        for sid in list(self.participants):
            await self.leave(sid, reason="lesson closed")


class RoomDirectory:
    """The lessons live on this node (which node hosts which lesson: `sfu.cluster`)."""

    def __init__(self, ice_servers: list[str], video_codecs: tuple[str, ...] = DEFAULT_VIDEO_CODECS,
                 tiers: bool = True) -> None:
        self.ice_servers = ice_servers
        self.video_codecs = video_codecs
        self.tiers = tiers
        self.rooms: dict[str, LessonRoom] = {}
        self._created: list[Callable[[LessonRoom], None]] = []
        self._closed: list[Callable[[LessonRoom], None]] = []

    def on_room_created(self, callback: Callable[[LessonRoom], None]) -> None:
        self._created.append(callback)

    def on_room_closed(self, callback: Callable[[LessonRoom], None]) -> None:
        """Called when the last participant has left a room and it is dropped."""
        self._closed.append(callback)

    def _room_empty(self, room: LessonRoom) -> None:
        if self.rooms.get(room.lesson.id) is room:
            del self.rooms[room.lesson.id]
            for cb in self._closed:
                cb(room)

    def get(self, lesson_id: str) -> LessonRoom | None:
        return self.rooms.get(lesson_id)

    def get_or_create(self, lesson: Lesson) -> LessonRoom:
        room = self.rooms.get(lesson.id)
        if room is None:
            room = LessonRoom(lesson, self.ice_servers, self._room_empty, self.video_codecs, self.tiers)
            self.rooms[lesson.id] = room
            for cb in self._created:
                cb(room)
        return room

    async def close(self) -> None:
        for room in list(self.rooms.values()):
            await room.close()
        self.rooms.clear()
