"""Our publisher: Opus with in-band FEC negotiated and encoded, VP8 that does not restart on REMB churn."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtpPacket, pack_remb_fci
from peers import codec_preferences, spy_rtp

from classroom_client.encoders import PublisherEncoders, SteadyVp8Encoder, install_publisher_encoders
from classroom_client.opus import packet_has_lbrr
from classroom_client.sources import TestPatternTrack, ToneTrack
from sfu.media.aiortc_adapter import use_encoder, use_host_addresses
from sfu.media.endpoint import PublisherEndpoint, SubscriberEndpoint, rtc_configuration


@pytest.fixture
async def encoders() -> AsyncIterator[PublisherEncoders]:
    use_host_addresses(["127.0.0.1"])
    made = install_publisher_encoders()
    yield made
    use_encoder("video/vp8", None)
    use_encoder("audio/opus", None)
    use_host_addresses(None)


class VoiceLikeTrack(ToneTrack):
    """A buzzy vowel with a syllable rhythm: libopus codes it as speech (SILK/hybrid, where LBRR
    lives); a pure tone it classes as music and codes with CELT, with no FEC after ~0.6 s."""

    async def recv(self) -> Any:
        frame = await super().recv()
        t = (np.arange(frame.samples) + frame.pts) / self.sample_rate
        f0 = 140 + 20 * np.sin(2 * np.pi * 0.7 * t)
        syllables = (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2
        wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 15)) * syllables
        samples = (wave / 8 * 0.3 * 32767).clip(-32767, 32767).astype(np.int16)
        out = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        out.sample_rate, out.pts, out.time_base = frame.sample_rate, frame.pts, frame.time_base
        return out


def opus_fmtp(sdp: str) -> list[str]:
    pts = [line.split()[0].split(":")[1] for line in sdp.splitlines() if line.startswith("a=rtpmap:")
           and "opus/48000" in line.lower()]
    return [line for line in sdp.splitlines() for pt in pts if line.startswith(f"a=fmtp:{pt} ")]


async def test_opus_fec_is_negotiated_both_ways_and_the_packets_carry_it(encoders: PublisherEncoders) -> None:
    pc = RTCPeerConnection(rtc_configuration([]))
    pc.addTransceiver(VoiceLikeTrack(440), direction="sendonly")
    endpoint = PublisherEndpoint([], "pub-fec", lambda source, t: None, lambda s: None)
    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription.sdp
    answer = await endpoint.accept_offer(offer, {})
    subscriber_side = SubscriberEndpoint([], lambda s: None)
    subscriber_side.add_slot("a", "audio")
    server_offer = await subscriber_side.create_offer()
    assert any("useinbandfec=1" in f for f in opus_fmtp(offer)), opus_fmtp(offer)
    assert any("useinbandfec=1" in f for f in opus_fmtp(answer)), opus_fmtp(answer)
    assert any("useinbandfec=1" in f for f in opus_fmtp(server_offer))  # what receiving classrooms are offered
    await subscriber_side.close()
    packets: list[bytes] = []

    def seen(packet: RtpPacket) -> bool:
        if packet.payload:
            packets.append(packet.payload)
        return False

    spy_rtp(endpoint.pc.getTransceivers()[0].receiver, seen)
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    await asyncio.sleep(3)
    with_fec = sum(packet_has_lbrr(p) for p in packets)
    print(f"{len(packets)} Opus packets, {with_fec} with in-band FEC (LBRR), "
          f"mean {sum(map(len, packets)) / max(1, len(packets)):.0f} bytes")
    assert encoders.audio and len(packets) > 50
    assert with_fec > len(packets) // 2
    await endpoint.close()
    await pc.close()


class CountingVp8(Vp8Encoder):
    """aiortc's encoder as it is, counting rebuilds (the baseline)."""

    def __init__(self) -> None:
        super().__init__()
        self.restarts = 0

    def encode(self, frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        before = self.codec
        result = super().encode(frame, force_keyframe)
        self.restarts += before is not None and self.codec is not before
        return result


async def publish_under_remb(make: Any, rembs: list[tuple[float, int]]) -> Any:
    """A real aiortc publisher sending to a plain aiortc receiver; REMB values arrive as scheduled."""
    made: list[Any] = []
    use_encoder("video/vp8", lambda codec: made.append(make()) or made[-1])
    pub, sub = RTCPeerConnection(rtc_configuration([])), RTCPeerConnection(rtc_configuration([]))
    t = pub.addTransceiver(TestPatternTrack(320, 240, 30, "remb", 1), direction="sendonly")
    t.setCodecPreferences(codec_preferences("video", "VP8"))
    await pub.setLocalDescription(await pub.createOffer())
    await sub.setRemoteDescription(pub.localDescription)
    for tr in sub.getTransceivers():  # only our scheduled REMB values reach the publisher
        tr.receiver._RTCRtpReceiver__remote_bitrate_estimator = None
    await sub.setLocalDescription(await sub.createAnswer())
    await pub.setRemoteDescription(sub.localDescription)
    await asyncio.sleep(1.0)
    sender: Any = t.sender
    waited = 0.0
    for at, bitrate in rembs:
        await asyncio.sleep(max(0.0, at - waited))
        waited = max(waited, at)
        await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0,
                                                        fci=pack_remb_fci(bitrate, [sender._ssrc])))
    await asyncio.sleep(0.3)
    await pub.close()
    await sub.close()
    return made[0]


async def test_remb_churn_does_not_restart_our_vp8_encoder(encoders: PublisherEncoders) -> None:
    churn = [(0.1, 800_000)] + [(0.2 + i * 0.15, 800_000 + (1 if i % 2 else -1) * (40_000 + 20_000 * (i % 4)))
                                for i in range(20)]  # +-5..12 % around 800 kbps, every 150 ms
    drop = [(3.5, 400_000)]  # a real drop: applied at once
    early_rise = [(4.0, 800_000)]  # within 5 s of the last increase: held back
    rembs = churn + drop + early_rise
    stock = await publish_under_remb(CountingVp8, rembs)
    ours = await publish_under_remb(SteadyVp8Encoder, rembs)
    assert isinstance(ours, SteadyVp8Encoder)
    print(f"{len(rembs)} REMBs: aiortc's encoder restarted {stock.restarts} times, ours {ours.restarts} "
          f"(ignored {ours.remb_ignored}), ending at {ours.target_bitrate} bps")
    assert stock.restarts >= 5  # the problem is real
    assert ours.restarts == 2  # 500 -> 800 kbps once, then the real drop to 400 kbps
    assert ours.target_bitrate == 400_000
