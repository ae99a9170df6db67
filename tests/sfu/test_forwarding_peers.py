"""The forwarding plane with real aiortc peers over loopback, in one process.

publisher pc ──RTP──▶ PublisherEndpoint ─▶ PublishedTrack ─▶ Slot ─▶ SubscriberEndpoint ──RTP──▶ subscriber pc

These tests pin down every aiortc internal the adapter relies on: if an aiortc upgrade moves
one, frames stop arriving here (or a counter stays 0) and the test says which.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiortc.rtp import RtpPacket
from peers import close as _close
from peers import publish, spy_rtp, subscribe

from classroom_client.pattern import source_tag
from sfu.media import aiortc_adapter, codecs, forwarder
from sfu.media.aiortc_adapter import use_host_addresses
from sfu.media.endpoint import SubscriberEndpoint


@pytest.fixture(autouse=True)
async def loopback_ice() -> AsyncIterator[None]:
    use_host_addresses(["127.0.0.1"])
    yield
    use_host_addresses(None)


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
    # about one run in ten, one frame of ~120 fails the pattern checksum (cause not yet found;
    # counters stay in order and from the right source): tolerate one, never more
    assert rx.bad == 0, [i for i, t in enumerate(rx.tags) if t == -1]
    assert set(rx.tags) - {-1} == {source_tag("pub-a")}
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
    spy_rtp(sub.receiver("video"), seen.append)
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
    assert sub.video.bad == 0  # no corrupted picture at either switch
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
    assert missing == 0 and sub.video.bad == 0, f"{missing} frames lost although every loss was retransmittable"
    port = sub.endpoint.slots["v"].port
    assert port is not None  # each dropped packet counted once as the subscriber's loss before repair
    assert len(dropped) - 2 <= port.nacked <= len(dropped), (port.nacked, len(dropped))
    assert 0.01 < sub.endpoint.link.loss_before_repair < 0.1, sub.endpoint.link.to_json()  # 1 in 25
    await _close(sub, pub)


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


async def test_h264_through_a_vp8_first_slot_is_repaired_with_h264s_own_rtx() -> None:
    """A slot negotiates RTX per codec; a repair must carry the RTX payload type of its packet's codec.

    (aiortc's sender would label every repair with the RTX type of the first codec, VP8's: the
    subscriber then unwraps H264 as VP8 and the frame is lost although it was retransmitted.)
    """
    pub = await publish("pub-h264", "H264")
    dropped: set[int] = set()
    rtx_seen: list[int] = []
    media_pt: list[int] = []

    def drop(packet: RtpPacket) -> bool:
        if packet.ssrc != port.ssrc:  # RTX comes on the sender's RTX SSRC
            rtx_seen.append(packet.payload_type)
            return False
        media_pt.append(packet.payload_type)
        if packet.sequence_number % 25 == 0 and packet.sequence_number not in dropped:
            dropped.add(packet.sequence_number)
            return True
        return False

    sub = await subscribe(drop)
    slot = sub.endpoint.slots["v"]
    assert slot.port is not None
    port = slot.port
    first = next(c for c in port.codecs if not codecs.is_rtx(c))
    assert first.mimeType == "video/VP8"  # the slot's first codec is VP8, the publisher sends H264
    slot.attach(pub.tracks["camera"])
    await asyncio.sleep(5)
    assert len(dropped) > 5
    rtx_of = {c.parameters["apt"]: c.payloadType for c in port.codecs if codecs.is_rtx(c)}
    h264_pt = media_pt[-1]
    assert next(c for c in port.codecs if c.payloadType == h264_pt).mimeType == "video/H264"
    assert rtx_seen and set(rtx_seen) == {rtx_of[h264_pt]}, (rtx_seen[:5], rtx_of)
    assert port.retransmissions >= len(dropped) - 2
    rx = sub.video
    assert len(rx.counters) > 100, len(rx.counters)
    missing = (rx.counters[-1] - rx.counters[0] + 1) - len(rx.counters)
    assert missing <= 3, f"{missing} frames lost although every loss was retransmittable"
    assert rx.bad == 0, [i for i, t in enumerate(rx.tags) if t == -1]
    await _close(sub, pub)


async def test_a_codec_the_subscriber_lacks_is_dropped_without_per_packet_work(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """An H264 classroom to a VP8-only subscriber: dropped, warned about once, mapped once, not per packet."""
    calls = {"map": 0, "key": 0}
    real_map = forwarder.payload_type_map
    real_of = codecs.CodecKey.of.__func__  # type: ignore[attr-defined]

    def counting_map(*args: Any) -> dict[int, int]:
        calls["map"] += 1
        return real_map(*args)

    def counting_of(cls: type[codecs.CodecKey], codec: Any) -> codecs.CodecKey:
        calls["key"] += 1
        return real_of(cls, codec)  # type: ignore[no-any-return]

    monkeypatch.setattr(forwarder, "payload_type_map", counting_map)
    caplog.set_level(logging.WARNING, logger="sfu.media.forwarder")
    pub = await publish("pub-h264", "H264")
    sub = await subscribe(video_codec="VP8")
    slot = sub.endpoint.slots["v"]
    port = slot.port
    assert port is not None and {c.mimeType for c in port.codecs} <= {"video/VP8", "video/rtx"}
    t0 = time.monotonic()
    while not port.started and time.monotonic() - t0 < 10:
        await asyncio.sleep(0.05)
    slot.attach(pub.tracks["camera"])
    await asyncio.sleep(0.5)
    maps_before = calls["map"]
    dropped_before = slot.stats.dropped_no_codec
    await asyncio.sleep(2)
    assert slot.stats.dropped_no_codec - dropped_before > 30
    assert slot.stats.packets_out == 0
    assert calls["map"] - maps_before == 0, calls
    warnings = [r for r in caplog.records if "did not negotiate" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "H264" in warnings[0].getMessage()

    # a VP8 classroom's packets while the slot waits for a keyframe that never comes
    vp8 = await publish("pub-vp8", "VP8")
    await asyncio.sleep(2)  # its first keyframe is long gone
    track = vp8.tracks["camera"]
    monkeypatch.setattr(track, "request_keyframe", lambda: None)  # so the wait lasts
    monkeypatch.setattr(codecs.CodecKey, "of", classmethod(counting_of))
    slot.attach(track)
    await asyncio.sleep(2)
    assert slot.stats.dropped_waiting_keyframe > 30, slot.stats
    assert calls["key"] <= 10, calls  # codec identity is worked out per payload type, not per packet
    await _close(sub, pub, vp8)
