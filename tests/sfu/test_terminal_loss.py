"""The terminal's receive path under losses NACK cannot (or can) repair, with real aiortc peers.

publisher pc ─▶ server endpoints (in process) ─▶ subscriber pc with the terminal's jitter buffers
and Opus decoder; packets are dropped on the subscriber's side, before aiortc sees them.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import av
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.codecs.vpx import vp8_depayload
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket
from peers import publish, spy_rtp

from classroom_client.encoders import FecOpusEncoder, SteadyVp8Encoder
from classroom_client.jitter import AudioJitterBuffer, VideoJitterBuffer
from classroom_client.opus import CONCEALED, OpusDecoder
from classroom_client.pattern import read_pattern
from classroom_client.receiving import Receiving, receive_with_our_buffers
from classroom_client.stats import RemoteStats
from sfu.media.aiortc_adapter import use_decoder, use_encoder, use_host_addresses
from sfu.media.endpoint import SubscriberEndpoint, rtc_configuration

DECODERS: list[OpusDecoder] = []


SOURCE_UNREADABLE: list[int] = []  # frames the publisher's own encoder made unreadable


class SourceCheckedVp8(SteadyVp8Encoder):
    """Our publisher's VP8 encoder at a fixed target, decoding its own output: a frame that is
    unreadable right at the source would be the encoder's fault (aiortc's static-thresh 1 made
    such frames; see sfu.media.vp8), not the receive path's. With ours there are none."""

    def __init__(self) -> None:
        super().__init__()
        self._check = av.CodecContext.create("libvpx", "r")

    def encode(self, frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        payloads, timestamp = super().encode(frame, force_keyframe)
        for decoded in self._check.decode(av.Packet(b"".join(vp8_depayload(p) for p in payloads))):
            if read_pattern(decoded.to_ndarray(format="gray")) is None:
                SOURCE_UNREADABLE.append(timestamp)
        return payloads, timestamp

    @property
    def target_bitrate(self) -> int:
        return 500_000

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:  # REMBs are ignored here
        return

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        pass


def opus_decoder(codec: Any) -> OpusDecoder:
    DECODERS.append(OpusDecoder())
    return DECODERS[-1]


@pytest.fixture(autouse=True)
async def loopback_ice() -> AsyncIterator[None]:
    use_host_addresses(["127.0.0.1"])
    use_decoder("audio/opus", opus_decoder)  # as the terminal does
    use_encoder("video/vp8", lambda codec: SourceCheckedVp8())
    use_encoder("audio/opus", lambda codec: FecOpusEncoder())  # our publisher's Opus, with in-band FEC
    DECODERS.clear()
    SOURCE_UNREADABLE.clear()
    yield
    use_encoder("video/vp8", None)
    use_encoder("audio/opus", None)
    use_decoder("audio/opus", None)
    use_host_addresses(None)


@dataclass
class Seen:
    stats: RemoteStats = field(default_factory=RemoteStats)
    unreadable: int = 0
    video_times: list[float] = field(default_factory=list)


async def consume(track: MediaStreamTrack, seen: Seen) -> None:
    try:
        while True:
            frame = await track.recv()
            if isinstance(frame, av.VideoFrame):
                info = read_pattern(frame.to_ndarray(format="gray"))
                seen.unreadable += info is None
                seen.video_times.append(time.monotonic())
                seen.stats.on_video_frame(frame.width, frame.height, info)
            elif isinstance(frame, av.AudioFrame):
                seen.stats.on_audio_frame(frame.to_ndarray().reshape(-1), frame.sample_rate,
                                          concealed=frame.opaque == CONCEALED, pts=frame.pts, duration=frame.samples)
    except MediaStreamError:
        pass


Drop = Callable[[RtpPacket, Any], bool]  # (packet as received, receiver) -> drop it


@dataclass
class Terminal:
    pc: RTCPeerConnection
    endpoint: SubscriberEndpoint
    seen: Seen
    receiving: dict[str, Receiving]
    tasks: list[asyncio.Task[None]]

    def buffer(self, kind: str) -> Any:
        return self.receiving[kind].buffer


async def terminal(drop_video: Drop | None = None, drop_audio: Drop | None = None) -> Terminal:
    endpoint = SubscriberEndpoint([], lambda s: None)
    endpoint.add_slot("v", "video")
    endpoint.add_slot("a", "audio")
    pc = RTCPeerConnection(rtc_configuration([]))
    seen = Seen()
    receiving: dict[str, Receiving] = {}
    tasks: list[asyncio.Task[None]] = []

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        transceiver = next(t for t in pc.getTransceivers() if t.receiver.track is track)
        receiving[track.kind] = receive_with_our_buffers(transceiver.receiver, transceiver.mid or "", track.kind)
        tasks.append(asyncio.ensure_future(consume(track, seen)))

    await pc.setRemoteDescription(RTCSessionDescription(await endpoint.create_offer(), "offer"))
    for t in pc.getTransceivers():
        drop = drop_video if t.kind == "video" else drop_audio
        if drop is not None:
            spy_rtp(t.receiver, lambda p, d=drop, r=t.receiver: d(p, r))  # type: ignore[misc]
    await pc.setLocalDescription(await pc.createAnswer())
    await endpoint.accept_answer(pc.localDescription.sdp)

    async def tick() -> None:  # what the terminal's _tick_receiving does for the buffers
        while True:
            await asyncio.sleep(0.15)
            for r in receiving.values():
                r.buffer.tick()

    tasks.append(asyncio.ensure_future(tick()))
    return Terminal(pc, endpoint, seen, receiving, tasks)


def original_seq(packet: RtpPacket, receiver: Any) -> int:
    """The media sequence number a packet carries (an RTX packet: the one it repairs)."""
    codecs = receiver._RTCRtpReceiver__codecs  # test-only peek, as tests/sfu/peers.py does
    codec = codecs.get(packet.payload_type)
    if codec is not None and codec.name.lower() == "rtx" and len(packet.payload) >= 2:
        return int.from_bytes(packet.payload[:2], "big")
    return packet.sequence_number


class VideoDropper:
    """Drops chosen video packets, counted from the first one seen; with `repairs`, also every RTX of them."""

    def __init__(self, offsets: list[int], drop_repairs: bool) -> None:
        self.offsets = offsets
        self.drop_repairs = drop_repairs
        self.base: int | None = None
        self.dropped: list[int] = []
        self.repairs_seen = 0

    def __call__(self, packet: RtpPacket, receiver: Any) -> bool:
        seq = original_seq(packet, receiver)
        is_repair = seq != packet.sequence_number or packet.payload_type != self._media_pt(receiver)
        if self.base is None:
            if is_repair:
                return False
            self.base = seq
        targets = {(self.base + o) & 0xFFFF for o in self.offsets}
        if seq not in targets:
            return False
        if is_repair:
            self.repairs_seen += 1
            return self.drop_repairs
        self.dropped.append(seq)
        return True

    @staticmethod
    def _media_pt(receiver: Any) -> int:
        codecs = receiver._RTCRtpReceiver__codecs
        return next(pt for pt, c in codecs.items() if c.name.lower() != "rtx")


async def run(pub_name: str, video: VideoDropper, drop_audio: Drop | None, seconds: float) -> Terminal:
    pub = await publish(pub_name, our_encoders=False)  # the fixture's source-checked encoders
    term = await terminal(video, drop_audio)
    term.endpoint.slots["v"].attach(pub.tracks["camera"])
    term.endpoint.slots["a"].attach(pub.tracks["mic"])
    await asyncio.sleep(seconds)
    for task in term.tasks:
        task.cancel()
    await term.endpoint.close()
    await term.pc.close()
    await pub.endpoint.close()
    await pub.pc.close()
    return term


async def test_unrepairable_video_loss_resumes_at_a_keyframe_and_lost_audio_is_concealed() -> None:
    video = VideoDropper([80, 180], drop_repairs=True)  # ~1-2 packets a frame: about 3 s and 6 s in
    audio_seen = [0]

    def drop_audio(packet: RtpPacket, receiver: Any) -> bool:
        audio_seen[0] += 1
        return audio_seen[0] > 50 and audio_seen[0] % 25 == 0  # one packet in 25, after the first second

    term = await run("pub-loss", video, drop_audio, 9.0)
    seen, vbuf, abuf = term.seen, term.buffer("video"), term.buffer("audio")
    assert isinstance(vbuf, VideoJitterBuffer) and isinstance(abuf, AudioJitterBuffer)
    stats = seen.stats.to_json()
    gaps = sorted((round(b - a, 3) for a, b in itertools.pairwise(seen.video_times)),
                  reverse=True)[:4]
    print(f"video: dropped {video.dropped}, repairs dropped {video.repairs_seen}, gave up {vbuf.gave_up}, "
          f"nacks {vbuf.nacks_sent}, frames {len(seen.video_times)}, unreadable {seen.unreadable} "
          f"(at the source {len(SOURCE_UNREADABLE)}), "
          f"longest gaps {gaps}; audio: concealed {stats['audio_concealed']} "
          f"(recovered by FEC {sum(d.recovered_by_fec for d in DECODERS)}), "
          f"gaps {stats['audio_gaps']} max {stats['audio_max_gap_ms']} ms, "
          f"packets {stats['audio_packets']}")
    assert len(video.dropped) == 2, "the loss plan did not run"
    assert video.repairs_seen >= 2, "NACKs were not repeated (or not answered)"
    assert vbuf.gave_up == 2
    assert SOURCE_UNREADABLE == [] and seen.unreadable == 0  # no frame decoded on a broken reference was shown
    assert gaps[0] < 1.0, f"picture froze for {gaps[0]:.2f}s"
    assert stats["frames_verified"] > 150
    assert stats["audio_concealed"] >= 5 and abuf.concealed == stats["audio_concealed"]
    assert stats["audio_gaps"] == 0, stats["audio_max_gap_ms"]
    assert sum(d.concealed for d in DECODERS) == stats["audio_concealed"]


async def test_a_loss_repaired_by_retransmission_needs_no_keyframe_and_does_not_freeze() -> None:
    video = VideoDropper([60, 140], drop_repairs=False)
    term = await run("pub-repair", video, None, 6.0)
    seen, vbuf = term.seen, term.buffer("video")
    gaps = sorted((round(b - a, 3) for a, b in itertools.pairwise(seen.video_times)),
                  reverse=True)[:3]
    print(f"dropped {video.dropped}, repairs {video.repairs_seen}, gave up {vbuf.gave_up}, "
          f"frames {len(seen.video_times)}, unreadable {seen.unreadable} (at the source {len(SOURCE_UNREADABLE)}), "
          f"longest gaps {gaps}")
    assert len(video.dropped) == 2 and video.repairs_seen >= 2
    assert vbuf.gave_up == 0 and SOURCE_UNREADABLE == [] and seen.unreadable == 0
    assert seen.stats.freezes == 0 and gaps[0] < 0.5
