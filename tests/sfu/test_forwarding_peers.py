"""The forwarding plane with real aiortc peers over loopback, in one process.

publisher pc ──RTP──▶ PublisherEndpoint ─▶ PublishedTrack ─▶ Slot ─▶ SubscriberEndpoint ──RTP──▶ subscriber pc

These tests pin down every aiortc internal the adapter relies on: if an aiortc upgrade moves
one, frames stop arriving here (or a counter stays 0) and the test says which.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import av
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket

from classroom_client.pattern import read_pattern, source_tag
from classroom_client.sources import TestPatternTrack, ToneTrack
from sfu.media import aiortc_adapter
from sfu.media.aiortc_adapter import capture_encoded_frames, use_host_addresses
from sfu.media.endpoint import PublisherEndpoint, SubscriberEndpoint, rtc_configuration
from sfu.media.forwarder import PublishedTrack


@dataclass
class Received:
    counters: list[int] = field(default_factory=list)
    tags: list[int] = field(default_factory=list)
    bad: int = 0
    audio: int = 0


async def _consume(track: MediaStreamTrack, into: Received) -> None:
    try:
        while True:
            frame = await track.recv()
            if isinstance(frame, av.VideoFrame):
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


@dataclass
class Publisher:
    pc: RTCPeerConnection
    endpoint: PublisherEndpoint
    tracks: dict[str, PublishedTrack]


async def publish(name: str, codec: str = "VP8") -> Publisher:
    pc = RTCPeerConnection(rtc_configuration([]))
    video = pc.addTransceiver(TestPatternTrack(320, 240, 30, name, source_tag(name)), direction="sendonly")
    caps = RTCRtpSender.getCapabilities("video").codecs
    video.setCodecPreferences([c for c in caps if c.mimeType == f"video/{codec}"]
                              + [c for c in caps if c.mimeType == "video/rtx"])
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


async def subscribe(drop: Any = None) -> Subscriber:
    endpoint = SubscriberEndpoint([], lambda s: None)
    endpoint.add_slot("v", "video")
    endpoint.add_slot("a", "audio")
    pc = RTCPeerConnection(rtc_configuration([]))
    video, audio = Received(), Received()
    tasks: list[asyncio.Task[None]] = []

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        tasks.append(asyncio.ensure_future(_consume(track, video if track.kind == "video" else audio)))

    await pc.setRemoteDescription(RTCSessionDescription(await endpoint.create_offer(), "offer"))
    if drop is not None:
        for t in pc.getTransceivers():
            if t.kind == "video":
                original = t.receiver._handle_rtp_packet

                async def lossy(packet: RtpPacket, arrival_time_ms: int, original: Any = original) -> None:
                    if not drop(packet):
                        await original(packet, arrival_time_ms)

                t.receiver._handle_rtp_packet = lossy  # type: ignore[method-assign]
    await pc.setLocalDescription(await pc.createAnswer())
    await endpoint.accept_answer(pc.localDescription.sdp)
    return Subscriber(pc, endpoint, video, audio, tasks)


@pytest.fixture(autouse=True)
async def loopback_ice() -> AsyncIterator[None]:
    use_host_addresses(["127.0.0.1"])
    yield
    use_host_addresses(None)


async def _close(*things: Any) -> None:
    for thing in things:
        for task in getattr(thing, "tasks", []):
            task.cancel()
        await thing.endpoint.close()
        await thing.pc.close()


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_forwarded_frames_decode_with_their_counters_and_server_never_decodes(codec: str) -> None:
    decoders_before = aiortc_adapter.decoders_created()
    pub = await publish("pub-a", codec)
    sub = await subscribe()
    sub.endpoint.slots["v"].attach(None)
    await asyncio.sleep(0.5)
    sub.endpoint.slots["v"].attach(pub.tracks["camera"])
    sub.endpoint.slots["a"].attach(pub.tracks["mic"])
    await asyncio.sleep(4)
    rx = sub.video
    assert len(rx.counters) > 90, f"{codec}: only {len(rx.counters)} frames"
    assert rx.bad == 0
    assert set(rx.tags) == {source_tag("pub-a")}
    assert rx.counters == sorted(rx.counters)  # in order, verified by content
    assert sub.audio.audio > 100
    # the server side never decoded: the publisher endpoint's receivers have no decoder thread,
    # and the only decoders created are the subscriber's two (video + audio)
    assert aiortc_adapter.decoders_created() - decoders_before == 2
    for t in pub.endpoint.pc.getTransceivers():
        assert t.receiver._RTCRtpReceiver__decoder_thread is None  # type: ignore[attr-defined]
    # sender reports count what was forwarded
    port = sub.endpoint.slots["v"].port
    assert port is not None
    packets, octets, _ = port.sender_counters()
    assert packets == port.packets_sent > 100 and octets > 10_000
    stats = await port.sender.getStats()
    outbound = [s for s in stats.values() if s.type == "outbound-rtp"]
    assert outbound and outbound[0].packetsSent == packets
    await _close(sub, pub)


async def test_new_subscriber_waits_for_a_keyframe_that_the_server_requests() -> None:
    pub = await publish("pub-b")
    await asyncio.sleep(3)  # the publisher's first keyframe is long gone
    track = pub.tracks["camera"]
    requests_before = track.stats.keyframe_requests_sent
    t0 = time.monotonic()
    sub = await subscribe()
    sub.endpoint.slots["v"].attach(track)
    while not sub.video.counters and time.monotonic() - t0 < 5:
        await asyncio.sleep(0.02)
    assert sub.video.counters, "no picture for a late subscriber"
    assert time.monotonic() - t0 < 1.5
    assert track.stats.keyframe_requests_sent > requests_before
    assert sub.video.bad == 0  # nothing undecodable was forwarded before the keyframe
    await _close(sub, pub)


async def test_source_switch_keeps_sequence_and_timestamps_continuous() -> None:
    a = await publish("pub-a")
    b = await publish("pub-b")
    sub = await subscribe()
    seen: list[RtpPacket] = []
    for t in sub.pc.getTransceivers():
        if t.kind == "video":
            original = t.receiver._handle_rtp_packet

            async def spy(packet: RtpPacket, arrival_time_ms: int, original: Any = original) -> None:
                seen.append(packet)
                await original(packet, arrival_time_ms)

            t.receiver._handle_rtp_packet = spy  # type: ignore[method-assign]
    slot = sub.endpoint.slots["v"]
    slot.attach(a.tracks["camera"])
    await asyncio.sleep(2.5)
    switch_at = len(seen)
    slot.attach(b.tracks["camera"])
    await asyncio.sleep(2.5)
    slot.attach(a.tracks["camera"])
    await asyncio.sleep(2.5)
    assert len({p.ssrc for p in seen}) == 1
    seqs = [p.sequence_number for p in seen]
    steps = [(y - x) % 65536 for x, y in itertools.pairwise(seqs)]
    assert all(s == 1 for s in steps), f"sequence jumps: {sorted(set(steps))[:10]}"
    stamps = [p.timestamp for p in seen]
    ts_steps = [(y - x) % (1 << 32) for x, y in itertools.pairwise(stamps)]
    assert all(s < 90000 for s in ts_steps), "timestamps went backwards or jumped"
    tags = sub.video.tags
    # the picture switched source, decoded cleanly, and came back
    runs = [t for t, _ in itertools.groupby(t for t in tags if t != -1)]
    assert runs == [source_tag("pub-a"), source_tag("pub-b"), source_tag("pub-a")], runs
    assert sub.video.bad <= 1  # no corrupted picture at either switch
    assert switch_at > 0
    await _close(sub, a, b)


async def test_lost_packets_are_repaired_from_the_forwarders_history() -> None:
    pub = await publish("pub-c")
    dropped: set[int] = set()

    def drop(packet: RtpPacket) -> bool:
        # drop every 25th media packet the first time it arrives (RTX repairs arrive unwrapped)
        if packet.payload_type in (97, 99, 101) and packet.sequence_number % 25 == 0 \
                and packet.sequence_number not in dropped:
            dropped.add(packet.sequence_number)
            return True
        return False

    sub = await subscribe(drop)
    sub.endpoint.slots["v"].attach(pub.tracks["camera"])
    await asyncio.sleep(5)
    assert len(dropped) > 5
    counters = sub.video.counters
    assert len(counters) > 100, len(counters)
    missing = (counters[-1] - counters[0] + 1) - len(counters)
    assert missing <= 3, f"{missing} frames lost although every loss was retransmittable"
    await _close(sub, pub)


async def test_capture_encoded_frames_hands_over_frames_without_decoding() -> None:
    pub_pc = RTCPeerConnection(rtc_configuration([]))
    pub_pc.addTransceiver(TestPatternTrack(320, 240, 30, "cap", 1), direction="sendonly")
    rec_pc = RTCPeerConnection(rtc_configuration([]))
    frames: list[tuple[str, int, bytes]] = []
    await pub_pc.setLocalDescription(await pub_pc.createOffer())
    await rec_pc.setRemoteDescription(pub_pc.localDescription)
    for t in rec_pc.getTransceivers():
        capture_encoded_frames(t.receiver, lambda codec, f: frames.append((codec.name, f.timestamp, f.data)))
    await rec_pc.setLocalDescription(await rec_pc.createAnswer())
    decoders_before = aiortc_adapter.decoders_created()
    await pub_pc.setRemoteDescription(rec_pc.localDescription)
    await asyncio.sleep(2.5)
    assert len(frames) > 40 and frames[0][0] == "VP8"
    assert frames[0][2][0] & 1 == 0  # the first frame handed over is a VP8 keyframe
    assert aiortc_adapter.decoders_created() == decoders_before
    timestamps = [ts for _, ts, _ in frames]
    assert timestamps == sorted(timestamps)
    await pub_pc.close()
    await rec_pc.close()


async def test_h264_preferred_slots_still_carry_a_vp8_classroom() -> None:
    """Codec preferences order the offer; the payload-type map still forwards any publisher's codec."""
    endpoint = SubscriberEndpoint([], lambda s: None, video_codecs=("H264", "VP8"))
    endpoint.add_slot("v", "video")
    offer = await endpoint.create_offer()
    video_line = next(line for line in offer.splitlines() if line.startswith("m=video"))
    first_pt = video_line.split()[3]
    assert f"a=rtpmap:{first_pt} H264/90000" in offer
    await endpoint.close()

    pub = await publish("pub-vp8", "VP8")
    sub = await subscribe()  # default preferences, VP8 first: the H264 case is covered above
    sub.endpoint.slots["v"].attach(pub.tracks["camera"])
    await asyncio.sleep(2.5)
    assert len(sub.video.counters) > 40
    await _close(sub, pub)
