"""A lesson across nodes: an edge node takes each published track once from the lesson's origin.

A lesson has one origin node, where its classrooms publish (`sfu.cluster` claims). A listening
classroom or an observer may be placed on another node (`sfu.cluster.choose_node`): that node,
an edge for the lesson, opens one relay link to the origin and fans the lesson out locally.

The relay link is a hidden subscriber of the origin's room (role `relay`, a token the edge
mints with the cluster's shared secret): on the origin it costs what one viewer costs, with a
slot for every classroom's tracks. On the edge each of its incoming tracks is a `PublishedTrack`
fed by a `ReceiverTap`, exactly like a classroom's: edge viewers' keyframe requests go upstream
as PLI on the link (the origin passes them to the publisher), losses on the link are NACKed to
the origin, and edge viewers' NACKs are answered from the edge's own send history.

The edge's room (`EdgeRoom`) mirrors the lesson's state (classrooms, hands, the floor, the
courseware, guests) from the events its relay connection receives, and resolves its viewers'
slots onto the relay tracks. A hand raised on an edge is forwarded to the origin. When its last
viewer leaves, the edge closes the link; when the link is lost, its viewers are closed and come
back (they are placed again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import socketio

from sfu.cluster import NodeLoad, NodeRegistry, choose_node
from sfu.lessons import Lesson, Role
from sfu.media.endpoint import DEFAULT_VIDEO_CODECS, RelayEndpoint
from sfu.media.forwarder import PublishedTrack
from sfu.room import LessonRoom, Participant, RoomDirectory, RoomError
from sfu.slot_plan import SlotSpec, guest_index
from sfu.tokens import TokenIssuer

logger = logging.getLogger(__name__)

VIEWER_ROLES = (Role.LISTENER, Role.OBSERVER)  # who may be placed on an edge node
RELAY_SETUP_TIMEOUT_S = 10.0
RELAY_TOKEN_TTL_S = 24 * 3600.0
MIRRORED_EVENTS = ("classroom_joined", "classroom_left", "hands", "floor", "courseware", "brought_in", "sent_back",
                   "slots")


class RelayLink:
    """The edge's end of the node-to-node media link: one socket.io session and one peer
    connection to the origin, as the origin's hidden `relay` subscriber."""

    def __init__(self, origin_url: str, token: str, ice_servers: list[str], room: EdgeRoom) -> None:
        self.origin_url = origin_url
        self._token = token
        self._ice_servers = ice_servers
        self._room = room
        self.sio = socketio.AsyncClient(reconnection=False)
        self.endpoint: RelayEndpoint | None = None
        self.tracks: dict[str, PublishedTrack] = {}  # the origin's slot key -> what it carries here
        self.ready = asyncio.Event()
        self.closed = False
        for event in MIRRORED_EVENTS:
            self.sio.on(event, self._mirror(event))
        self.sio.on("disconnect", self._disconnected)
        self.sio.on("kicked", self._kicked)
        self.sio.on("media_lost", self._media_lost)

    def _mirror(self, event: str) -> Callable[[Any], Any]:
        async def handler(data: Any = None) -> None:
            if isinstance(data, dict) and not self.closed:
                self._room.on_origin_event(event, data)

        return handler

    async def _disconnected(self, *args: Any) -> None:
        self._lost("the origin closed the relay connection")

    async def _kicked(self, data: Any = None) -> None:
        self._lost(f"the origin dropped the relay ({data.get('reason') if isinstance(data, dict) else data})")

    async def _media_lost(self, data: Any = None) -> None:
        # the origin lost its side of our media link (it ended it): the link is lost, as when ours goes
        self._lost(f"the origin lost the media link ({data.get('state') if isinstance(data, dict) else data})")

    def _lost(self, why: str) -> None:
        if not self.closed:
            logger.warning("relay link to %s for lesson %s lost: %s", self.origin_url, self._room.lesson.id, why)
            self._room.relay_lost()

    async def _call(self, event: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        reply = await self.sio.call(event, data or {}, timeout=RELAY_SETUP_TIMEOUT_S)
        if not isinstance(reply, dict) or not reply.get("ok"):
            error = (reply or {}).get("error") if isinstance(reply, dict) else None
            raise RuntimeError(f"relay {event} refused by {self.origin_url}: {error or reply!r}")
        return reply

    async def start(self) -> None:
        await self.sio.connect(self.origin_url, transports=["websocket"], wait_timeout=RELAY_SETUP_TIMEOUT_S)
        self._room.on_origin_state(await self._call("join", {"token": self._token}))
        reply = await self._call("subscribe")
        endpoint = self.endpoint = RelayEndpoint(self._ice_servers, self._media_state)
        keys = {str(s["mid"]): str(s["key"]) for s in reply["slots"] if s.get("mid") is not None}
        # "relay:m1/camera": a courseware track is known by its label's end (sfu.media.bandwidth)
        answer = await endpoint.answer(reply["sdp"], {mid: f"relay:{key.replace(':', '/')}"
                                                      for mid, key in keys.items()})
        self.tracks = {keys[mid]: track for mid, track in endpoint.tracks.items()}
        await self._call("subscribe_answer", {"sdp": answer})
        self._room.on_origin_slots(reply["slots"])
        self.ready.set()

    def _media_state(self, state: str) -> None:
        if state in ("failed", "closed"):  # closed without us: e.g. ICE consent expired
            self._lost("the media link failed")

    async def send(self, event: str, data: dict[str, Any]) -> None:
        """Pass a viewer's request (a raised hand) to the origin."""
        if self.ready.is_set() and not self.closed:
            await self.sio.emit(event, data)

    def stats(self) -> dict[str, int]:
        """What came over the link, and what the edge asked back up it."""
        tracks = self.tracks.values()
        return {"tracks": len(self.tracks), "packets_in": sum(t.stats.packets_in for t in tracks),
                "keyframe_requests": sum(t.stats.keyframe_requests_sent for t in tracks),
                "nacked": sum(t.nack.requested for t in tracks), "repaired": sum(t.nack.repaired for t in tracks)}

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.endpoint is not None:
            await self.endpoint.close()
        with contextlib.suppress(Exception):
            await self.sio.disconnect()


class EdgeRoom(LessonRoom):
    """A lesson's room on an edge node: its viewers only, fed from the origin's relay link."""

    def __init__(self, lesson: Lesson, ice_servers: list[str], origin_url: str,
                 on_empty: Callable[[LessonRoom], None] | None = None,
                 video_codecs: tuple[str, ...] = DEFAULT_VIDEO_CODECS, tiers: bool = True) -> None:
        super().__init__(lesson, ice_servers, on_empty, video_codecs, tiers)
        self.origin_url = origin_url
        self.link: RelayLink | None = None
        self._bound: dict[str, tuple[str | None, str]] = {}  # origin slot key -> (classroom it carries, source)
        self._classrooms: list[dict[str, Any]] = []  # the origin's connected classrooms
        self._hands: list[dict[str, Any]] = []  # the origin's queue, as it sends it

    # -- the link -------------------------------------------------------------------------------

    async def open_link(self, token: str) -> None:
        """Start the relay link (once); returns when it carries the lesson, or raises."""
        if self.link is None:
            self.link = RelayLink(self.origin_url, token, self.ice_servers, self)
            starting = asyncio.ensure_future(self.link.start())
            self._starting: asyncio.Future[None] = starting
            starting.add_done_callback(self._link_up(time.monotonic()))
        await asyncio.wait_for(asyncio.shield(self._starting), RELAY_SETUP_TIMEOUT_S)

    def _link_up(self, began: float) -> Callable[[asyncio.Future[None]], None]:
        def done(started: asyncio.Future[None]) -> None:
            if not started.cancelled() and started.exception() is None:
                logger.info("lesson %s: relay link to %s up in %.2f s", self.lesson.id, self.origin_url,
                            time.monotonic() - began)

        return done

    async def close_link(self) -> None:
        link, self.link = self.link, None
        if link is not None:
            logger.info("lesson %s: no viewer left on this edge; closing the relay link to %s", self.lesson.id,
                        self.origin_url)
            self._starting.cancel()
            await link.close()
            self._bound.clear()
            self.rebind()

    def relay_lost(self) -> None:
        self._emit("relay_lost", {"origin": self.origin_url})

    # -- the origin's state ---------------------------------------------------------------------

    def on_origin_state(self, state: dict[str, Any]) -> None:
        self._classrooms = list(state.get("classrooms") or [])
        self._hands = list(state.get("hands") or [])
        self.floor = state.get("floor")
        self.courseware = bool(state.get("courseware"))
        guests = list(state.get("guests") or [])
        self.guests = guests + [None] * (len(self.guests) - len(guests))

    def on_origin_event(self, event: str, data: dict[str, Any]) -> None:
        """An event of the lesson on the origin: the edge's viewers had it through the cluster's
        socket.io fan-out; here it only changes what the edge's slots carry."""
        if event == "slots":
            self.on_origin_slots(list(data.get("slots") or []))
            return
        classroom = data.get("classroom")
        if event == "classroom_joined":
            self._classrooms = [c for c in self._classrooms if c.get("classroom") != classroom] + [data]
        elif event == "classroom_left":
            self._classrooms = [c for c in self._classrooms if c.get("classroom") != classroom]
        elif event == "hands":
            self._hands = list(data.get("queue") or [])
        elif event == "floor":
            self.floor = classroom
        elif event == "courseware":
            self.courseware = bool(data.get("on"))
        elif event == "brought_in":
            index = guest_index(str(data.get("place", "")))
            if index is not None and index < len(self.guests):
                self.guests[index] = classroom
            here = self.by_classroom(str(classroom), listening=True)
            if here is not None:  # ours: it publishes on the origin from now on
                self._emit("move", {"sid": here.sid, "classroom": here.classroom, "url": self.origin_url})
        elif event == "sent_back":
            self.guests = [None if g == classroom else g for g in self.guests]
        self._rebound()

    def on_origin_slots(self, slots: list[dict[str, Any]]) -> None:
        self._bound = {str(s["key"]): (s.get("classroom"), str(s.get("source"))) for s in slots if "key" in s}
        self._rebound()

    def _rebound(self) -> None:
        self.rebind()
        self._emit("rebound", {})

    # -- what the room answers ------------------------------------------------------------------

    def _resolve(self, spec: SlotSpec, viewer: Participant) -> PublishedTrack | None:
        classroom = self.group_classroom(spec.group)
        if classroom is None or classroom == viewer.classroom or self.link is None:
            return None
        if spec.source == "courseware" and not self.courseware:
            return None
        for key, (bound, source) in self._bound.items():
            if bound == classroom and source == spec.source:
                track = self.link.tracks.get(key)
                if track is not None and not track.closed:
                    return track
        return None

    def state(self) -> dict[str, Any]:
        return {
            "lesson": self.lesson.to_json(),
            "classrooms": list(self._classrooms),
            "hands": list(self._hands),
            "floor": self.floor,
            "courseware": self.courseware,
            "guests": list(self.guests),
            "listening": len(self.listeners()),
            "origin": self.origin_url,
        }

    def raise_hand(self, sid: str) -> None:
        self._hand(sid, up=True)

    def lower_hand(self, sid: str, classroom: str | None = None) -> None:
        if classroom is not None and classroom != self._participant(sid).classroom:
            raise RoomError("forbidden", "only the master classroom can lower another classroom's hand")
        self._hand(sid, up=False)

    def _hand(self, sid: str, *, up: bool) -> None:
        p = self._participant(sid)
        if p.role != Role.LISTENER:
            raise RoomError("forbidden", "only rural and listening classrooms raise hands")
        if self.link is None:
            raise RoomError("not_found", "the lesson's link to its origin is down; try again")
        task = asyncio.ensure_future(self.link.send("relay_hand", {"classroom": p.classroom, "name": p.name,
                                                                   "up": up}))
        task.add_done_callback(_log_failure)

    async def leave(self, sid: str, reason: str = "left") -> Participant | None:
        p = await super().leave(sid, reason)
        if p is not None and self.link is not None and any(h.get("classroom") == p.classroom for h in self._hands):
            await self.link.send("relay_hand", {"classroom": p.classroom, "name": p.name, "up": False})
        if not self.participants:
            await self.close_link()
        return p

    def relay_stats(self) -> dict[str, Any]:
        link = self.link
        ready = bool(link and link.ready.is_set())
        return {"origin": self.origin_url, "ready": ready, **(link.stats() if link else {})}


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("could not pass a hand to the origin: %s", task.exception())


class Cascade:
    """Where a viewer goes, and the edge rooms of this node."""

    def __init__(self, registry: NodeRegistry, rooms: RoomDirectory, tokens: TokenIssuer,
                 local_load: Callable[[], NodeLoad] | None = None) -> None:
        self.registry = registry
        self.rooms = rooms
        self.tokens = tokens
        self.local_load = local_load

    @property
    def here(self) -> str:
        return self.registry.node_url

    async def live_nodes(self) -> list[NodeLoad]:
        nodes = await self.registry.nodes()
        if self.local_load is not None:  # our own count as it is now, not as last reported
            nodes = [n for n in nodes if n.url != self.here] + [self.local_load()]
        return nodes

    async def node_urls(self) -> list[str]:
        """The live nodes, those with room first, the least loaded first (a viewer tries them in
        this order when its node dies)."""
        return [n.url for n in sorted(await self.live_nodes(), key=lambda n: (not n.has_room, n.load, n.url))]

    async def place(self, role: Role) -> str:
        """The node a joining viewer should be on (this one unless it is full); others: here."""
        if role not in VIEWER_ROLES or self.local_load is None:
            return self.here
        return choose_node(await self.live_nodes(), self.here)

    async def edge_room(self, lesson: Lesson, origin_url: str) -> EdgeRoom:
        """This node's edge room of a lesson live on `origin_url`, its relay link up."""
        room = self.rooms.get(lesson.id)
        if room is not None and not (isinstance(room, EdgeRoom) and room.origin_url == origin_url):
            if isinstance(room, EdgeRoom):  # the lesson moved to another origin: start over
                await room.close()
                room = None
            else:
                raise RoomError("redirect", f"lesson {lesson.id} is live on {origin_url}")
        if room is None:
            room = EdgeRoom(lesson, self.rooms.ice_servers, origin_url, self.rooms.room_empty,
                            self.rooms.video_codecs, self.rooms.tiers)
            self.rooms.add_edge(room)
        token = self.tokens.mint(lesson=lesson.id, classroom=self.here, name=f"relay {self.here}", role=Role.RELAY,
                                 ttl_s=RELAY_TOKEN_TTL_S)
        try:
            await room.open_link(token)
        except Exception:
            if not room.participants:
                await room.close_link()
                self.rooms.room_empty(room)
            raise
        return room

