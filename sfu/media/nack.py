"""Loss repair on a publisher's uplink: which packets to ask for again, and when to give up.

aiortc's receiver NACKs a missing packet once, when the gap first shows; if that request or
its retransmission is lost too (a few % loss makes that common), the packet stays missing and
every subscriber's picture waits for it. The server asks again every `retry_s` (twice the
classroom's round trip, between RETRY_MIN_S and RETRY_MAX_S: `follow_rtt`) until
`give_up_s` after the gap appeared; then the gap is unrepairable and the track asks the
publisher for a keyframe instead (the caller does that).
"""

from __future__ import annotations

from dataclasses import dataclass

_SEQ_MOD = 1 << 16


@dataclass
class _Missing:
    first_seen: float
    last_asked: float
    asked: int = 1


RETRY_MIN_S = 0.05
RETRY_MAX_S = 0.2  # also the interval while the round trip is unknown


class NackTracker:
    """The missing sequence numbers of one incoming stream."""

    def __init__(self, retry_s: float = RETRY_MAX_S, give_up_s: float = 1.0, max_missing: int = 500) -> None:
        self.retry_s = retry_s
        self.give_up_s = give_up_s
        self.max_missing = max_missing
        self.missing: dict[int, _Missing] = {}
        self.max_seq: int | None = None
        self.requested = 0  # NACKed sequence numbers, retries included
        self.repaired = 0
        self.given_up = 0

    def follow_rtt(self, rtt_s: float) -> None:
        """Ask again after twice the round trip (a request or its repair lost), within the bounds.
        A fixed 200 ms made a lost repair on a short link wait 200 ms for each retry: a subscriber,
        which gives up on a gap after 600 ms, then froze until a keyframe came."""
        self.retry_s = min(RETRY_MAX_S, max(RETRY_MIN_S, 2 * rtt_s))

    def on_packet(self, seq: int, now: float) -> list[int]:
        """A packet arrived (first copy or repair); returns sequence numbers to NACK right away."""
        if self.max_seq is None:
            self.max_seq = seq
            return []
        delta = (seq - self.max_seq) % _SEQ_MOD
        if delta == 0:
            return []
        if delta >= 0x8000:  # older than the newest: a repair or a late packet
            if self.missing.pop(seq, None) is not None:
                self.repaired += 1
            return []
        if delta > self.max_missing:  # a jump (publisher restarted, long blackout): no repair
            self.missing.clear()
            self.max_seq = seq
            return []
        new = [(self.max_seq + i) % _SEQ_MOD for i in range(1, delta)]
        self.max_seq = seq
        for s in new:
            self.missing[s] = _Missing(now, now)
        self.requested += len(new)
        return new

    def due(self, now: float) -> tuple[list[int], int]:
        """(sequence numbers to ask for again now, how many were just given up on)."""
        again: list[int] = []
        dropped = 0
        for seq, m in list(self.missing.items()):
            if now - m.first_seen >= self.give_up_s:
                del self.missing[seq]
                dropped += 1
            elif now - m.last_asked >= self.retry_s:
                m.last_asked = now
                m.asked += 1
                again.append(seq)
        self.requested += len(again)
        self.given_up += dropped
        return again, dropped
