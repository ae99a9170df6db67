"""Real aiortc peers over loopback around the server's endpoints, in one process (for tests/sfu).

publisher pc ──RTP──▶ PublisherEndpoint ─▶ PublishedTrack ─▶ Slot ─▶ SubscriberEndpoint ──RTP──▶ subscriber pc
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket

from classroom_client.encoders import install_publisher_encoders
from classroom_client.pattern import read_pattern, source_tag
from classroom_client.sources import TestPatternTrack, ToneTrack
from sfu.media.endpoint import PublisherEndpoint, SubscriberEndpoint, rtc_configuration
from sfu.media.forwarder import PublishedTrack


@dataclass
class Received:
    counters: list[int] = field(default_factory=list)
    tags: list[int] = field(default_factory=list)
    bad: int = 0
    audio: int = 0
    sizes: list[tuple[int, int]] = field(default_factory=list)  # each video frame's width, height


async def _consume(track: MediaStreamTrack, into: Received) -> None:
    try:
        while True:
            frame = await track.recv()
            if isinstance(frame, av.VideoFrame):
                into.sizes.append((frame.width, frame.height))
                info = read_pattern(frame.to_ndarray(format="gray"))
                if info is None:
                    into.bad += 1
                    into.tags.append(-1)  # keeps the order of sources visible
                else:
                    into.counters.append(info.counter)
                    into.tags.append(info.tag)
            else:
                into.audio += 1
    except MediaStreamError:
        pass


def codec_preferences(kind: str, codec: str) -> list[Any]:
    caps = RTCRtpSender.getCapabilities(kind).codecs
    return [c for c in caps if c.mimeType == f"{kind}/{codec}"] + [c for c in caps if c.mimeType == f"{kind}/rtx"]


@dataclass
class Publisher:
    pc: RTCPeerConnection
    endpoint: PublisherEndpoint
    tracks: dict[str, PublishedTrack]


async def publish(name: str, codec: str = "VP8", our_encoders: bool = True) -> Publisher:
    """A publisher as our classroom terminal is: its VP8 and Opus encoders (process-wide), unless
    the test installed encoders of its own (`our_encoders=False`)."""
    if our_encoders:
        install_publisher_encoders()
    pc = RTCPeerConnection(rtc_configuration([]))
    video = pc.addTransceiver(TestPatternTrack(320, 240, 30, name, source_tag(name)), direction="sendonly")
    video.setCodecPreferences(codec_preferences("video", codec))
    pc.addTransceiver(ToneTrack(440), direction="sendonly")
    tracks: dict[str, PublishedTrack] = {}
    endpoint = PublisherEndpoint([], name, lambda source, t: tracks.__setitem__(source, t), lambda s: None)
    await pc.setLocalDescription(await pc.createOffer())
    answer = await endpoint.accept_offer(pc.localDescription.sdp, {})
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    return Publisher(pc, endpoint, tracks)


@dataclass
class Subscriber:
    pc: RTCPeerConnection
    endpoint: SubscriberEndpoint
    video: Received
    audio: Received
    tasks: list[asyncio.Task[None]]

    def receiver(self, kind: str = "video") -> Any:
        return next(t.receiver for t in self.pc.getTransceivers() if t.kind == kind)


def spy_rtp(receiver: Any, seen: Callable[[RtpPacket], bool | None]) -> None:
    """Call `seen(packet)` on every RTP packet a receiver gets (as sent); a true result drops it."""
    original = receiver._handle_rtp_packet

    async def spy(packet: RtpPacket, arrival_time_ms: int) -> None:
        if not seen(packet):
            await original(packet, arrival_time_ms)

    receiver._handle_rtp_packet = spy


async def subscribe(drop: Callable[[RtpPacket], bool] | None = None, video_codec: str | None = None,
                    low_frame: bool = False) -> Subscriber:
    """A subscriber pc on slots "v", "a" and "v2" (a second video m-line, as every lesson's connection
    has: it shares payload types with "v"); `drop` loses "v" packets; `video_codec` limits what it accepts;
    `low_frame`: the video slots forward keyframes only (a patrol tile)."""
    endpoint = SubscriberEndpoint([], lambda s: None, adaptive=not low_frame)
    endpoint.add_slot("v", "video", low_frame=low_frame)
    endpoint.add_slot("a", "audio")
    endpoint.add_slot("v2", "video", low_frame=low_frame)
    pc = RTCPeerConnection(rtc_configuration([]))
    video, audio = Received(), Received()
    tasks: list[asyncio.Task[None]] = []

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        tasks.append(asyncio.ensure_future(_consume(track, video if track.kind == "video" else audio)))

    if video_codec is not None:  # aiortc matches the offer's m-line to this transceiver, with its preferences
        pc.addTransceiver("video", direction="recvonly").setCodecPreferences(codec_preferences("video", video_codec))
    await pc.setRemoteDescription(RTCSessionDescription(await endpoint.create_offer(), "offer"))
    if drop is not None:
        spy_rtp(next(t.receiver for t in pc.getTransceivers() if t.kind == "video"), drop)
    await pc.setLocalDescription(await pc.createAnswer())
    await endpoint.accept_answer(pc.localDescription.sdp)
    return Subscriber(pc, endpoint, video, audio, tasks)


async def until(predicate: Callable[[], Any], timeout: float, what: str) -> None:
    """Return once `predicate()` is true; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def close(*things: Any) -> None:
    for thing in things:
        for task in getattr(thing, "tasks", []):
            task.cancel()
        await thing.endpoint.close()
        await thing.pc.close()
