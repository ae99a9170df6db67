"""Each hook of sfu/media/aiortc_adapter/ against the installed aiortc, with real peers over loopback.

An aiortc upgrade that moves one of the internals the adapter uses fails here, by name, instead of
as a frozen picture in a lesson.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aioice.ice
import aiortc
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc import rtcrtpreceiver as receiver_module
from aiortc.rtp import RtcpSrPacket, RtpPacket
from peers import Subscriber, close, publish, spy_rtp, subscribe, until

from classroom_client.sources import TestPatternTrack, ToneTrack
from sfu.media import aiortc_adapter, codecs, forwarder
from sfu.media.aiortc_adapter import (
    SenderPort,
    capture_encoded_frames,
    packets_received,
    restart_video_reassembly,
    use_host_addresses,
    wrap_ice_datagrams,
)
from sfu.media.endpoint import PublisherEndpoint, rtc_configuration
from sfu.media.forwarder import PublishedTrack


@pytest.fixture(autouse=True)
async def loopback_ice() -> AsyncIterator[None]:
    use_host_addresses(["127.0.0.1"])
    yield
    use_host_addresses(None)


def test_a_different_aiortc_release_is_refused_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    get_decoder = receiver_module.get_decoder
    monkeypatch.setattr(aiortc, "__version__", "1.17.0")
    spec = importlib.util.spec_from_file_location("aiortc_adapter_again", aiortc_adapter.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with pytest.raises(ImportError, match=r"relies on aiortc 1\.16\.0 internals, but aiortc 1\.17\.0 is installed"):
        spec.loader.exec_module(module)
    assert receiver_module.get_decoder is get_decoder  # refused before patching anything
    assert aiortc_adapter.AIORTC_VERSION == "1.16.0"


async def test_receiver_tap_sees_every_packet_with_rtx_unwrapped_and_creates_no_decoder() -> None:
    decoders_before = aiortc_adapter.decoders_created()
    pub = await publish("tap")
    track = pub.tracks["camera"]
    tap = track._tap
    assert tap is not None
    dropped: set[int] = set()
    rtx_in: list[RtpPacket] = []

    def lose(packet: RtpPacket) -> bool:  # between the network and the tap: the publisher repairs
        codec = tap.codecs.get(packet.payload_type)  # (known once the connection is up)
        if codec is not None and codecs.is_rtx(codec):
            rtx_in.append(packet)
            return False
        if packet.sequence_number % 10 == 0 and packet.sequence_number not in dropped:
            dropped.add(packet.sequence_number)
            return True
        return False

    spy_rtp(tap.receiver, lose)
    seen: list[tuple[int, int, int]] = []
    forward = tap._on_packet

    async def on_packet(packet: RtpPacket, codec: Any) -> None:
        assert codec.payloadType == packet.payload_type
        seen.append((packet.payload_type, packet.ssrc, packet.sequence_number))
        await forward(packet, codec)

    tap._on_packet = on_packet
    await asyncio.sleep(3)
    assert len(dropped) > 5 and rtx_in, "the publisher never retransmitted"
    media_pts = {pt for pt, c in tap.codecs.items() if not codecs.is_rtx(c)}
    assert {pt for pt, _, _ in seen} <= media_pts  # RTX never reaches the forwarder
    assert {ssrc for _, ssrc, _ in seen} == {tap.media_ssrc}
    delivered = {seq for _, _, seq in seen}
    repaired = {seq for seq in dropped if seq in delivered}
    assert len(repaired) >= len(dropped) - 2, (sorted(dropped), len(repaired))
    assert track.stats.packets_in == len(seen)
    # aiortc still handled each packet (statistics, NACKs), but decoded nothing
    assert packets_received(tap.receiver) >= len(seen) - len(dropped)
    assert aiortc_adapter.decoders_created() == decoders_before
    assert tap.receiver._RTCRtpReceiver__decoder_thread is None  # type: ignore[attr-defined]
    await pub.endpoint.close()
    await pub.pc.close()


async def test_sender_port_rewrites_each_packet_and_its_counters_are_the_sender_reports() -> None:
    pub = await publish("port")
    sub = await subscribe()
    slot = sub.endpoint.slots["v"]
    port = slot.port
    assert port is not None
    received: list[RtpPacket] = []
    spy_rtp(sub.receiver("video"), received.append)
    reports: list[tuple[RtcpSrPacket, int, int]] = []  # (SR, packets and octets received before it)
    receiver = sub.receiver("video")
    handle_rtcp = receiver._handle_rtcp_packet

    async def on_rtcp(packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket) and packet.ssrc == port.ssrc:
            reports.append((packet, len(received), sum(len(p.payload) for p in received)))
        await handle_rtcp(packet)

    receiver._handle_rtcp_packet = on_rtcp
    slot.attach(pub.tracks["camera"])
    await until(lambda: len(reports) >= 2 and len(received) > 100, 10, "packets and two sender reports")
    tap = pub.tracks["camera"]._tap
    assert tap is not None and tap.media_ssrc is not None
    vp8_pt = next(c.payloadType for c in port.codecs if c.mimeType == "video/VP8")
    assert {p.ssrc for p in received} == {port.ssrc} and port.ssrc != tap.media_ssrc
    assert {p.payload_type for p in received} == {vp8_pt}
    assert {p.extensions.mid for p in received} == {port.transceiver.mid}
    steps = {(b.sequence_number - a.sequence_number) % 65536 for a, b in itertools.pairwise(received)}
    assert steps == {1}, steps
    for sr, packets, octets in reports:
        info = sr.sender_info
        assert abs(info.packet_count - packets) <= 2, (info.packet_count, packets)
        assert abs(info.octet_count - octets) <= 2 * 1200, (info.octet_count, octets)
        assert info.rtp_timestamp in {p.timestamp for p in received}
    packets, octets, last_ts = port.sender_counters()
    assert packets == port.packets_sent and octets > 10_000
    assert last_ts == received[-1].timestamp or len(received) < packets

    # a late or reordered packet is counted, but must not move the SR's clock pair backwards
    slot.attach(None)
    await asyncio.sleep(0.2)
    ntp, rtp_ts = port.sender_report_clock()
    late = received[-5]
    await port.write(late, late.payload_type, late.sequence_number, late.timestamp)
    assert port.sender_report_clock() == (ntp, rtp_ts)
    assert port.sender_counters()[0] == packets + 1
    newest = received[-1]
    await port.write(newest, newest.payload_type, (newest.sequence_number + 1) % 65536, newest.timestamp + 3000)
    ntp2, rtp2 = port.sender_report_clock()
    assert rtp2 == newest.timestamp + 3000 and ntp2 > ntp
    await close(sub, pub)


async def test_wrap_ice_datagrams_sees_dtls_srtp_and_srtcp_both_ways_and_closes_cleanly() -> None:
    pc = RTCPeerConnection(rtc_configuration([]))
    pc.addTransceiver(ToneTrack(440), direction="sendonly")
    tracks: dict[str, PublishedTrack] = {}
    endpoint = PublisherEndpoint([], "hooked", lambda source, t: tracks.__setitem__(source, t), lambda s: None)
    await pc.setLocalDescription(await pc.createOffer())
    sent: list[int] = []  # first byte of each datagram: 20-63 DTLS, 128-191 SRTP/SRTCP
    received: list[int] = []
    dropping = [False]
    held: list[bytes] = []

    def on_send(data: bytes, forward: Callable[[bytes], None]) -> None:
        sent.append(data[0])
        if not dropping[0]:
            held.append(data)  # delivered a little later, from a loop callback, as a link model would
            asyncio.get_running_loop().call_later(0.01, lambda: forward(held.pop(0)))

    def on_receive(data: bytes, deliver: Callable[[bytes], None]) -> None:
        received.append(data[0])
        deliver(data)

    assert wrap_ice_datagrams(pc, on_send, on_receive) == 1
    assert wrap_ice_datagrams(pc, on_send, on_receive) == 0  # one ICE transport (max-bundle), wrapped once
    answer = await endpoint.accept_offer(pc.localDescription.sdp, {})
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    await until(lambda: "mic" in tracks and tracks["mic"]._tap is not None, 10, "the published mic")
    tap = tracks["mic"]._tap
    assert tap is not None
    audio: list[int] = []
    spy_rtp(tap.receiver, lambda p: audio.append(p.sequence_number))
    await until(lambda: len(audio) > 20 and any(128 <= b < 192 for b in received), 10, "audio and RTCP back")
    assert any(20 <= b < 64 for b in sent) and any(20 <= b < 64 for b in received)  # the DTLS handshake
    assert sum(128 <= b < 192 for b in sent) >= len(audio)  # SRTP (and SRTCP) out through the hook

    dropping[0] = True  # the hook decides: nothing forwarded, nothing arrives
    await asyncio.sleep(0.1)
    count = len(audio)
    await asyncio.sleep(0.5)
    assert len(audio) == count
    dropping[0] = False
    await until(lambda: len(audio) > count + 10, 5, "audio again")

    # the far end closes: its DTLS close reaches aiortc through the pump, which then ends cleanly
    await endpoint.close()
    await until(lambda: pc.connectionState == "closed", 5, "the connection closed by the far end")
    t0 = time.monotonic()
    await pc.close()
    assert time.monotonic() - t0 < 2
    await asyncio.sleep(0)
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "twinclass-ice-datagram-pump"]


async def _streaming(codec: str = "VP8") -> tuple[Any, Subscriber, PublishedTrack]:
    pub = await publish("pli", codec)
    sub = await subscribe()
    track = pub.tracks["camera"]
    sub.endpoint.slots["v"].attach(track)
    await until(lambda: len(sub.video.counters) > 30, 10, "frames")
    return pub, sub, track


def _count_publisher_keyframe_requests(pub: Any) -> list[float]:
    sender = next(t.sender for t in pub.pc.getTransceivers() if t.kind == "video")
    times: list[float] = []
    original = sender._send_keyframe

    def send_keyframe() -> None:
        times.append(time.monotonic())
        original()

    sender._send_keyframe = send_keyframe
    return times


async def test_a_subscribers_pli_fires_the_keyframe_hook_and_reaches_the_publisher() -> None:
    pub, sub, track = await _streaming()
    port = sub.endpoint.slots["v"].port
    assert port is not None
    hook_calls: list[float] = []
    hook = port.sender._send_keyframe

    def counting_hook() -> None:
        hook_calls.append(time.monotonic())
        hook()

    port.sender._send_keyframe = counting_hook  # type: ignore[method-assign]
    upstream = _count_publisher_keyframe_requests(pub)
    keyframes: list[float] = []
    spy_rtp(sub.receiver("video"),
            lambda p: keyframes.append(time.monotonic()) if codecs.vp8_is_keyframe_start(p.payload) else None)
    await asyncio.sleep(forwarder.KEYFRAME_REQUEST_INTERVAL_S + 0.1)
    sent_before = track.stats.keyframe_requests_sent
    t0 = time.monotonic()
    await sub.receiver("video")._send_rtcp_pli(port.ssrc)
    await until(lambda: upstream and [k for k in keyframes if k > t0], 3, "a keyframe after the PLI")
    assert len(hook_calls) == 1
    assert track.stats.keyframe_requests_sent == sent_before + 1
    await close(sub, pub)


async def test_keyframe_requests_upstream_are_rate_limited_per_publisher() -> None:
    pub, sub, track = await _streaming()
    port = sub.endpoint.slots["v"].port
    assert port is not None
    upstream = _count_publisher_keyframe_requests(pub)
    await asyncio.sleep(forwarder.KEYFRAME_REQUEST_INTERVAL_S + 0.1)
    sent_before = track.stats.keyframe_requests_sent
    t0 = time.monotonic()
    for _ in range(20):  # a subscriber asking every 50 ms for a second
        await sub.receiver("video")._send_rtcp_pli(port.ssrc)
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    elapsed = time.monotonic() - t0
    sent = track.stats.keyframe_requests_sent - sent_before
    limit = int(elapsed / forwarder.KEYFRAME_REQUEST_INTERVAL_S) + 1
    assert 2 <= sent <= limit, (sent, limit)  # the first at once, the rest coalesced, none forgotten
    assert 2 <= len(upstream) <= limit + 1, upstream  # (+1: aiortc's receiver may ask on its own)
    gaps = [b - a for a, b in itertools.pairwise(upstream)]
    assert sum(1 for g in gaps if g < forwarder.KEYFRAME_REQUEST_INTERVAL_S * 0.9) <= 1, gaps
    await close(sub, pub)


async def test_restart_video_reassembly_unfreezes_a_stuck_picture_and_asks_for_a_keyframe() -> None:
    pub = await publish("stuck")
    lost: set[int] = set()
    losing = [False]

    def lose_for_good(packet: RtpPacket) -> bool:
        """While `losing`, one packet is lost with every repair of it (RTX and plain resends)."""
        if packet.ssrc != port.ssrc:
            return losing[0] or bool(lost)  # every RTX while the loss is being made permanent
        if losing[0] and not lost:
            lost.add(packet.sequence_number)
        return packet.sequence_number in lost

    sub = await subscribe(lose_for_good)
    slot = sub.endpoint.slots["v"]
    assert slot.port is not None
    port = slot.port
    track = pub.tracks["camera"]
    slot.attach(track)
    await until(lambda: len(sub.video.counters) > 30, 10, "frames")
    losing[0] = True
    await asyncio.sleep(1.0)
    losing[0] = False
    frames = len(sub.video.counters)
    await asyncio.sleep(1.0)
    stuck_frames = len(sub.video.counters) - frames
    assert stuck_frames < 5, f"aiortc's jitter buffer did not freeze ({stuck_frames} frames): nothing to unstick"
    receiver = sub.receiver("video")
    buffer = receiver._RTCRtpReceiver__jitter_buffer
    sent_before = track.stats.keyframe_requests_sent
    t0 = time.monotonic()
    restart_video_reassembly(receiver)
    assert receiver._RTCRtpReceiver__jitter_buffer is not buffer
    frames = len(sub.video.counters)
    await until(lambda: len(sub.video.counters) > frames + 15, 3, "frames again after the restart")
    assert time.monotonic() - t0 < 2
    assert track.stats.keyframe_requests_sent > sent_before  # its PLI went all the way upstream
    await close(sub, pub)


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


async def test_use_host_addresses_decides_which_host_candidates_ice_gathers() -> None:
    use_host_addresses(["127.0.0.1", "::1"])
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
    assert aioice.ice.get_host_addresses(use_ipv4=False, use_ipv6=True) == ["::1"]
    use_host_addresses(["127.0.0.1"])
    pc = RTCPeerConnection(rtc_configuration([]))
    pc.addTransceiver("audio", direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    candidates = [line for line in pc.localDescription.sdp.splitlines() if line.startswith("a=candidate:")]
    assert candidates and all(line.split()[4] == "127.0.0.1" for line in candidates), candidates
    await pc.close()
    use_host_addresses(None)
    assert aioice.ice.get_host_addresses is aiortc_adapter._original_get_host_addresses
    # aioice's own choice never includes loopback, which is why the server and tests set it
    assert "127.0.0.1" not in aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False)



async def test_repairs_are_throttled_and_keep_nothing_per_packet(monkeypatch: pytest.MonkeyPatch) -> None:
    """A packet is resent at most 3 times, not twice within 0.8 RTT, within 30 % of what was sent;
    what the sender sent is derived from its octet count (a long lesson keeps no list per packet)."""
    from sfu.media.aiortc_adapter import send as send_module

    clock = [100.0]
    monkeypatch.setattr(send_module.time, "monotonic", lambda: clock[0])
    pc = RTCPeerConnection()
    port = SenderPort(pc.addTransceiver("video", direction="sendonly"), lambda: None, lambda: None)
    assert port._repair_allowed(7, 500)
    assert not port._repair_allowed(7, 500)  # again within 0.8 RTT (RTT unknown: 100 ms)
    clock[0] += 0.2
    assert port._repair_allowed(7, 500)
    clock[0] += 0.2
    assert port._repair_allowed(7, 500)
    clock[0] += 0.2
    assert not port._repair_allowed(7, 500)  # the fourth time
    assert not port._repair_allowed(8, 2000)  # 3,000 bytes a second when nothing was sent
    clock[0] += 1.1
    assert port._repair_allowed(8, 2000)  # the window moved on
    assert len(port._octet_marks) <= port._octet_marks.maxlen  # type: ignore[operator]
    await pc.close()
