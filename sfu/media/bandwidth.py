"""What each link carries: the REMB a publisher is told, and the tier a subscriber can take.

Two estimators, pure logic (times are passed in, so tests run them on a virtual clock):

- `UplinkEstimate`, one per published track: the server is the receiver of a classroom's uplink,
  so it sees the uplink's loss (sequence numbers) and queueing (aiortc's delay-based overuse
  detector on abs-send-time). It advertises a REMB that stays at the track's cap while the
  uplink is clean, backs off when the uplink loses more than 10 % or queues, and climbs back
  slowly. A steady REMB matters: aiortc's VP8 encoder restarts (and sends a fresh keyframe)
  whenever the target moves by more than 10 %, and aiortc's own estimator moves it all the time.
- `DownlinkEstimate`, one per subscriber connection: from that classroom's receiver reports
  (loss, round trip) and REMBs, against what we actually send it, it decides whether the
  subscriber takes the full streams or a lower tier. It never touches what publishers send.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

CAMERA_MAX_BPS = 1_200_000
COURSEWARE_MAX_BPS = 1_500_000
UPLINK_MIN_BPS = 100_000
_STEP_BPS = 10_000  # advertised values are rounded to this, so small wobbles change nothing

TIERS = ("full", "low")


class UplinkEstimate:
    """The bitrate a publisher's uplink carries for one track; what its REMB says."""

    INTERVAL_S = 1.0
    REMB_REFRESH_S = 2.0

    def __init__(self, max_bps: int = CAMERA_MAX_BPS, min_bps: int = UPLINK_MIN_BPS) -> None:
        self.max_bps = max_bps
        self.min_bps = min_bps
        self.target_bps = max_bps
        self.loss = 0.0
        self.incoming_bps = 0.0
        self.decreases = 0
        self._bytes = 0
        self._received = 0
        self._max_seq: int | None = None
        self._expected_base: int | None = None  # extended seq at the interval's start
        self._cycles = 0
        self._interval_start: float | None = None
        self._overuse_seen = False
        self._overuse_run = 0
        self._hold_until = 0.0
        self._last_sent_bps: int | None = None
        self._last_sent_at = 0.0

    def on_packet(self, sequence_number: int, size: int, now: float, retransmission: bool = False) -> None:
        """Every packet of the track as it arrives (repairs flagged: they are not new data)."""
        if self._interval_start is None:
            self._interval_start = now
        self._bytes += size
        if retransmission:
            return
        if self._max_seq is None:
            self._max_seq = sequence_number
            self._expected_base = sequence_number
            self._received = 1
            return
        delta = (sequence_number - self._max_seq) % 65536
        if 0 < delta < 0x8000:
            if sequence_number < self._max_seq:
                self._cycles += 1
            self._max_seq = sequence_number
        self._received += 1

    def on_delay_signal(self, overusing: bool) -> None:
        """aiortc's overuse detector's verdict on the latest packet group."""
        if overusing:
            self._overuse_seen = True

    def _extended_max(self) -> int:
        assert self._max_seq is not None
        return self._cycles * 65536 + self._max_seq

    def update(self, now: float) -> int | None:
        """Close an interval when one is due; returns the REMB to send now, or None."""
        if self._interval_start is None or now - self._interval_start < self.INTERVAL_S:
            return self._refresh(now)
        span = now - self._interval_start
        self.incoming_bps = self._bytes * 8 / span
        if self._max_seq is not None and self._expected_base is not None:
            expected = self._extended_max() - self._expected_base + 1
            self.loss = max(0.0, (expected - self._received) / expected) if expected > 0 else 0.0
            self._expected_base = self._extended_max() + 1
        self._received = 0
        self._bytes = 0
        self._interval_start = now
        # a second of overuse can be a CPU stall on either side; two in a row is a queue growing
        self._overuse_run = self._overuse_run + 1 if self._overuse_seen else 0
        congested = self.loss > 0.10 or self._overuse_run >= 2
        self._overuse_seen = False
        if congested and now >= self._hold_until:
            backoff = 0.85 if self.loss <= 0.10 else max(0.5, 1 - self.loss / 2)
            self.target_bps = max(self.min_bps, int(min(self.target_bps, self.incoming_bps) * backoff))
            self.decreases += 1
            self._hold_until = now + 2 * self.INTERVAL_S  # let the queue drain before judging again
        elif not congested and self.loss < 0.02 and now >= self._hold_until:
            self.target_bps = min(self.max_bps, int(self.target_bps * 1.08) + _STEP_BPS)
        return self._refresh(now)

    def _refresh(self, now: float) -> int | None:
        value = max(self.min_bps, round(self.target_bps / _STEP_BPS) * _STEP_BPS)
        if self._last_sent_bps is not None:
            changed = abs(value - self._last_sent_bps) > 0.05 * self._last_sent_bps
            if not changed and now - self._last_sent_at < self.REMB_REFRESH_S:
                return None
        self._last_sent_bps = value
        self._last_sent_at = now
        return value


@dataclass
class LinkReport:
    """What a subscriber's RTCP said about one of our senders since the last look."""

    fraction_lost: float | None = None  # 0..1, from a receiver report (counts upstream gaps too)
    rtt_s: float | None = None
    remb_bps: int | None = None
    packets_lost: int | None = None  # the report's cumulative count, and its highest sequence number
    highest_sequence: int | None = None
    packets_sent: int | None = None  # what we had sent on that sender when the report came


class DownlinkEstimate:
    """Decides the tier a subscriber takes, from its RTCP against what we send it.

    Congested means more than 8 % loss in the subscriber's receiver reports, or a round trip
    more than 180 ms above the lowest seen in the last 30 s (a bottleneck queue filling) for
    three seconds, or a bottleneck dropping what we send: more than 15 % of the video packets we
    sent asked for again (NACKed: the loss before repair, what libwebrtc's receiver reports count),
    or more than 5 % while the round trip is 80 ms above its lowest (a full queue). The receiver
    reports alone miss a line capped below what we send: repairs (RTX) count as received in
    aiortc's, so under a 230 kbit cap they showed 0-16 % while 29 % was dropped, and the round trip
    rose only ~70 ms. Random loss on a rural line (3-10 %) stays under 15 %, and a CPU stall
    raising the round trip loses nothing: neither moves the tier. REMBs are reported but do not
    decide: aiortc's delay-based estimate, which our classroom terminals send, follows the
    incoming rate and reads CPU stalls as congestion.
    Two congested seconds in a row (one, above 20 % loss) move the subscriber to the lower tier;
    after `probe_wait_s` clean seconds it tries the full streams again, and a probe that brings
    congestion back within `PROBE_CHECK_S` doubles the wait (up to `MAX_PROBE_WAIT_S`).
    """

    INTERVAL_S = 1.0
    SETTLE_S = 3.0
    PROBE_CHECK_S = 6.0
    QUEUEING_S = 0.18  # a round trip this far above its lowest for 3 s: a queue filling
    FILLING_S = 0.08  # ...this far, while what we send is lost before repair: a full queue dropping
    QUEUE_REPAIR_LOSS = 0.05  # loss before repair that, with the round trip FILLING_S up, is congestion
    REPAIR_LOSS = 0.15  # loss before repair that is congestion on its own
    FIRST_PROBE_WAIT_S = 8.0
    MAX_PROBE_WAIT_S = 30.0

    def __init__(self) -> None:
        self.tier = "full"
        self.loss = 0.0
        self.loss_before_repair = 0.0  # share of the video packets we sent that the subscriber NACKed
        self.rtt_s: float | None = None
        self.min_rtt_s: float | None = None
        self.remb_bps: int | None = None
        self.sent_bps = 0.0
        self.congested = False
        self.switches = 0
        self.probe_wait_s = self.FIRST_PROBE_WAIT_S
        self._congested_run = 0
        self._clean_since: float | None = None
        self._probe_started: float | None = None
        self._rembs: dict[int, tuple[int, float]] = {}  # sender ssrc -> (bps, when)
        self._losses: deque[float] = deque(maxlen=32)
        self._rtts: deque[tuple[float, float]] = deque(maxlen=200)  # (when, round trip s)
        self._queueing_run = 0
        self._rr: dict[int, tuple[int, int, int]] = {}  # sender ssrc -> (lost, highest seq, we had sent)
        self._last_update: float | None = None
        self._started_at = 0.0
        self._sent_bytes_at_last = 0
        self._sent_packets_at_last: int | None = None
        self._nacked_at_last = 0

    def on_report(self, ssrc: int, report: LinkReport, now: float) -> None:
        loss = self._downlink_loss(ssrc, report)
        if loss is not None:
            self._losses.append(loss)
        if report.rtt_s is not None and report.rtt_s > 0:
            self.rtt_s = report.rtt_s
            self._rtts.append((now, report.rtt_s))
        if report.remb_bps is not None:
            self._rembs[ssrc] = (report.remb_bps, now)

    def _downlink_loss(self, ssrc: int, report: LinkReport) -> float | None:
        """The share of what WE sent that the subscriber did not get, since its previous report.

        A receiver report's own fraction counts sequence numbers it never saw, and the forwarder
        keeps the publisher's numbering: a packet lost on the publisher's uplink (never sent to
        anyone) would count as this subscriber's loss, and one weak rural classroom would push
        everybody who receives it to the low tier. Received = new highest sequence - new losses.
        """
        if report.packets_lost is None or report.highest_sequence is None or report.packets_sent is None:
            return report.fraction_lost
        last = self._rr.get(ssrc)
        if last is not None and report.packets_sent - last[2] < 40:
            return None  # too few packets since the last judged report (audio, a quiet slot): wait
        self._rr[ssrc] = (report.packets_lost, report.highest_sequence, report.packets_sent)
        if last is None:
            return None
        sent = report.packets_sent - last[2]
        received = (report.highest_sequence - last[1]) - (report.packets_lost - last[0])
        ours = max(0.0, 1.0 - received / sent)
        # "what we had sent" is read when the report arrives, so packets still in flight (or a
        # receiver whose report came late) look lost; the report's own fraction has no such skew
        # but counts upstream gaps. Each errs only upwards: the smaller one is the downlink's.
        fraction = report.fraction_lost if report.fraction_lost is not None else ours
        return min(1.0, ours, fraction)

    def update(self, now: float, sent_bytes_total: int, sent_packets_total: int | None = None,
               nacked_total: int | None = None) -> str | None:
        """Once a second, with the video bytes (and packets) sent so far and the distinct ones of
        them the subscriber NACKed: the new tier when it changes, else None."""
        if self._last_update is None:
            self._last_update = self._started_at = now
            self._sent_bytes_at_last = sent_bytes_total
            self._clean_since = now
            self._count_repairs(sent_packets_total, nacked_total)
            return None
        span = now - self._last_update
        if span < self.INTERVAL_S:
            return None
        self.sent_bps = (sent_bytes_total - self._sent_bytes_at_last) * 8 / span
        self._last_update = now
        self._sent_bytes_at_last = sent_bytes_total
        if self._losses:  # the mean over this second's reports (one sender's few audio packets are noisy)
            self.loss = sum(self._losses) / len(self._losses)
        self._losses.clear()
        fresh = [bps for bps, at in self._rembs.values() if now - at < 3.0]
        self.remb_bps = sum(fresh) if fresh else None
        while self._rtts and now - self._rtts[0][0] > 30.0:
            self._rtts.popleft()
        self.min_rtt_s = min(r for _, r in self._rtts) if self._rtts else None
        self._count_repairs(sent_packets_total, nacked_total)
        above = (self.rtt_s - self.min_rtt_s) if self.rtt_s is not None and self.min_rtt_s is not None else 0.0
        self._queueing_run = self._queueing_run + 1 if above > self.QUEUEING_S else 0
        dropping = self.loss_before_repair > self.REPAIR_LOSS or (
            self.loss_before_repair > self.QUEUE_REPAIR_LOSS and above > self.FILLING_S)
        self.congested = self.loss > 0.08 or self._queueing_run >= 3 or dropping
        if self.congested:
            self._congested_run += 1
            self._clean_since = None
        else:
            self._congested_run = 0
            if self._clean_since is None:
                self._clean_since = now
        return self._decide(now)

    def _count_repairs(self, sent_packets_total: int | None, nacked_total: int | None) -> None:
        """The loss before repair over the packets sent since the last judged second (20 at least)."""
        if sent_packets_total is None or nacked_total is None:
            return
        if self._sent_packets_at_last is None:
            self._sent_packets_at_last, self._nacked_at_last = sent_packets_total, nacked_total
            return
        sent = sent_packets_total - self._sent_packets_at_last
        if sent < 20:
            return  # a quiet second (a paused camera, the low tier of a still picture): wait
        self.loss_before_repair = min(1.0, max(0, nacked_total - self._nacked_at_last) / sent)
        self._sent_packets_at_last, self._nacked_at_last = sent_packets_total, nacked_total

    def _decide(self, now: float) -> str | None:
        if now - self._started_at < self.SETTLE_S:
            return None  # the first keyframes and the first reports of a new connection
        if self.tier == "full":
            if self._congested_run >= 2 or (self._congested_run >= 1 and self.loss > 0.2):
                if self._probe_started is not None and now - self._probe_started < self.PROBE_CHECK_S:
                    self.probe_wait_s = min(self.MAX_PROBE_WAIT_S, self.probe_wait_s * 2)
                self._probe_started = None
                return self._switch("low")
            if self._probe_started is not None and now - self._probe_started >= self.PROBE_CHECK_S:
                self._probe_started = None
                self.probe_wait_s = self.FIRST_PROBE_WAIT_S  # the full streams fit again
            return None
        if self._clean_since is not None and now - self._clean_since >= self.probe_wait_s:
            self._probe_started = now
            return self._switch("full")
        return None

    def _switch(self, tier: str) -> str:
        self.tier = tier
        self.switches += 1
        self._congested_run = 0
        self._clean_since = None
        return tier

    def state(self) -> str:
        """"good", "weak" or "bad", as the lesson page shows a classroom's link."""
        if self.congested or self.loss > 0.10:
            return "bad"
        if self.tier != "full" or self.loss > 0.02:
            return "weak"
        return "good"

    def to_json(self) -> dict[str, object]:
        return {
            "tier": self.tier,
            "state": self.state(),
            "loss": round(self.loss, 3),
            "loss_before_repair": round(self.loss_before_repair, 3),
            "rtt_ms": round(self.rtt_s * 1000, 1) if self.rtt_s is not None else None,
            "downlink_kbps": round(self.remb_bps / 1000, 1) if self.remb_bps is not None else None,
            "sent_kbps": round(self.sent_bps / 1000, 1),
        }
