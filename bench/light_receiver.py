"""LIGHT lesson clients for benches: real signaling and real ICE/DTLS-SRTP through aiortc, but RTP is
only counted, never depayloaded, jitter-buffered or decoded; a rural one also publishes a small test
pattern and a tone. Many fit in one process where full `twinclass classroom` terminals would not.

    .venv/bin/python bench/light_receiver.py --server URL --secret-file DATA/token-secret --lesson ID \\
        [--rurals rural-3,rural-4] [--observers 30] [--churn 3 --churn-every 60] [--hands-every 20] \\
        [--role observer|listener] [--mode full|patrol] [--stats-json FILE] [--seconds S] \\
        [--receive-path wire|aiortc] [--event-loop uvloop|asyncio]

Receive paths (`bench/rtp_counting.py`): `wire`, the default, counts each RTP datagram from its
header, which SRTP leaves in the clear, as aioice hands it over (SRTP is unprotected only for a
stream's first packets, up to a video stream's first keyframe); `aiortc`, the earlier path (for
`bench/light_receiver_cost.py`), lets aiortc unprotect, parse and route every packet to a counting
handler. Either way each stream's sequence numbers feed aiortc's per-stream statistics, so the
server gets receiver reports (loss, jitter, round trip) from it as from any subscriber; it sends no
NACK, PLI or REMB. The process runs on uvloop unless `--event-loop asyncio`.

The crowd writes `--stats-json` every 2 s: clients live, joins and leaves so far, failures, RTP
packets and bytes received, clients that missed no packet (no sequence gap on any stream) and that
saw a keyframe start on every video stream, and on which node (server URL) the clients ended up: a
join refused with code "redirect" is followed to the node it names, as the classroom terminal does.
`--lesson` may name several lessons (comma-separated): the crowd's observers go round them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import socketio
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.rtp_counting import RECEIVE_PATHS, Counts, WireCounter, count_in_aiortc, remote_streams
from classroom_client.encoders import install_publisher_encoders
from classroom_client.pattern import source_tag
from classroom_client.sources import TestPatternTrack, ToneTrack
from sfu.media.aiortc_adapter import use_host_addresses
from sfu.media.endpoint import rtc_configuration
from sfu.tokens import TokenIssuer

logger = logging.getLogger("light")


@dataclass
class PublishSpec:
    width: int = 160
    height: int = 120
    fps: int = 10
    tone_hz: float = 550.0
    audio: bool = True
    video: Callable[[str], MediaStreamTrack] | None = None  # the picture, from the classroom's name; None: the pattern


class JoinRedirected(Exception):
    def __init__(self, url: str) -> None:
        super().__init__(f"the lesson lives on {url}")
        self.url = url


MAX_REDIRECTS = 3


class LightClient:
    """One participant: joins with a token (following "redirect" refusals to the node they name),
    maybe publishes, subscribes (`subscribe`: the message's options, e.g. {"mode": "patrol"}) and
    counts what arrives."""

    def __init__(self, server: str, token: str, publish: PublishSpec | None = None,
                 subscribe: dict[str, Any] | None = None, receive_path: str = "wire") -> None:
        if receive_path not in RECEIVE_PATHS:
            raise ValueError(f"receive_path: one of {', '.join(RECEIVE_PATHS)}, not {receive_path!r}")
        self.server = server
        self.receive_path = receive_path
        self.token = token
        self.publish_spec = publish
        self.subscribe_options = subscribe or {}
        self.redirects = 0
        self.sio = self._socket()
        self.counts = Counts()
        self.link: dict[str, Any] | None = None  # the server's last view of our downlink (from our receiver reports)
        self.classroom = "?"
        self._pcs: list[RTCPeerConnection] = []

    async def call(self, event: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        reply = await self.sio.call(event, data or {}, timeout=20)
        if not isinstance(reply, dict) or not reply.get("ok"):
            raise RuntimeError(f"{event}: {reply!r}")
        return reply

    async def start(self) -> None:
        while True:
            try:
                state = await self._join()
                break
            except JoinRedirected as moved:
                self.redirects += 1
                if self.redirects > MAX_REDIRECTS:
                    raise RuntimeError(f"join: more than {MAX_REDIRECTS} redirects ({moved})") from None
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.sio.disconnect(), 5)
                self.server = moved.url
                self.sio = self._socket()
        self.classroom = state["you"]["classroom"]
        if self.publish_spec is not None:
            await self._publish(self.publish_spec)
        await self._subscribe()

    def _socket(self) -> socketio.AsyncClient:
        sio = socketio.AsyncClient(reconnection=False)

        @sio.on("link")
        def link(data: Any) -> None:  # loss and round trip, as the server reads them from our receiver reports
            if isinstance(data, dict):
                self.link = data

        return sio

    async def _join(self) -> dict[str, Any]:
        await self.sio.connect(self.server, transports=["websocket"], wait_timeout=10)
        reply = await self.sio.call("join", {"token": self.token}, timeout=20)
        error = reply.get("error") if isinstance(reply, dict) else None
        if isinstance(error, dict) and error.get("code") == "redirect" and error.get("url"):
            raise JoinRedirected(str(error["url"]))
        if not isinstance(reply, dict) or not reply.get("ok"):
            raise RuntimeError(f"join: {reply!r}")
        return reply

    async def _publish(self, spec: PublishSpec) -> None:
        pc = RTCPeerConnection(rtc_configuration([]))
        self._pcs.append(pc)
        track = (spec.video(self.classroom) if spec.video is not None else
                 TestPatternTrack(spec.width, spec.height, spec.fps, self.classroom, source_tag(self.classroom)))
        video = pc.addTransceiver(track, direction="sendonly")
        transceivers = [(video, "camera")]
        if spec.audio:
            transceivers.append((pc.addTransceiver(ToneTrack(spec.tone_hz), direction="sendonly"), "mic"))
        await pc.setLocalDescription(await pc.createOffer())
        sources = {t.mid: source for t, source in transceivers if t.mid is not None}
        reply = await self.call("publish", {"sdp": pc.localDescription.sdp, "sources": sources})
        await pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="answer"))

    async def _subscribe(self) -> None:
        reply = await self.call("subscribe", self.subscribe_options)
        pc = RTCPeerConnection(rtc_configuration([]))
        self._pcs.append(pc)

        @pc.on("connectionstatechange")
        def changed() -> None:
            if pc.connectionState in ("failed", "closed") and pc in self._pcs:
                logger.warning("%s: receiving connection %s (ICE %s)", self.classroom, pc.connectionState,
                               pc.iceConnectionState)

        await pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="offer"))
        receivers = [t.receiver for t in pc.getTransceivers()]
        wire = WireCounter(receivers, self.counts) if self.receive_path == "wire" and receivers else None
        if self.receive_path == "aiortc":
            for receiver in receivers:
                count_in_aiortc(receiver, self.counts)
        await pc.setLocalDescription(await pc.createAnswer())
        if wire is not None:
            wire.attach()
        await self.call("subscribe_answer", {"sdp": pc.localDescription.sdp})

    @property
    def connections(self) -> list[RTCPeerConnection]:
        """The client's peer connections: the publishing one first (if it publishes), then the receiving one."""
        return list(self._pcs)

    @property
    def lost(self) -> bool:
        return not self.sio.connected or self.receiving_state in ("closed", "failed")

    @property
    def receiving_state(self) -> str:
        return str(self._pcs[-1].connectionState) if self._pcs else "none"

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.sio.disconnect(), 5)
        for pc in self._pcs:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pc.close(), 5)
        self._pcs = []


@dataclass
class CrowdStats:
    live: int = 0
    connected: int = 0  # clients whose receiving connection is up (ICE + DTLS done)
    states: dict[str, int] = field(default_factory=dict)  # receiving connections by RTCPeerConnection state
    joins: int = 0
    leaves: int = 0
    failures: int = 0  # joins that failed
    lost: int = 0  # clients whose socket the server (or a timeout) closed; each is replaced
    hands_raised: int = 0
    packets: int = 0
    bytes: int = 0
    nodes: dict[str, int] = field(default_factory=dict)  # server URL -> clients live there (after redirects)
    redirected: int = 0  # live clients that were redirected to another node
    complete: int = 0  # live clients that missed no packet (no sequence gap on any stream so far)
    keyframed: int = 0  # live clients where a keyframe started on every video stream that came
    packets_missed: int = 0  # live clients' sequence gaps, summed over their streams


def packets_missed(client: LightClient) -> int | None:
    """Packets the client's receiving connection missed so far (sequence gaps over all its streams);
    None before it has one."""
    if not client.connections:
        return None
    missed = 0
    for transceiver in client.connections[-1].getTransceivers():
        missed += sum(s.packets_lost for s in remote_streams(transceiver.receiver).values())
    return missed


class Crowd:
    """Light rural classrooms and observers of one lesson; observers come and go, hands go up."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.issuer = TokenIssuer(Path(args.secret_file).read_text().strip())
        self.rurals: dict[str, LightClient] = {}
        self.observers: list[LightClient] = []
        self.stats = CrowdStats()
        self._gone = Counts()  # what clients that left had received
        self._serial = 0
        self.lessons = [lesson for lesson in args.lesson.split(",") if lesson]

    def _token(self, role: str, classroom: str) -> str:
        self._serial += 1
        lesson = self.lessons[0] if role == "rural" else self.lessons[self._serial % len(self.lessons)]
        if role == "listener":  # a listening classroom of a broadcast: a classroom id of its own
            classroom = f"listener-{os.getpid()}-{self._serial}"
        name = classroom if role != "observer" else f"soak observer {self._serial}"
        return self.issuer.mint(lesson=lesson, classroom=classroom, name=name, role=role, ttl_s=6 * 3600,
                                sub=f"soak-{self._serial}" if role == "observer" else "")

    async def _start(self, client: LightClient) -> bool:
        try:
            await client.start()
        except Exception as exc:
            logger.warning("%s could not join: %s", client.classroom, exc)
            self.stats.failures += 1
            await client.close()
            return False
        self.stats.joins += 1
        return True

    async def add_observer(self) -> None:
        subscribe = {"mode": self.args.mode} if self.args.mode != "full" else {}
        client = LightClient(self.args.server, self._token(self.args.role, "observer"), subscribe=subscribe,
                             receive_path=self.args.receive_path)
        if await self._start(client):
            self.observers.append(client)

    async def drop_observer(self) -> None:
        if not self.observers:
            return
        client = self.observers.pop(random.randrange(len(self.observers)))
        self._gone.packets += client.counts.packets
        self._gone.bytes += client.counts.bytes
        await client.close()
        self.stats.leaves += 1

    async def add_rural(self, classroom: str) -> None:
        width, height = self.args.size
        i = self.args.rurals.index(classroom)
        spec = PublishSpec(width=width, height=height, fps=self.args.fps, tone_hz=300.0 + 37 * i,
                           audio=not self.args.no_rural_audio)
        client = LightClient(self.args.server, self._token("rural", classroom), spec,
                             receive_path=self.args.receive_path)
        client.classroom = classroom
        if await self._start(client):
            self.rurals[classroom] = client

    async def replace_lost(self) -> None:
        """Clients whose socket or receiving connection was closed (by the server, or ICE consent on a
        starved machine) are counted and replaced by a new one, so the lesson keeps its size."""
        lost = [c for c in [*self.rurals.values(), *self.observers] if c.lost]
        for client in lost:
            logger.warning("%s lost (socket %s, receiving %s): replacing it", client.classroom,
                           "up" if client.sio.connected else "closed", client.receiving_state)
            self.stats.lost += 1
            self._gone.packets += client.counts.packets
            self._gone.bytes += client.counts.bytes
            await client.close()
            if client in self.observers:
                self.observers.remove(client)
                await self.add_observer()
            else:
                del self.rurals[client.classroom]
                await self.add_rural(client.classroom)

    async def run(self) -> None:
        rng = random.Random(7)
        for classroom in self.args.rurals:
            await self.add_rural(classroom)
        for _ in range(self.args.observers):
            await self.add_observer()
            self.write_stats()
        started = time.monotonic()
        next_churn = started + self.args.churn_every
        next_hand = started + self.args.hands_every
        next_stats = 0.0
        while self.args.seconds is None or time.monotonic() - started < self.args.seconds:
            now = time.monotonic()
            if now >= next_churn:
                next_churn = now + self.args.churn_every
                for _ in range(self.args.churn):
                    await self.drop_observer()
                for _ in range(self.args.churn):
                    await self.add_observer()
            await self.replace_lost()
            if now >= next_hand and self.rurals:
                next_hand = now + self.args.hands_every
                client = self.rurals[rng.choice(sorted(self.rurals))]
                event = "raise_hand" if rng.random() < 0.7 else "lower_hand"
                with contextlib.suppress(Exception):
                    await client.call(event)
                    self.stats.hands_raised += event == "raise_hand"
            if now >= next_stats:
                next_stats = now + 2.0
                self.write_stats()
            await asyncio.sleep(0.2)

    def write_stats(self) -> None:
        clients = [*self.rurals.values(), *self.observers]
        self.stats.live = len(clients)
        self.stats.connected = sum(c.receiving_state == "connected" for c in clients)
        self.stats.states = {}
        for c in clients:
            self.stats.states[c.receiving_state] = self.stats.states.get(c.receiving_state, 0) + 1
        self.stats.packets = self._gone.packets + sum(c.counts.packets for c in clients)
        self.stats.bytes = self._gone.bytes + sum(c.counts.bytes for c in clients)
        self.stats.nodes = {}
        for c in clients:
            self.stats.nodes[c.server] = self.stats.nodes.get(c.server, 0) + 1
        self.stats.redirected = sum(c.redirects > 0 for c in clients)
        missed = [packets_missed(c) for c in clients]
        self.stats.complete = sum(m == 0 for m in missed)
        self.stats.packets_missed = sum(m or 0 for m in missed)
        self.stats.keyframed = sum(c.counts.keyframe_seen for c in clients)
        if self.args.stats_json:
            path = Path(self.args.stats_json)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"updated_at": time.time(), **asdict(self.stats)}))
            os.replace(tmp, path)

    async def close(self) -> None:
        for client in [*self.rurals.values(), *self.observers]:
            await client.close()


async def amain(args: argparse.Namespace) -> None:
    install_publisher_encoders()
    use_host_addresses(["127.0.0.1"])
    crowd = Crowd(args)
    task = asyncio.ensure_future(crowd.run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass
    finally:
        crowd.write_stats()
        await crowd.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", required=True)
    parser.add_argument("--secret-file", required=True, help="the server's token-secret (tokens are minted here)")
    parser.add_argument("--lesson", required=True, help="a lesson id, or several (comma-separated)")
    parser.add_argument("--rurals", type=lambda s: [c for c in s.split(",") if c], default=[])
    parser.add_argument("--no-rural-audio", action="store_true", help="light rurals publish video only")
    parser.add_argument("--size", type=lambda s: tuple(int(x) for x in s.split("x")), default=(160, 120),
                        help="light rurals' test pattern WxH")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--observers", type=int, default=0)
    parser.add_argument("--role", default="observer", choices=["observer", "listener"],
                        help="the crowd's receive-only clients: observers, or a broadcast's listening classrooms")
    parser.add_argument("--mode", default="full", choices=["full", "patrol"],
                        help="how they subscribe (patrol: observers, cameras only, keyframes only)")
    parser.add_argument("--churn", type=int, default=0, help="observers that leave and new ones that join each time")
    parser.add_argument("--churn-every", type=float, default=60.0)
    parser.add_argument("--hands-every", type=float, default=20.0, help="a light rural raises or lowers its hand")
    parser.add_argument("--stats-json", default=None)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--receive-path", default="wire", choices=list(RECEIVE_PATHS),
                        help="wire: RTP counted from the datagrams' clear headers (default); aiortc: through "
                             "aiortc's SRTP, RtpPacket and receiver (the earlier path, for comparison)")
    parser.add_argument("--event-loop", default="uvloop", choices=["uvloop", "asyncio"])
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aioice").setLevel(logging.WARNING)
    loop_factory = None
    if args.event_loop == "uvloop":
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(amain(args))


if __name__ == "__main__":
    main()
