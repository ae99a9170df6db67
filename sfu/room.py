"""A live lesson: who is connected, what they publish, who sees whom, hands and the floor (and, in
a broadcast, which listening classrooms the master has brought in: `sfu.slot_plan`'s guest places).

The room decides which published track feeds each subscriber slot; the forwarding plane
(`sfu.media`) moves the packets. Every change (join, leave, publish, floor) re-resolves the
slots, so a classroom that comes back takes its place again without renegotiation.

A classroom's media connection can be lost while its session stays (ICE or DTLS gave up, the
other side closed it): that connection alone ends, like a leave for what it carried (its tracks
unpublished, the slots they fed freed), the classroom is told (`media_lost`) and publishes or
subscribes again on the same session. A publish offer from a new connection (another ICE
username fragment) or a second subscribe replaces the connection it follows the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from sfu.lessons import Lesson, Role
from sfu.media.endpoint import (
    DEFAULT_VIDEO_CODECS,
    LOST_STATES,
    PublisherEndpoint,
    SubscriberEndpoint,
    ice_ufrag,
)
from sfu.media.forwarder import PublishedTrack, Slot
from sfu.slot_plan import FLOOR, GUEST, SlotSpec, guest_index, guest_places, slot_specs

logger = logging.getLogger(__name__)

SOURCES = ("camera", "mic", "courseware")
CLASSROOM_ROLES = (Role.MASTER, Role.RURAL, Role.LISTENER)  # one connection per classroom id
# A classroom that leaves closes its media connections about when its socket goes, and its DTLS
# close may come first: a connection closed (not failed) counts as lost only if the classroom is
# still here this much later.
CLOSED_GRACE_S = 0.5


class RoomError(Exception):
    """A request the room refuses (not allowed, unknown classroom...); sent to the client."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


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
    brought_in: bool = False  # a listening classroom the master has brought in (it publishes)

    @property
    def visible(self) -> bool:
        """Interactive classrooms see each other; listening classrooms (until brought in),
        observers and system participants are invisible."""
        return self.role in (Role.MASTER, Role.RURAL) or self.brought_in

    @property
    def interactive(self) -> bool:
        """May publish: the master, a rural classroom, a listening classroom brought in."""
        return self.visible

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
        self.guests: list[str | None] = [None] * guest_places(lesson)  # brought-in listeners, by place
        self.remote_names: dict[str, str] = {}  # listening classrooms on edge nodes whose hand is up
        self.started_at = time.time()
        # "<classroom>/<publish|subscribe>/<failed|closed|replaced>" -> media connections lost so
        # (replaced: the classroom came with a new one before the old one was seen to go)
        self.media_lost: Counter[str] = Counter()
        self._listeners: list[RoomListener] = []
        self._closing: set[asyncio.Task[None]] = set()  # lost connections being closed

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
        places = guest_places(lesson)
        if places != len(self.guests):  # rurals or kind edited while live: keep who fits
            kept = [g for g in self.guests if g is not None][:places]
            self.guests = kept + [None] * (places - len(kept))
        self._emit("lesson_updated", {"lesson": lesson.id, "title": lesson.title, "record": lesson.record})

    # -- membership --------------------------------------------------------------------------

    def by_classroom(self, classroom: str, *, listening: bool = False) -> Participant | None:
        """The interactive classroom of this id (with `listening`, a listening one too)."""
        for p in self.participants.values():
            if p.classroom == classroom and (p.visible or (listening and p.role in CLASSROOM_ROLES)):
                return p
        return None

    def listeners(self) -> list[Participant]:
        """The listening classrooms connected (brought-in ones included)."""
        return [p for p in self.participants.values() if p.role == Role.LISTENER]

    def connected_classrooms(self) -> list[Participant]:
        return [p for p in self.participants.values() if p.visible]

    def state(self) -> dict[str, Any]:
        return {
            "lesson": self.lesson.to_json(),
            "classrooms": [p.to_json() for p in self.connected_classrooms()],
            "hands": self.hands_json(),
            "floor": self.floor,
            "courseware": self.courseware,
            "guests": list(self.guests),
            "listening": len(self.listeners()),
        }

    def _name_of(self, classroom: str) -> str:
        room = self.lesson.classroom(classroom)
        if room is not None:
            return room.name
        p = self.by_classroom(classroom, listening=True)
        return p.name if p is not None else self.remote_names.get(classroom, classroom)

    def hands_json(self) -> list[dict[str, Any]]:
        out = []
        for classroom, at in self.hands:
            out.append({"classroom": classroom, "name": self._name_of(classroom), "raised_at": at})
        return out

    async def join(self, participant: Participant) -> Participant | None:
        """Add a participant. Returns a stale participant of the same classroom that it replaces."""
        replaced = None
        if participant.role in CLASSROOM_ROLES:
            replaced = self.by_classroom(participant.classroom, listening=True)
            if replaced is not None:
                await self.leave(replaced.sid, reason="replaced by a new connection")
        participant.slot_specs = slot_specs(self.lesson, participant.role, participant.classroom)
        if participant.role == Role.LISTENER and participant.classroom in self.guests:
            participant.brought_in = True  # brought in while on an edge node: it came here to publish
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
        if p.brought_in:
            self.guests = [None if g == p.classroom else g for g in self.guests]
        if any(c == p.classroom for c, _ in self.hands) and p.role in CLASSROOM_ROLES:
            self.hands = [(c, t) for c, t in self.hands if c != p.classroom]
            self._emit("hands", {"queue": self.hands_json()})
        if p.visible:
            if p.role == Role.MASTER and self.courseware:
                self.courseware = False
                self._emit("courseware", {"on": False, "classroom": p.classroom})
            self._emit("classroom_left", {"classroom": p.classroom, "name": p.name, "reason": reason})
        self.rebind()
        if not self.participants and self._on_empty is not None:
            self._on_empty(self)  # nobody left, not even the recorder: the lesson is over on this node
        return p

    # -- media -------------------------------------------------------------------------------

    def _resolve(self, spec: SlotSpec, viewer: Participant) -> PublishedTrack | None:
        group = self.group_classroom(spec.group)
        if group is None:
            return None
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

    def group_classroom(self, group: str) -> str | None:
        """The classroom a slot group stands for now: the floor's holder, a guest place's classroom."""
        if group == FLOOR:
            return self.floor
        index = guest_index(group)
        if index is not None:
            return self.guests[index] if index < len(self.guests) else None
        return group

    def bound_classroom(self, spec: SlotSpec, viewer: Participant) -> str | None:
        track = self._resolve(spec, viewer)
        if track is None:
            return None
        return self.group_classroom(spec.group)

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
        if p.role == Role.LISTENER and not p.brought_in:
            raise RoomError("forbidden", "a listening classroom publishes once the master brings it in")
        if not p.interactive:
            raise RoomError("forbidden", f"a {p.role} cannot publish in a lesson")
        for mid, source in sources.items():
            if source not in SOURCES:
                raise RoomError("bad_request", f"sources[{mid}]: unknown source {source!r}")
            if source == "courseware" and p.role != Role.MASTER:
                raise RoomError("forbidden", "only the master classroom shares courseware")
        ufrag = ice_ufrag(sdp)  # (an offer without one is refused below, like any malformed offer)
        if p.publisher is not None and ufrag is not None and ufrag != p.publisher.remote_ufrag:
            # not a renegotiation: the classroom's new connection after it lost the last one
            self.media_lost[f"{p.classroom}/publish/replaced"] += 1
            await self._unpublish(p).close()
        if p.publisher is None:

            def on_track(source: str, track: PublishedTrack) -> None:
                old = p.published.get(source)
                if old is not None and old is not track:
                    old.close()
                p.published[source] = track
                self.rebind()
                self._emit("published", {"classroom": p.classroom, "source": source, "kind": track.kind})

            publisher = PublisherEndpoint(self.ice_servers, p.classroom, on_track,
                                          lambda state: self._media_state(p, publisher, state))
            p.publisher = publisher
        return await p.publisher.accept_offer(sdp, sources)

    async def subscribe(self, sid: str, patrol: bool = False) -> tuple[str, list[dict[str, Any]]]:
        """A new receiving connection for the participant (one it had is closed: it lost that one).
        `patrol` (observers only): camera slots alone, each in low-frame mode (keyframes only: a
        patrol tile)."""
        p = self._participant(sid)
        if patrol and p.role not in (Role.OBSERVER, Role.ADMIN):
            raise RoomError("forbidden", f"mode: patrol subscriptions are for observers, not a {p.role}")
        if p.subscriber is not None:  # a new receiving connection: the classroom lost the last one
            self.media_lost[f"{p.classroom}/subscribe/replaced"] += 1
            old, p.subscriber = p.subscriber, None
            await old.close()
        subscriber = SubscriberEndpoint(self.ice_servers, lambda state: self._media_state(p, subscriber, state),
                                        self.video_codecs, on_link=lambda link, tiers: self._link(p, link, tiers),
                                        adaptive=self.tiers and p.role not in (Role.SYSTEM, Role.RELAY) and not patrol)
        p.subscriber = subscriber
        p.slot_specs = slot_specs(self.lesson, p.role, p.classroom)
        if patrol:
            p.slot_specs = [spec for spec in p.slot_specs if spec.source == "camera"]
        for spec in p.slot_specs:
            subscriber.add_slot(spec.key, spec.kind, low_frame=patrol)
        self.rebind()
        offer = await subscriber.create_offer()
        return offer, self.slots_json(p)

    def _media_state(self, p: Participant, endpoint: PublisherEndpoint | SubscriberEndpoint, state: str) -> None:
        if state == "closed":
            asyncio.get_running_loop().call_later(CLOSED_GRACE_S, self._media_lost, p, endpoint, state)
        elif state in LOST_STATES:
            self._media_lost(p, endpoint, state)

    def _media_lost(self, p: Participant, endpoint: PublisherEndpoint | SubscriberEndpoint, state: str) -> None:
        """A media connection of a classroom still here failed or was closed (not by us: an
        endpoint we close is silent): that connection ends, the session stays."""
        if self.participants.get(p.sid) is not p or endpoint.closed:
            return
        if endpoint is p.publisher:
            which = "publish"
            self._unpublish(p)
        elif endpoint is p.subscriber:
            which = "subscribe"
            p.subscriber = None
        else:
            return
        ufrag = endpoint.remote_ufrag  # the classroom knows its connection by it
        self.media_lost[f"{p.classroom}/{which}/{state}"] += 1
        logger.info("lesson %s: %s's %s connection %s; it may connect again", self.lesson.id, p.classroom, which,
                    state)
        self._spawn(endpoint.close())
        self._emit("media_lost", {"sid": p.sid, "classroom": p.classroom, "target": which, "state": state,
                                  "ufrag": ufrag})

    def _unpublish(self, p: Participant) -> PublisherEndpoint:
        """The classroom's publication ends (the slots its tracks fed are freed); returns its
        publishing connection, for the caller to close."""
        endpoint, p.publisher = p.publisher, None
        assert endpoint is not None
        sources = sorted(p.published)
        for track in p.published.values():
            track.close()
        p.published.clear()
        self.rebind()
        if sources:
            self._emit("unpublished", {"classroom": p.classroom, "sources": sources})
        return endpoint

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _link(self, p: Participant, link: dict[str, Any], tier_changed: bool) -> None:
        """The server's view of a classroom's downlink (and, when it moved, the tier it now takes)."""
        if p.sid in self.participants:
            rtt_ms = link.get("rtt_ms")
            if isinstance(rtt_ms, int | float) and rtt_ms > 0:  # its uplink takes the same path back
                for track in p.published.values():
                    track.nack.follow_rtt(rtt_ms / 1000)
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
        """A rural classroom of the lesson, or a listening classroom the master has brought in."""
        if isinstance(classroom, str) and classroom in self.guests:
            return classroom
        if not isinstance(classroom, str) or self.lesson.role_of(classroom) != Role.RURAL:
            raise RoomError("bad_request", f"classroom: {classroom!r} is not a rural classroom of this lesson")
        return classroom

    def raise_hand(self, sid: str) -> None:
        p = self._participant(sid)
        if p.role not in (Role.RURAL, Role.LISTENER):
            raise RoomError("forbidden", "only rural and listening classrooms raise hands")
        if all(c != p.classroom for c, _ in self.hands):
            self.hands.append((p.classroom, time.time()))
            self._emit("hand_raised", {"classroom": p.classroom, "name": p.name})
            self._emit("hands", {"queue": self.hands_json()})

    def remote_hand(self, sid: str, classroom: str, name: str, up: bool) -> None:
        """A listening classroom on an edge node (`sfu.cascade`) raised or lowered its hand; `sid`
        is the edge's relay."""
        if self._participant(sid).role != Role.RELAY:
            raise RoomError("forbidden", "only another node of the cluster passes on a hand")
        if up and all(c != classroom for c, _ in self.hands):
            self.remote_names[classroom] = name
            self.hands.append((classroom, time.time()))
            self._emit("hand_raised", {"classroom": classroom, "name": name})
        elif not up and any(c == classroom for c, _ in self.hands):
            self.hands = [(c, t) for c, t in self.hands if c != classroom]
            self._emit("hand_lowered", {"classroom": classroom})
        else:
            return
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

    # -- a broadcast's listening classrooms -----------------------------------------------------

    def _listener(self, classroom: object) -> Participant:
        p = self.by_classroom(classroom, listening=True) if isinstance(classroom, str) else None
        if p is None or p.role != Role.LISTENER:
            raise RoomError("bad_request", f"classroom: {classroom!r} is not a listening classroom connected now")
        return p

    def bring_in(self, sid: str, classroom: object) -> None:
        """The master brings a listening classroom in: it takes a guest place, publishes, is seen."""
        self._require_master(self._participant(sid), "bring a listening classroom in")
        if not self.lesson.broadcast:
            raise RoomError("bad_request", "only a broadcast lesson has listening classrooms")
        # a listening classroom on an edge node (its hand came through the edge) takes its place
        # now; the edge sends it here, where it publishes (`join`)
        remote = isinstance(classroom, str) and classroom in self.remote_names and not self.by_classroom(
            classroom, listening=True)
        p = None if remote else self._listener(classroom)
        if (p is not None and p.brought_in) or classroom in self.guests:
            return
        if None not in self.guests:
            raise RoomError("limit_guests", f"all {len(self.guests)} places for interactive classrooms are "
                                            "taken: send a classroom back first")
        name = p.name if p is not None else self.remote_names[str(classroom)]
        place = self.guests.index(None)
        self.guests[place] = str(classroom)
        self.hands = [(c, t) for c, t in self.hands if c != classroom]
        self._emit("hands", {"queue": self.hands_json()})
        self._emit("brought_in", {"classroom": classroom, "name": name, "place": f"{GUEST}{place + 1}"})
        if p is not None:
            p.brought_in = True
            self._emit("classroom_joined", p.to_json())
        self.rebind()

    async def send_back(self, sid: str, classroom: object) -> None:
        """The master sends a brought-in classroom back to listening: its publishing ends."""
        master = self._participant(sid)
        self._require_master(master, "send a classroom back")
        if isinstance(classroom, str) and classroom in self.guests and not self.by_classroom(classroom):
            self.guests = [None if g == classroom else g for g in self.guests]  # it never came from its edge
            self._emit("sent_back", {"classroom": classroom, "name": self._name_of(classroom)})
            self.rebind()
            return
        p = self._listener(classroom)
        if not p.brought_in:
            return
        p.brought_in = False
        self.guests = [None if g == p.classroom else g for g in self.guests]
        if p.publisher is not None:
            await self._unpublish(p).close()
        if self.floor == p.classroom:
            self.floor = None
            self._emit("floor", {"classroom": None, "by": master.classroom, "previous": p.classroom})
        self._emit("sent_back", {"classroom": p.classroom, "name": p.name})
        self._emit("classroom_left", {"classroom": p.classroom, "name": p.name, "reason": "sent back to listening"})
        self.rebind()

    async def close(self) -> None:
        for sid in list(self.participants):
            await self.leave(sid, reason="lesson closed")
        if self._closing:
            await asyncio.wait(list(self._closing), timeout=5)


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

    def add_edge(self, room: LessonRoom) -> None:
        """An edge node's room of a lesson live elsewhere (`sfu.cascade`): nothing is recorded
        here (the origin records), so the created-callbacks are not called."""
        self.rooms[room.lesson.id] = room

    def room_empty(self, room: LessonRoom) -> None:
        if self.rooms.get(room.lesson.id) is room:
            del self.rooms[room.lesson.id]
            for cb in self._closed:
                cb(room)

    def get(self, lesson_id: str) -> LessonRoom | None:
        return self.rooms.get(lesson_id)

    def get_or_create(self, lesson: Lesson) -> LessonRoom:
        room = self.rooms.get(lesson.id)
        if room is None:
            room = LessonRoom(lesson, self.ice_servers, self.room_empty, self.video_codecs, self.tiers)
            self.rooms[lesson.id] = room
            for cb in self._created:
                cb(room)
        return room

    async def close(self) -> None:
        for room in list(self.rooms.values()):
            await room.close()
        self.rooms.clear()
