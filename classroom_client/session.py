"""A classroom's session with the lesson server: join, publish, receive, stay connected.

The socket.io connection and its reconnection live here; the uplink is in `publishing`, the
downlink (slots, receive loops, per-remote figures) in `reception`, the waits between attempts in
`backoff`. One socket.io client per classroom, reused for every reconnection: never a second socket
while the first is still connecting.

A media connection lost while the socket stays is made again alone, on the same session
(`recovery`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import socketio
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from classroom_client.backoff import (
    FAILOVER_DELAY_S,
    FAILOVER_JITTER_S,
    RECONNECT_DELAY_MAX_S,
    RECONNECT_DELAY_S,
    RECONNECT_JITTER_S,
    Backoff,
)
from classroom_client.encoders import PublisherEncoders, install_publisher_encoders
from classroom_client.link import Link, LinkSpec
from classroom_client.opus import OpusDecoder
from classroom_client.pattern import source_tag
from classroom_client.publishing import TONES_HZ, publish
from classroom_client.reception import Reception, SlotInfo
from classroom_client.recovery import Refused, recover
from classroom_client.sources import SourceSpec, open_sources
from classroom_client.stats import RemoteStats, write_stats
from sfu.addresses import loopback_ice_addresses
from sfu.media.aiortc_adapter import selected_candidate_pair, use_decoder, use_host_addresses
from sfu.media.endpoint import LOST_STATES, ice_ufrag, rtc_configuration

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 2.0  # leaving never waits longer than this for one step (socket.io, a peer connection)

__all__ = ["TONES_HZ", "ClassroomClient", "ClientConfig", "JoinRefused", "SlotInfo"]


class JoinRefused(Exception):
    """The server refused to let us in (bad token, unknown lesson...)."""

    def __init__(self, message: str, code: str = "", url: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.url = url


@dataclass
class ClientConfig:
    server: str
    token: str
    sources: SourceSpec = field(default_factory=SourceSpec)
    video_codec: str = "vp8"  # vp8 | h264
    duration: float | None = None
    stats_json: Path | None = None
    raise_hand_at: float | None = None
    ice_servers: list[str] = field(default_factory=list)
    ice_addresses: list[str] | None = None  # None: loopback when the server is on loopback
    receive: bool = True
    publish: bool = True
    link: LinkSpec | None = None  # impair our line both ways in user space (classroom_client/link.py)
    link_file: Path | None = None  # a file holding the SPEC, reread when it changes (a cap put on mid-lesson)
    reconnect: bool = True


class ClassroomClient:
    """The headless classroom terminal."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        # socket.io's own reconnection after a lost transport, with the same waits as our connect loop
        self.sio = socketio.AsyncClient(reconnection=config.reconnect, reconnection_delay=RECONNECT_DELAY_S,
                                        reconnection_delay_max=RECONNECT_DELAY_MAX_S,
                                        randomization_factor=RECONNECT_JITTER_S)
        self.classroom = "?"
        self.role = "?"
        self.lesson: dict[str, Any] = {}
        self.events: list[tuple[float, str, dict[str, Any]]] = []
        self.floor: str | None = None
        self.hands: list[dict[str, Any]] = []
        self.joined = asyncio.Event()
        self.refused: str | None = None
        self.kicked: str | None = None
        self.sessions = 0  # how many times we (re)joined
        self.redirects = 0
        self.nodes: list[str] = []  # a viewer's join reply: the cluster's live nodes, tried if ours dies
        self.failovers = 0  # moves to another node after ours went away
        self.origin: str | None = None
        self.server_stopping: dict[str, Any] | None = None  # the last `server_stopping` event
        self._pub: RTCPeerConnection | None = None
        self._peers: set[RTCPeerConnection] = set()  # every connection made and not yet closed
        self._sub: RTCPeerConnection | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._players: list[Any] = []
        self._video: MediaStreamTrack | None = None
        self._audio: MediaStreamTrack | None = None
        self.setup_lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._connecting: asyncio.Task[Any] | None = None  # our connect loop, when one runs
        self._recovering: dict[str, asyncio.Task[Any]] = {}  # "publish"/"subscribe" -> making it again
        self.media_restarts = {"publish": 0, "subscribe": 0}  # lost connections made again on their session
        self._resume_at = 0.0  # monotonic: a stopping server asked us not to knock before this
        if config.link is None and config.link_file is not None:
            config.link = LinkSpec()  # a clean line for now, so a SPEC written later has a line to act on
        self._link = Link(config.link) if config.link is not None else None  # one line, both pcs, every session
        self._link_file_mtime: float | None = None
        self.server_link: dict[str, Any] | None = None  # the server's last `link` event
        self._encoders: PublisherEncoders | None = None
        self.reception = Reception(self._spawn)
        self.reception.rtt_ms = lambda: (self.server_link or {}).get("rtt_ms")
        self.remotes: dict[str, RemoteStats] = self.reception.remotes
        self._register()

    @property
    def stalls_recovered(self) -> int:
        return self.reception.stalls_recovered

    def _apply_slots(self, slots: list[dict[str, Any]]) -> None:
        self.reception.apply_slots(slots)

    # -- socket.io -----------------------------------------------------------------------------

    def _register(self) -> None:
        sio = self.sio

        @sio.event
        async def connect() -> None:
            sio.reconnection_delay, sio.randomization_factor = RECONNECT_DELAY_S, RECONNECT_JITTER_S
            self._spawn(self._setup())

        @sio.event
        async def disconnect(reason: Any = None) -> None:
            self.joined.clear()
            for task in self._recovering.values():  # a call of theirs would wait for its timeout
                task.cancel()
            # closed beside the socket.io loop: it answers the server's close without waiting for aiortc
            self._spawn(_close_all(self._detach_peers()))
            if reason not in (sio.reason.CLIENT_DISCONNECT, sio.reason.SERVER_DISCONNECT):
                self._fail_over()
            if reason == sio.reason.SERVER_DISCONNECT and self.config.reconnect:
                # socket.io does not come back by itself when the server closed the session
                # (a restart, a protocol error): we do, unless we were refused or replaced
                self._reconnect()

        for name in ("classroom_left", "hand_raised", "hand_lowered", "mute_requested", "courseware"):
            sio.on(name, self._make_logger(name))

        @sio.on("classroom_joined")
        async def classroom_joined(data: dict[str, Any]) -> None:
            self._log_event("classroom_joined", data)
            if isinstance(data, dict) and isinstance(data.get("classroom"), str):  # a listening one brought in
                self.reception.tags.setdefault(source_tag(data["classroom"]), data["classroom"])

        @sio.on("hands")
        async def hands(data: dict[str, Any]) -> None:
            self.hands = list(data.get("queue", []))
            self._log_event("hands", data)

        @sio.on("floor")
        async def floor(data: dict[str, Any]) -> None:
            self.floor = data.get("classroom")
            self._log_event("floor", data)
            if self.floor == self.classroom:
                logger.info("we have the floor")

        @sio.on("brought_in")
        async def brought_in(data: dict[str, Any]) -> None:
            self._log_event("brought_in", data)
            if isinstance(data, dict) and data.get("classroom") == self.classroom:
                if self.origin:  # the edge node sends us to the lesson's node, where we publish
                    logger.info("the master brought us in: moving to %s to publish", self.origin)
                    return
                logger.info("the master brought us in: publishing")
                self._spawn(self._publish_now())

        @sio.on("sent_back")
        async def sent_back(data: dict[str, Any]) -> None:
            self._log_event("sent_back", data)
            if isinstance(data, dict) and data.get("classroom") == self.classroom:
                logger.info("the master sent us back to listening")
                recovering = self._recovering.pop("publish", None)
                if recovering is not None:
                    recovering.cancel()
                self.let_go("publish")

        @sio.on("slots")
        async def slots(data: dict[str, Any]) -> None:
            self._apply_slots(data.get("slots", []))

        @sio.on("media_lost")
        async def media_lost(data: dict[str, Any]) -> None:
            if not isinstance(data, dict):
                return
            what = data.get("target")
            pc = self._pub if what == "publish" else self._sub if what == "subscribe" else None
            # the server names the connection by our side's ICE username fragment: an older one's
            # loss (we made a new one already) is not this one's
            if pc is not None and _local_ufrag(pc) == data.get("ufrag"):
                self._lost(pc, str(what), f"the server's side {data.get('state')}")

        @sio.on("link")
        async def link(data: dict[str, Any]) -> None:
            if isinstance(data, dict):
                self.server_link = dict(data)

        @sio.on("server_stopping")
        async def server_stopping(data: dict[str, Any]) -> None:
            data = data if isinstance(data, dict) else {}
            self.server_stopping = data
            self._log_event("server_stopping", data)
            retry = data.get("retry_after_s")
            wait = min(float(retry), 30.0) if isinstance(retry, int | float) and retry > 0 else 0.0
            self._resume_at = time.monotonic() + wait
            logger.warning("the server is stopping (%s): reconnecting in %.1f s", data.get("reason"), wait)

        @sio.on("error")
        async def error(data: dict[str, Any]) -> None:
            self._log_event("error", data)
            logger.warning("server error: %s", data)
            if data.get("code") == "redirect" and data.get("url") and self.joined.is_set():
                # brought in on an edge node: we publish on the lesson's node (the server closes us now)
                logger.info("moving to %s", data["url"])
                self.config.server = str(data["url"])
                self.redirects += 1
            if data.get("code") in ("bad_token", "not_found"):  # a join's "redirect" is handled by its reply
                self.refused = str(data.get("message"))
                self._stop.set()

        @sio.on("kicked")
        async def kicked(data: dict[str, Any]) -> None:
            self.kicked = str(data.get("reason"))
            self._log_event("kicked", data)
            self._stop.set()

    def _make_logger(self, name: str) -> Any:
        async def handler(data: dict[str, Any]) -> None:
            self._log_event(name, data)

        return handler

    def _log_event(self, name: str, data: dict[str, Any]) -> None:
        self.events.append((time.time(), name, data))
        logger.info("event %s %s", name, data)

    def _fail_over(self) -> None:
        """Our node went away (no close, the line broke): a viewer comes back on the next node of
        the cluster (which places it again); socket.io's own reconnection dials `_server_url`."""
        others = [n for n in self.nodes if n.rstrip("/") != self.config.server.rstrip("/")]
        if self.role in ("listener", "observer") and others:
            self.config.server = others[self.failovers % len(others)]
            self.failovers += 1
            # socket.io's reconnection, which starts after this handler, knocks there soon
            self.sio.reconnection_delay, self.sio.randomization_factor = FAILOVER_DELAY_S, FAILOVER_JITTER_S
            logger.warning("lost the server; trying %s", self.config.server)

    def _server_url(self) -> str:
        return self.config.server

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def call(self, event: str, data: dict[str, Any] | None = None, timeout: float = 20) -> dict[str, Any]:
        reply = await self.sio.call(event, data or {}, timeout=timeout)
        if not isinstance(reply, dict):
            raise RuntimeError(f"{event}: unexpected reply {reply!r}")
        if not reply.get("ok"):
            err = reply.get("error") or {}
            if event == "join":
                raise JoinRefused(err.get("message", "refused"), err.get("code", ""), err.get("url"))
            raise Refused(f"{event}: {err.get('code')}: {err.get('message')}", str(err.get("code") or ""))
        return reply

    # -- session setup -------------------------------------------------------------------------

    async def _setup(self) -> None:
        async with self.setup_lock:
            try:
                await self._close_peers()
                state = await self.call("join", {"token": self.config.token})
                you = state["you"]
                self.classroom, self.role = you["classroom"], you["role"]
                self.lesson = state["lesson"]
                self.floor = state.get("floor")
                self.hands = state.get("hands", [])
                self.nodes = [str(n) for n in state.get("nodes", [])]
                self.origin = state.get("origin")  # on an edge node of the cluster: the lesson's own node
                classrooms = [self.lesson["master"], *self.lesson["rurals"]]
                self.reception.tags = {source_tag(c["id"]): c["id"] for c in classrooms}
                self.sessions += 1
                guest = self.role == "listener" and self.classroom in state.get("guests", [])  # brought in
                if self.config.publish and (self.role in ("master", "rural") or guest):
                    await self._publish(classrooms)
                if self.config.receive:
                    await self._subscribe()
                self.joined.set()
            except JoinRefused as exc:
                if exc.code == "redirect" and exc.url:
                    logger.info("lesson lives on %s: moving there", exc.url)
                    self.config.server = exc.url
                    self.redirects += 1
                    await self._restart()
                    return
                if exc.code.startswith("limit_"):  # a server limit (joins per second...): try again later
                    logger.warning("join refused for now (%s): %s; retrying", exc.code, exc)
                    await asyncio.sleep(1.0)
                    await self._restart()
                    return
                self.refused = str(exc)
                logger.error("join refused: %s", exc)
                self._stop.set()
            except Exception as exc:
                logger.warning("session setup failed (%s); reconnecting", exc)
                await self._restart()

    async def _restart(self) -> None:
        """Drop the connection; we connect and set everything up again."""
        if self._stop.is_set():
            return
        await self._close_peers()
        with contextlib.suppress(Exception):
            await self.sio.disconnect()
        await asyncio.sleep(0.5)
        self._reconnect()

    def _reconnect(self) -> None:
        """Start our connect loop unless one runs already (one socket per classroom at a time)."""
        if self._stop.is_set():
            return
        if self._connecting is None or self._connecting.done():
            self._connecting = self._spawn(self._connect_loop())

    def _rtc_config(self) -> RTCConfiguration:
        return rtc_configuration(self.config.ice_servers)

    def _watch(self, pc: RTCPeerConnection, what: str) -> None:
        self._peers.add(pc)

        @pc.on("connectionstatechange")
        async def changed() -> None:
            logger.info("%s connection %s", what, pc.connectionState)
            if pc.connectionState == "closed":
                self._peers.discard(pc)
            if pc.connectionState in LOST_STATES:  # a connection we close ourselves is let go first
                self._lost(pc, what, pc.connectionState)

    def _lost(self, pc: RTCPeerConnection, what: str, why: str) -> None:
        """Our publishing or receiving connection is lost while the session may stay: that one
        alone is made again (a connection we let go of already, or an old one, is not ours)."""
        if pc is not (self._pub if what == "publish" else self._sub):
            return
        logger.warning("%s connection lost (%s): making it again", what, why)
        self._log_event("media_lost", {"connection": what, "why": why})
        self.let_go(what)
        task = self._recovering.get(what)
        if task is None or task.done():
            self._recovering[what] = self._spawn(self._recover(what, self.sessions))

    async def _recover(self, what: str, session: int) -> None:
        if await recover(self, what, session):
            self.media_restarts[what] += 1

    # (what `recovery` needs of a session)

    def stopping(self) -> bool:
        return self._stop.is_set()

    def still_on(self, session: int) -> bool:
        return self.sessions == session and self.joined.is_set() and self.sio.connected

    def has(self, what: str) -> bool:
        return (self._pub if what == "publish" else self._sub) is not None

    async def connect_again(self, what: str) -> None:
        if what == "publish":
            await self._publish(self._classrooms())
        else:
            await self._subscribe()

    def let_go(self, what: str) -> None:
        pc = self._pub if what == "publish" else self._sub
        if what == "publish":
            self._pub = None
        else:
            self._sub = None
        if pc is not None:
            self._spawn(_close_all([pc]))

    def start_over(self) -> None:
        self._spawn(self._restart())

    def _classrooms(self) -> list[dict[str, Any]]:
        return [self.lesson["master"], *self.lesson.get("rurals", [])]

    async def _publish_now(self) -> None:
        """Publish in the lesson we are in (a listening classroom the master brought in)."""
        if not self.config.publish or self._stop.is_set():
            return
        async with self.setup_lock:
            if self._pub is None:
                await self._publish(self._classrooms())

    async def _publish(self, classrooms: list[dict[str, Any]]) -> None:
        if self._video is None and self._audio is None:
            # a listening classroom is not listed: the tone after the listed classrooms'
            index = next((i for i, c in enumerate(classrooms) if c["id"] == self.classroom), len(classrooms))
            self._video, self._audio, self._players = open_sources(
                self.config.sources, self.classroom, source_tag(self.classroom), TONES_HZ[index % 9]
            )
        if self._video is None and self._audio is None:
            return  # nothing to publish (no camera, no microphone): receive only

        def keep(pc: RTCPeerConnection) -> None:
            self._pub = pc
            self._watch(pc, "publish")

        await publish(self.call, self._rtc_config(), self._video, self._audio, video_codec=self.config.video_codec,
                      link=self._link, keep=keep)

    async def _subscribe(self) -> None:
        reply = await self.call("subscribe")
        pc = RTCPeerConnection(self._rtc_config())
        self._sub = pc
        self._watch(pc, "subscribe")
        self.reception.receive_on(pc, reply["slots"], alive=lambda: pc is self._sub)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="offer"))
        if self._link is not None:
            self._link.attach(pc)
        await pc.setLocalDescription(await pc.createAnswer())
        await self.call("subscribe_answer", {"sdp": pc.localDescription.sdp})

    def _detach_peers(self) -> list[RTCPeerConnection]:
        pcs = [pc for pc in (self._pub, self._sub) if pc is not None]
        self._pub = self._sub = None
        return pcs

    async def _close_peers(self) -> None:
        await _close_all(self._detach_peers())

    # -- actions -------------------------------------------------------------------------------

    async def raise_hand(self) -> None:
        await self.call("raise_hand")

    async def lower_hand(self) -> None:
        await self.call("lower_hand")

    async def give_floor(self, classroom: str) -> None:
        await self.call("give_floor", {"classroom": classroom})

    async def take_floor(self) -> None:
        await self.call("take_floor")

    async def bring_in(self, classroom: str) -> None:
        """(master of a broadcast) A listening classroom joins the interactive part and publishes."""
        await self.call("bring_in", {"classroom": classroom})

    async def send_back(self, classroom: str) -> None:
        await self.call("send_back", {"classroom": classroom})

    # -- running -------------------------------------------------------------------------------

    async def _connect_loop(self) -> None:
        backoff = Backoff()
        while not self._stop.is_set():
            wait = self._resume_at - time.monotonic()
            if wait > 0:  # a stopping server told us when to come back
                await asyncio.sleep(wait)
                continue
            if self.sio.connected:  # socket.io's own reconnection got there first
                return
            url = self.config.server
            try:
                await self.sio.connect(self._server_url, transports=["websocket"], wait_timeout=10)
                return
            except Exception as exc:  # server not up yet, or network down
                delay = backoff.next_delay()
                logger.info("connect to %s failed (%s); retrying in %.1fs", url, exc, delay)
                if backoff.attempt >= 3:  # a viewer sent to a node that is gone (the lesson's origin) tries the next
                    self._fail_over()
                await asyncio.sleep(delay)

    async def start(self) -> None:
        self._encoders = install_publisher_encoders()  # process-wide: a terminal is one client
        use_decoder("audio/opus", lambda codec: OpusDecoder())
        if self.config.ice_addresses is not None:
            use_host_addresses(self.config.ice_addresses)
        else:  # a server on loopback (127.0.0.1 or [::1]): our candidates there, in its family
            loopback = loopback_ice_addresses([urlparse(self.config.server).hostname or ""])
            if loopback is not None:
                use_host_addresses(loopback)
        await self._connect_loop()

    async def run(self) -> int:
        """Run until --duration passes (or forever); returns the exit code.

        The duration counts from this call, whatever the link does: connecting, reconnecting
        and every socket.io call run beside this loop, and leaving waits at most
        CLOSE_TIMEOUT_S for each step.
        """
        started = time.monotonic()
        self._spawn(self.start())
        hand: asyncio.Task[Any] | None = None
        next_stats = 0.0
        try:
            while not self._stop.is_set():
                elapsed = time.monotonic() - started
                if self.config.duration is not None and elapsed >= self.config.duration:
                    break
                if (self.config.raise_hand_at is not None and (hand is None or hand.cancelled()
                        or (hand.done() and hand.exception() is not None))
                        and elapsed >= self.config.raise_hand_at and self.joined.is_set()):
                    hand = self._spawn(self.raise_hand())
                if time.monotonic() >= next_stats:
                    self._reread_link_file()
                    if self.config.stats_json:
                        self._write_stats_safely()
                    next_stats = time.monotonic() + 1.0
                await asyncio.sleep(0.1)
        finally:
            if self.config.stats_json:
                self._write_stats_safely()
            await self.close()
        if self.refused:
            logger.error("refused: %s", self.refused)
            return 2
        return 0

    def _reread_link_file(self) -> None:
        """--link-file: apply the SPEC in the file whenever the file changes (a bad one is logged)."""
        path = self.config.link_file
        if path is None or self._link is None:
            return
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return
        if mtime == self._link_file_mtime:
            return
        self._link_file_mtime = mtime
        try:
            spec = LinkSpec.parse(path.read_text().strip())
        except (OSError, ValueError) as exc:
            logger.warning("--link-file %s: %s (the link stays %s)", path, exc, self._link.spec)
            return
        if str(spec) != str(self._link.spec):
            logger.info("link now %s (from %s)", spec or "clean", path)
            self._link.reconfigure(spec)
            self._log_event("link_changed", {"link": str(spec)})

    def _write_stats_safely(self) -> None:
        try:
            self.write_stats()
        except Exception:  # a full disk must not keep the terminal past its duration
            logger.exception("writing stats failed")

    def write_stats(self) -> None:
        assert self.config.stats_json is not None
        write_stats(self.config.stats_json, self.classroom, self.remotes, {
            "server_link": self.server_link,
            "encoder_restarts": self._encoders.restarts if self._encoders else 0,
            "role": self.role,
            "sessions": self.sessions,
            "media_restarts": self.media_restarts,
            "stalls_recovered": self.stalls_recovered,
            "server": self.config.server,
            "redirects": self.redirects,
            "failovers": self.failovers,
            "link": str(self._link.spec) if self._link else None,
            "link_stats": self._link.stats() if self._link else None,
            "ice": {"publish": selected_candidate_pair(self._pub) if self._pub else None,
                    "subscribe": selected_candidate_pair(self._sub) if self._sub else None},
            "floor": self.floor,
            "hands": [h.get("classroom") for h in self.hands],
            "refused": self.refused,
            "slots": {mid: s.__dict__ for mid, s in self.reception.slots_by_mid.items()},
            "events": [{"t": t, "event": e, "data": d} for t, e, d in self.events[-200:]],
        })

    def request_stop(self) -> None:
        self._stop.set()

    async def close(self) -> None:
        self._stop.set()
        for task in list(self._tasks):  # connect loops and setups first: nothing reconnects behind us
            if task is not asyncio.current_task():
                task.cancel()
        with contextlib.suppress(Exception, asyncio.TimeoutError):
            await asyncio.wait_for(self.sio.shutdown(), CLOSE_TIMEOUT_S)
        await self._close_peers()
        # A close the cancelled tasks above left half-way (a disconnect closes the old connections
        # in a task of its own), or one that timed out, is finished here: a receiver left running
        # keeps its decoder thread, and a process with such a thread never exits.
        await _close_all(list(self._peers))
        for pc in list(self._peers):
            for transceiver in pc.getTransceivers():
                with contextlib.suppress(Exception, asyncio.TimeoutError):
                    await asyncio.wait_for(transceiver.receiver.stop(), CLOSE_TIMEOUT_S)
        self._peers.clear()
        for track in (self._video, self._audio):
            if track is not None:
                track.stop()


def _local_ufrag(pc: RTCPeerConnection) -> str | None:
    local = pc.localDescription
    return ice_ufrag(local.sdp) if local is not None else None


async def _close_all(pcs: list[RTCPeerConnection]) -> None:
    for pc in pcs:
        with contextlib.suppress(Exception, asyncio.TimeoutError):
            await asyncio.wait_for(pc.close(), CLOSE_TIMEOUT_S)
