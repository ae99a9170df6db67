"""The terminal's jitter buffers, packet by packet on a fake clock (no network)."""

from __future__ import annotations

import itertools
from typing import Any

from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import RtpPacket

from classroom_client.jitter import AudioJitterBuffer, ConcealedFrame, VideoJitterBuffer


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def vp8(seq: int, ts: int, *, key: bool, first: bool, marker: bool) -> RtpPacket:
    descriptor = bytes([0x10 if first else 0x00])
    data = bytes([0x00 if key else 0x01]) if first else b"\xaa"
    p = RtpPacket(payload_type=97, marker=int(marker), sequence_number=seq & 0xFFFF, timestamp=ts, ssrc=1234,
                  payload=descriptor + data)
    p._data = data  # type: ignore[attr-defined]
    return p


def frame_packets(seq: int, ts: int, n: int, key: bool) -> list[RtpPacket]:
    return [vp8(seq + i, ts, key=key, first=i == 0, marker=i == n - 1) for i in range(n)]


class Video:
    def __init__(self) -> None:
        self.clock = Clock()
        self.frames: list[JitterFrame] = []
        self.nacks: list[list[int]] = []
        self.plis = 0
        self.buffer = VideoJitterBuffer("vp8", deliver=lambda f, pt: self.frames.append(f),
                                        nack=lambda ssrc, seqs: self.nacks.append(list(seqs)),
                                        pli=lambda ssrc: self._pli(), clock=self.clock)

    def _pli(self) -> None:
        self.plis += 1

    def feed(self, packets: list[RtpPacket], skip: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        for p in packets:
            if p.sequence_number not in skip:
                assert self.buffer.add(p) == (False, None)
            self.clock.t += 0.005


def test_video_frames_come_out_whole_and_in_order_across_a_sequence_wrap() -> None:
    v = Video()
    seq = 65530
    for i in range(5):
        v.feed(frame_packets(seq, i * 3000, 3, key=i == 0))
        seq += 3
    assert [f.timestamp for f in v.frames] == [0, 3000, 6000, 9000, 12000]
    assert v.frames[1].data == b"\x01\xaa\xaa"
    assert v.plis == 0 and not v.nacks


def test_video_renacks_a_missing_packet_and_a_late_repair_is_used() -> None:
    v = Video()
    v.feed(frame_packets(0, 0, 3, key=True))
    lost = frame_packets(3, 3000, 3, key=False)
    v.feed(lost, skip={4})
    v.feed(frame_packets(6, 6000, 3, key=False))
    assert len(v.frames) == 1
    for _ in range(3):
        v.clock.t += 0.16
        v.buffer.tick()
    assert v.nacks and all(n == [4] for n in v.nacks)
    v.buffer.add(lost[1])  # the retransmission
    assert [f.timestamp for f in v.frames] == [0, 3000, 6000]
    assert v.plis == 0 and v.buffer.gave_up == 0


def test_video_asks_again_one_round_trip_after_a_repair_that_did_not_come() -> None:
    """150 ms RTT: a packet whose first repair was lost is asked for again within ~0.2 s, and
    twice more (after aiortc's own first NACK) before the 0.6 s deadline: one lost repair costs
    one round trip, not a freeze."""
    v = Video()
    v.buffer.rtt_s = 0.15
    v.feed(frame_packets(0, 0, 3, key=True))
    v.feed(frame_packets(3, 3000, 3, key=False), skip={4})
    v.feed(frame_packets(6, 6000, 3, key=False))
    first_missing = v.clock.t - 0.02
    asked_at = []
    while v.clock.t - first_missing < 0.5:
        v.clock.t += 0.05
        before = len(v.nacks)
        v.buffer.tick()
        if len(v.nacks) > before:
            asked_at.append(v.clock.t - first_missing)
    assert asked_at and asked_at[0] <= 0.25, asked_at
    assert len(asked_at) >= 2 and all(b - a >= 0.15 for a, b in itertools.pairwise(asked_at)), asked_at
    assert v.buffer.gave_up == 0


def test_video_gives_up_after_the_deadline_and_resumes_at_a_keyframe() -> None:
    v = Video()
    v.feed(frame_packets(0, 0, 3, key=True))
    v.feed(frame_packets(3, 3000, 3, key=False), skip={4})  # never repaired
    v.feed(frame_packets(6, 6000, 3, key=False))
    v.clock.t += 0.7
    v.buffer.tick()  # silence after the gap: the timer resolves it
    assert v.buffer.gave_up == 1 and v.plis == 1
    v.feed(frame_packets(9, 9000, 3, key=False))  # a delta frame on a broken reference: not shown
    v.feed(frame_packets(12, 12000, 3, key=True))
    v.feed(frame_packets(15, 15000, 3, key=False))
    assert [f.timestamp for f in v.frames] == [0, 12000, 15000]


def opus(seq: int, data: bytes = b"\x01") -> RtpPacket:
    p = RtpPacket(payload_type=96, sequence_number=seq, timestamp=seq * 960, ssrc=99, payload=data)
    p._data = data  # type: ignore[attr-defined]
    return p


def test_audio_conceals_a_lost_packet_with_the_next_one_for_fec_within_the_deadline() -> None:
    clock = Clock()
    out: list[Any] = []
    buf = AudioJitterBuffer(deliver=lambda f, pt: out.append(f), clock=clock)
    for seq in range(10):
        if seq != 5:
            buf.add(opus(seq, bytes([seq])))
        clock.t += 0.02
        buf.tick()
    kinds = [(type(f) is ConcealedFrame, f.timestamp) for f in out]
    assert kinds == [(False, i * 960) if i != 5 else (True, 5 * 960) for i in range(len(kinds))]
    assert len(out) >= 8  # 0..4, the concealed 5 and 6.. once 5's deadline (80 ms after 4) passed
    concealed = out[5]
    assert isinstance(concealed, ConcealedFrame) and concealed.fec_data == bytes([6])
    assert buf.concealed == 1


def test_audio_uses_a_packet_that_arrives_before_its_deadline() -> None:
    clock = Clock()
    out: list[Any] = []
    buf = AudioJitterBuffer(deliver=lambda f, pt: out.append(f), clock=clock)
    for seq in (0, 1, 3, 2, 4):
        buf.add(opus(seq))
        clock.t += 0.02
    assert [f.timestamp // 960 for f in out] == [0, 1, 2, 3, 4] and buf.concealed == 0
