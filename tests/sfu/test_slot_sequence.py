"""A slot forwards a source's packets for as long as the lesson lasts: across the 16-bit sequence
wrap and far past the switch point (a fixed switch point made the slot drop every packet from 2^15
packets on: the master's picture stopped for every classroom minutes into a lesson), while a
packet from before a switch is still held back and a repair arriving late is not."""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from sfu.media.forwarder import PublishedTrack, Slot

OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)


class Upstream:
    codecs: ClassVar[dict[int, RTCRtpCodecParameters]] = {111: OPUS}
    media_ssrc = 1234

    def request_keyframe(self) -> None:
        pass


class Port:
    """The subscriber side of a slot: what it was sent, as (seq, ts)."""

    started = True
    codecs: ClassVar[list[RTCRtpCodecParameters]] = [OPUS]

    def __init__(self) -> None:
        self.sent: list[tuple[int, int]] = []

    async def write(self, packet: RtpPacket, pt: int, seq: int, ts: int) -> None:
        self.sent.append((seq, ts))


def packet(seq: int, ts: int) -> RtpPacket:
    return RtpPacket(payload_type=111, sequence_number=seq % 65536, timestamp=ts % 2**32, ssrc=1234,
                     payload=b"\x00" * 20)


async def test_a_source_is_forwarded_past_2_to_the_15_packets_and_across_the_wrap() -> None:
    port = Port()
    slot = Slot("audio", lambda _slot: port)  # type: ignore[arg-type, return-value]
    track = PublishedTrack("audio", "master/mic", Upstream())  # type: ignore[arg-type]
    slot.attach(track)
    start = 60000  # wraps after 5536 packets
    count = 140_000  # two wraps, ~47 min of 20-ms audio
    for i in range(count):
        await slot.forward(track, packet(start + i, 960 * i), OPUS)
    assert len(port.sent) == count
    seqs = [s for s, _ in port.sent]
    assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs))  # continuous output


async def test_late_packets_are_forwarded_but_not_those_from_before_the_switch() -> None:
    port = Port()
    slot = Slot("audio", lambda _slot: port)  # type: ignore[arg-type, return-value]
    first = PublishedTrack("audio", "rural-1/mic", Upstream())  # type: ignore[arg-type]
    second = PublishedTrack("audio", "rural-2/mic", Upstream())  # type: ignore[arg-type]
    slot.attach(first)
    for i in range(10):
        await slot.forward(first, packet(100 + i, 960 * i), OPUS)
    slot.attach(second)  # the floor moves: rural-2's numbers continue the subscriber's
    await slot.forward(second, packet(5000, 0), OPUS)
    await slot.forward(second, packet(4999, 0), OPUS)  # from before the switch: held back
    assert len(port.sent) == 11
    for i in range(1, 40_000):
        if i % 1000 != 0:
            await slot.forward(second, packet(5000 + i, 960 * i), OPUS)
        if i % 1000 == 50 and i > 1000:  # a repair (RTX) of the one skipped, 50 packets late: forwarded
            late = i - 50
            await slot.forward(second, packet(5000 + late, 960 * late), OPUS)
    assert len(port.sent) == 11 + 39_999
    sent: dict[Any, int] = {}
    for seq, _ in port.sent:
        sent[seq] = sent.get(seq, 0) + 1
    assert max(sent.values()) == 1  # no output number used twice
