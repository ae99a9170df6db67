"""The terminal's jitter buffers: they give up on a lost packet in time instead of waiting for it.

aiortc's receiver feeds every packet (RTX unwrapped, `_data` already depayloaded) to
`buffer.add(packet) -> (pli_flag, frame | None)`; `sfu.media.aiortc_adapter.install_jitter_buffer`
puts these in its place. aiortc's own buffers wait for a missing packet until they overflow
(hundreds of video packets of frozen picture, ~320 ms of stalled audio), and aiortc NACKs a
missing packet only once.

- `VideoJitterBuffer` emits complete frames in order; it re-NACKs a still-missing packet every
  max(2 x RTT, 100 ms) (150 ms while the RTT is unknown) until `GIVE_UP_S` after the gap was
  seen, then drops what is incomplete, emits nothing until the next keyframe and asks for one
  (PLI, repeated while it waits), so no frame decoded on a broken reference is shown.
- `AudioJitterBuffer` plays packets out as they come, in order; a packet still missing
  `DEADLINE_S` after the one before it was played out is skipped and concealed: a `ConcealedFrame` goes to the decoder
  in its place (carrying the next packet, whose Opus in-band FEC may rebuild it).

Both count payload bytes (`bytes_received`) and expect `tick()` every 100-200 ms, since `add`
runs only when a packet arrives and a gap followed by silence must still resolve.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from aiortc.jitterbuffer import JitterFrame

Deliver = Callable[[JitterFrame, int], None]  # (frame, payload type)
Nack = Callable[[int, Sequence[int]], None]  # (media ssrc, sequence numbers)
Pli = Callable[[int], None]  # (media ssrc)


class ConcealedFrame(JitterFrame):
    """Stands for a lost audio packet: the decoder conceals it (FEC from `fec_data` when given)."""

    concealed = True

    def __init__(self, timestamp: int, samples: int, fec_data: bytes | None) -> None:
        super().__init__(b"", timestamp)
        self.samples = samples
        self.fec_data = fec_data


def _extend(seq: int, reference: int | None) -> int:
    """16-bit sequence number -> an integer that keeps counting across wraps (near `reference`)."""
    if reference is None:
        return seq
    delta = (seq - reference) & 0xFFFF
    if delta >= 0x8000:
        delta -= 0x10000
    return reference + delta


class _Buffer:
    """What both buffers share: sequence bookkeeping, delivery in order, byte counting."""

    def __init__(self, deliver: Deliver | None, clock: Callable[[], float]) -> None:
        self.deliver = deliver
        self.clock = clock
        self.bytes_received = 0
        self.packets: dict[int, Any] = {}  # extended seq -> RtpPacket
        self.next_seq: int | None = None  # the first sequence number not yet emitted or dropped
        self.highest: int | None = None
        self.ssrc: int | None = None
        self.payload_type: int | None = None
        self._ready: list[JitterFrame] = []

    def _accept(self, packet: Any) -> int | None:
        """Store the packet; its extended sequence number, or None if it is too late or a duplicate."""
        self.bytes_received += len(packet.payload)
        self.ssrc = packet.ssrc
        self.payload_type = packet.payload_type
        seq = _extend(packet.sequence_number, self.highest)
        if self.next_seq is not None and seq < self.next_seq:
            return None
        if seq in self.packets:
            return None
        self.packets[seq] = packet
        if self.highest is None or seq > self.highest:
            self.highest = seq
        if self.next_seq is None:
            self.next_seq = seq
        return seq

    def _emit(self, frame: JitterFrame) -> None:
        self._ready.append(frame)

    def _flush(self, pli: bool) -> tuple[bool, JitterFrame | None]:
        """aiortc's return value: with a sink every frame goes there, in order; else the first one."""
        ready, self._ready = self._ready, []
        if self.deliver is None or self.payload_type is None:
            self._ready = ready[1:]
            return pli, ready[0] if ready else None
        for frame in ready:
            self.deliver(frame, self.payload_type)
        return pli, None

    def _drop_before(self, seq: int) -> None:
        for s in [s for s in self.packets if s < seq]:
            del self.packets[s]
        self.next_seq = seq


class VideoJitterBuffer(_Buffer):
    """Complete frames in order, repeated NACKs, and a deadline after which it waits for a keyframe."""

    capacity = 512  # aiortc's video buffer size (read by nothing here, kept for the interface)
    GIVE_UP_S = 0.6
    NACK_EVERY_UNKNOWN_RTT_S = 0.15
    PLI_EVERY_S = 0.5
    MAX_HELD = 1024

    def __init__(self, codec: str | Callable[[int], str] = "vp8", deliver: Deliver | None = None,
                 nack: Nack | None = None, pli: Pli | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`codec`: "vp8" / "h264", or a function of the payload type giving it (known only later)."""
        super().__init__(deliver, clock)
        self._codec = codec
        self.nack = nack
        self.pli = pli
        self.rtt_s: float | None = None
        self.waiting_keyframe = True  # nothing decodes before the first keyframe
        self.gave_up = 0
        self.nacks_sent = 0
        self.frames_emitted = 0
        self.frames_dropped = 0
        self._missing: dict[int, tuple[float, float]] = {}  # seq -> (first seen missing, last NACK)
        self._last_pli = clock()  # the stream's first keyframe is on its way: no PLI for a while

    def add(self, packet: Any) -> tuple[bool, JitterFrame | None]:
        previous = self.highest
        seq = self._accept(packet)
        if seq is not None:
            self._missing.pop(seq, None)
            if previous is not None and seq > previous + 1:
                now = self.clock()
                for s in range(max(previous + 1, seq - 512), seq):
                    self._missing.setdefault(s, (now, now))  # aiortc's NackGenerator NACKs it right now
        return self._flush(self._advance())

    def tick(self) -> bool:
        """Re-NACK and give up on time (call every 100-200 ms); True if a keyframe was requested."""
        pli = self._advance()
        if self.deliver is not None:
            self._flush(False)
        return pli

    def request_keyframe(self) -> None:
        """Give up on everything held and wait for a keyframe (a stall the caller noticed)."""
        self._give_up()
        self._send_pli(force=True)

    # -- internals ---------------------------------------------------------------------------

    @property
    def codec(self) -> str:
        if isinstance(self._codec, str):
            return self._codec.lower()
        return self._codec(self.payload_type).lower() if self.payload_type is not None else ""

    def _nack_interval(self) -> float:
        """Ask again once a repair is overdue: one round trip and a margin for jitter (libwebrtc's
        NackRequester re-sends after one RTT too). Two round trips left a packet whose first repair
        was lost (about 6 % of repairs at 3 % loss each way) frozen ~600 ms, the give-up deadline."""
        if self.rtt_s is None:
            return self.NACK_EVERY_UNKNOWN_RTT_S
        return max(1.2 * self.rtt_s + 0.02, 0.06)

    def _advance(self) -> bool:
        """Emit what is complete, NACK what is due, give up on what is too old; True: send a PLI."""
        pli = False
        while self._emit_next():
            pass
        now = self.clock()
        if self.next_seq is not None:
            for s in [s for s in self._missing if s < self.next_seq]:
                del self._missing[s]
        if self._missing:
            oldest = min(first for first, _ in self._missing.values())
            if now - oldest > self.GIVE_UP_S or len(self.packets) > self.MAX_HELD:
                self._give_up()
                pli = self._send_pli(force=True)
                while self._emit_next():
                    pass
            else:
                due = [s for s, (_, last) in self._missing.items() if now - last >= self._nack_interval()]
                if due and self.nack is not None and self.ssrc is not None:
                    self.nack(self.ssrc, [s & 0xFFFF for s in sorted(due)])
                    self.nacks_sent += 1
                for s in due:
                    self._missing[s] = (self._missing[s][0], now)
        if self.waiting_keyframe and self.packets:
            pli = self._send_pli(force=False) or pli
        return pli

    def _send_pli(self, force: bool) -> bool:
        now = self.clock()
        if not force and now - self._last_pli < self.PLI_EVERY_S:
            return False
        self._last_pli = now
        if self.pli is not None and self.ssrc is not None:
            self.pli(self.ssrc)
            return False  # sent here already: aiortc need not send another
        return True

    def _frame_start(self, seq: int) -> bool:
        packet = self.packets.get(seq)
        if packet is None:
            return False
        previous = self.packets.get(seq - 1)
        if previous is not None:
            return bool(previous.marker) or previous.timestamp != packet.timestamp
        if self.codec == "vp8" and len(packet.payload) >= 1:
            first = packet.payload[0]
            return bool(first & 0x10) and (first & 0x0F) == 0  # S bit, partition 0
        if self.codec == "h264":  # a NAL unit that opens a keyframe starts this packet (AUD, SPS, PPS, IDR)
            data = packet._data
            return data[:4] == b"\x00\x00\x00\x01" and len(data) > 4 and data[4] & 0x1F in (5, 7, 8, 9)
        return False

    def _is_keyframe(self, data: bytes) -> bool:
        if self.codec == "vp8":
            return len(data) > 0 and data[0] & 1 == 0
        if self.codec == "h264":
            return _h264_has_idr(data)
        return True

    def _complete_frame(self, start: int) -> int | None:
        """The last sequence number of the complete frame starting at `start`, or None."""
        first = self.packets.get(start)
        if first is None:
            return None
        seq = start
        while True:
            packet = self.packets.get(seq)
            if packet is None or packet.timestamp != first.timestamp:
                return None
            if packet.marker:
                return seq
            seq += 1

    def _emit_next(self) -> bool:
        if self.next_seq is None:
            return False
        if self.waiting_keyframe:
            return self._resync()
        end = self._complete_frame(self.next_seq)
        if end is None:
            return False
        packets = [self.packets.pop(s) for s in range(self.next_seq, end + 1)]
        self.next_seq = end + 1
        self._emit(JitterFrame(b"".join(p._data for p in packets), packets[0].timestamp))
        self.frames_emitted += 1
        return True

    def _resync(self) -> bool:
        """Waiting for a keyframe: start at the first complete keyframe held, dropping what is before."""
        for start in sorted(self.packets):
            if not self._frame_start(start):
                continue
            end = self._complete_frame(start)
            if end is None:
                continue
            data = b"".join(self.packets[s]._data for s in range(start, end + 1))
            if self._is_keyframe(data):
                self._drop_before(start)
                self._missing = {s: v for s, v in self._missing.items() if s >= start}
                self.waiting_keyframe = False
                return True
        if self.highest is not None:  # keep a bounded window of what may still become a keyframe
            self._drop_before(max(self.next_seq or 0, self.highest - self.MAX_HELD))
        return False

    def _give_up(self) -> None:
        self.gave_up += 1
        self.frames_dropped += len({p.timestamp for p in self.packets.values()})
        self.waiting_keyframe = True
        self._missing.clear()


def _h264_has_idr(data: bytes) -> bool:
    """Whether annex-B H.264 data holds an IDR slice (NAL type 5)."""
    i = 0
    while True:
        i = data.find(b"\x00\x00\x01", i)
        if i < 0 or i + 3 >= len(data):
            return False
        if data[i + 3] & 0x1F == 5:
            return True
        i += 3


class AudioJitterBuffer(_Buffer):
    """In-order playout with a short deadline; a packet later than that is concealed."""

    capacity = 16
    DEADLINE_S = 0.06  # after the packet before it was played out
    MAX_CONCEAL = 10  # a longer hole (200 ms) is skipped, not concealed packet by packet
    RESET_GAP = 100  # sequence jump that means a new stream, not loss

    def __init__(self, deliver: Deliver | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(deliver, clock)
        self.concealed = 0
        self.late = 0
        self._last_emit_at: float | None = None
        self._last_timestamp: int | None = None
        self._samples = 960  # 20 ms at 48 kHz until the stream shows its packet duration

    def add(self, packet: Any) -> tuple[bool, JitterFrame | None]:
        before = self.next_seq
        seq = self._accept(packet)
        if seq is None:
            if before is not None:
                self.late += 1
        elif self.highest is not None and self.next_seq is not None and self.highest - self.next_seq > self.RESET_GAP:
            self._drop_before(self.highest)
        self._advance()
        return self._flush(False)

    def tick(self) -> bool:
        self._advance()
        if self.deliver is not None:
            self._flush(False)
        return False

    def _advance(self) -> None:
        while self.next_seq is not None and self.packets:
            packet = self.packets.get(self.next_seq)
            if packet is not None:
                self._play(self.packets.pop(self.next_seq))
                self.next_seq += 1
                continue
            # a hole with later packets held: wait for it until its deadline
            now = self.clock()
            due = (self._last_emit_at or now) + self.DEADLINE_S
            if now < due:
                return
            after = min(self.packets)
            missing = after - self.next_seq
            if missing <= self.MAX_CONCEAL:
                nxt = self.packets[after]
                for k in range(missing):
                    base = self._last_timestamp if self._last_timestamp is not None else (
                        nxt.timestamp - (missing + 1) * self._samples)
                    ts = base + (k + 1) * self._samples
                    fec = nxt._data if k == missing - 1 else None
                    self._emit(ConcealedFrame(ts & 0xFFFFFFFF, self._samples, fec))
                    self.concealed += 1
            self.next_seq = after

    def _play(self, packet: Any) -> None:
        if self._last_timestamp is not None:
            step = (packet.timestamp - self._last_timestamp) & 0xFFFFFFFF
            if 0 < step <= 5760:
                self._samples = step
        self._last_timestamp = packet.timestamp
        self._last_emit_at = self.clock()
        self._emit(JitterFrame(packet._data, packet.timestamp))
