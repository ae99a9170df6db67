"""The link estimates on a virtual clock: publishers' REMB, subscribers' tiers, uplink re-NACKs."""

from __future__ import annotations

from sfu.media.bandwidth import CAMERA_MAX_BPS, DownlinkEstimate, LinkReport, UplinkEstimate
from sfu.media.nack import NackTracker


def _feed_uplink(est: UplinkEstimate, seconds: float, bps: int, loss_every: int = 0, t0: float = 0.0,
                 seq0: int = 0, overuse: bool = False) -> tuple[list[int], float, int]:
    """Packets of 1,000 bytes at `bps` (every `loss_every`-th missing); returns the REMBs sent."""
    sent: list[int] = []
    interval = 8000 / bps
    t, seq = t0, seq0
    while t < t0 + seconds:
        seq = (seq + 1) % 65536
        if not (loss_every and seq % loss_every == 0):
            est.on_packet(seq, 1000, t)
            est.on_delay_signal(overuse)
            remb = est.update(t)
            if remb is not None:
                sent.append(remb)
        t += interval
    return sent, t, seq


def test_uplink_remb_stays_at_the_cap_on_a_clean_link() -> None:
    est = UplinkEstimate()
    sent, _, _ = _feed_uplink(est, 30, 300_000)
    assert sent and set(sent) == {CAMERA_MAX_BPS}  # one value, refreshed: no encoder restarts
    assert len(sent) <= 16  # every 2 s, not per packet


def test_uplink_backs_off_on_loss_and_recovers_when_it_ends() -> None:
    est = UplinkEstimate()
    sent, t, seq = _feed_uplink(est, 6, 1_200_000, loss_every=5)  # 20 % loss: a saturated uplink
    assert est.loss > 0.15
    assert min(sent) < 0.8 * 1_200_000
    low = est.target_bps
    sent, t, seq = _feed_uplink(est, 30, 600_000, t0=t, seq0=seq)
    assert est.target_bps > low and est.target_bps == CAMERA_MAX_BPS


def test_uplink_holds_at_a_few_percent_loss() -> None:
    """3 % random loss is not congestion: the REMB does not move (NACK repairs those)."""
    est = UplinkEstimate()
    sent, _, _ = _feed_uplink(est, 20, 400_000, loss_every=33)
    assert set(sent) == {CAMERA_MAX_BPS}


def test_uplink_backs_off_when_the_delay_detector_overuses() -> None:
    est = UplinkEstimate()
    _feed_uplink(est, 5, 900_000, overuse=True)
    assert est.target_bps < 900_000 and est.decreases >= 1


def _run_downlink(est: DownlinkEstimate, seconds: int, loss: float, rtt: float, t0: float = 0.0,
                  sent: int = 0) -> tuple[list[tuple[float, str]], float, int]:
    changes = []
    t = t0
    for _ in range(seconds):
        t += 1.0
        est.on_report(1, LinkReport(fraction_lost=loss, rtt_s=rtt), t)
        sent += 60_000
        tier = est.update(t, sent)
        if tier is not None:
            changes.append((t, tier))
    return changes, t, sent


def test_downlink_does_not_judge_a_connection_in_its_first_seconds() -> None:
    est = DownlinkEstimate()
    changes, t, sent = _run_downlink(est, 3, loss=0.4, rtt=0.1)  # start-up: keyframe bursts, first reports
    assert changes == [] and est.tier == "full"
    changes, _, _ = _run_downlink(est, 3, loss=0.4, rtt=0.1, t0=t, sent=sent)
    assert [c[1] for c in changes] == ["low"]


def test_downlink_keeps_full_on_a_lossy_but_uncongested_link() -> None:
    est = DownlinkEstimate()
    changes, _, _ = _run_downlink(est, 30, loss=0.03, rtt=0.15)
    assert changes == [] and est.tier == "full"
    assert est.state() == "weak"  # 3 % loss shows, but the streams are not cut


def test_downlink_drops_to_low_on_heavy_loss_and_probes_back() -> None:
    est = DownlinkEstimate()
    _, t, sent = _run_downlink(est, 5, loss=0.0, rtt=0.05)
    changes, t, sent = _run_downlink(est, 4, loss=0.4, rtt=0.25, t0=t, sent=sent)
    assert changes and changes[0][1] == "low" and changes[0][0] - 5 <= 2
    changes, t, sent = _run_downlink(est, 12, loss=0.0, rtt=0.05, t0=t, sent=sent)
    assert [c[1] for c in changes] == ["full"]
    assert changes[0][0] - (t - 12) <= DownlinkEstimate.FIRST_PROBE_WAIT_S + 1


def test_downlink_failed_probe_waits_longer() -> None:
    est = DownlinkEstimate()
    _, t, sent = _run_downlink(est, 4, loss=0.0, rtt=0.1)  # a new connection settles first
    _, t, sent = _run_downlink(est, 3, loss=0.3, rtt=0.1, t0=t, sent=sent)
    assert est.tier == "low"
    _, t, sent = _run_downlink(est, 9, loss=0.0, rtt=0.1, t0=t, sent=sent)
    assert est.tier == "full"  # the probe
    _, t, sent = _run_downlink(est, 3, loss=0.3, rtt=0.1, t0=t, sent=sent)
    assert est.tier == "low" and est.probe_wait_s == 2 * DownlinkEstimate.FIRST_PROBE_WAIT_S


def test_downlink_sees_a_filling_queue_in_the_round_trip() -> None:
    est = DownlinkEstimate()
    _, t, sent = _run_downlink(est, 5, loss=0.0, rtt=0.15)
    changes, _, _ = _run_downlink(est, 6, loss=0.0, rtt=0.45, t0=t, sent=sent)
    assert changes and changes[0][1] == "low"


def test_nack_tracker_asks_again_then_gives_up() -> None:
    nack = NackTracker(retry_s=0.2, give_up_s=1.0)
    assert nack.on_packet(100, 0.0) == []
    assert nack.on_packet(103, 0.01) == [101, 102]
    assert nack.due(0.1) == ([], 0)
    assert nack.due(0.25) == ([101, 102], 0)
    nack.on_packet(101, 0.3)  # repaired
    assert nack.repaired == 1
    assert nack.due(0.5) == ([102], 0)
    assert nack.due(1.05) == ([], 1)  # 102 is lost for good: the caller asks for a keyframe
    assert nack.missing == {}


def test_nack_tracker_asks_again_after_twice_the_round_trip() -> None:
    """On a short link a lost repair is asked for again within 50 ms, so eight retries fit in the
    subscriber's 600 ms (a fixed 200 ms fitted two); a rural round trip keeps 200 ms."""
    nack = NackTracker()
    nack.follow_rtt(0.0013)  # loopback / a school LAN
    nack.on_packet(100, 0.0)
    assert nack.on_packet(102, 0.0) == [101]
    asked = [t / 100 for t in range(1, 61) if nack.due(t / 100)[0]]
    assert len(asked) >= 8 and asked[0] <= 0.06, asked
    rural = NackTracker()
    rural.follow_rtt(0.150)
    assert rural.retry_s == 0.2
    rural.follow_rtt(0.040)
    assert rural.retry_s == 0.08


def test_nack_tracker_across_the_sequence_wrap_and_after_a_jump() -> None:
    nack = NackTracker()
    nack.on_packet(65534, 0.0)
    assert nack.on_packet(1, 0.01) == [65535, 0]
    assert nack.on_packet(5000, 0.02) == []  # a jump (publisher restart): nothing to repair
    assert nack.missing == {}


def test_downlink_loss_counts_only_what_we_sent() -> None:
    """Packets the publisher's uplink lost were never sent to this subscriber: its report shows
    them missing (the forwarder keeps the publisher's numbering), but its downlink is clean."""
    est = DownlinkEstimate()
    lost = highest = sent = 0
    t = 0.0
    for _ in range(10):
        t += 1.0
        highest += 100  # 100 sequence numbers went by, 30 of them lost upstream: we sent 70
        sent += 70
        lost += 30
        est.on_report(7, LinkReport(fraction_lost=0.3, packets_lost=lost, highest_sequence=highest,
                                    packets_sent=sent), t)
        est.update(t, int(t * 50_000))
    assert est.loss == 0.0 and est.tier == "full"
    for _ in range(3):  # now the subscriber's own link loses a fifth of what we send
        t += 1.0
        highest += 100
        sent += 70
        lost += 30 + 14
        est.on_report(7, LinkReport(fraction_lost=0.44, packets_lost=lost, highest_sequence=highest,
                                    packets_sent=sent), t)
        est.update(t, int(t * 50_000))
    assert abs(est.loss - 0.2) < 0.01 and est.tier == "low"


def _run_capped(est: DownlinkEstimate, seconds: int, rtt: float, nacked_share: float, t: float,
                totals: list[int]) -> list[str]:
    """Seconds of 100 video packets sent, `nacked_share` of them NACKed, reports showing 1 % loss
    after repair (RTX counts as received) and this round trip."""
    changes = []
    for _ in range(seconds):
        t += 1.0
        totals[0] += 100
        totals[1] += round(100 * nacked_share)
        est.on_report(1, LinkReport(fraction_lost=0.01, rtt_s=rtt), t)
        tier = est.update(t, int(t * 30_000), totals[0], totals[1])
        if tier is not None:
            changes.append(tier)
    return changes


def test_downlink_sees_a_full_queue_dropping_what_repairs_hide() -> None:
    """A line capped a little below what we send: its 200 ms buffer stays full, tail-drops 15 %,
    the repairs make the receiver reports look clean and the round trip sits at +150 ms (under
    the 180 ms queueing rule): loss before repair with a raised round trip is congestion."""
    est = DownlinkEstimate()
    totals = [0, 0]
    assert _run_capped(est, 5, 0.05, 0.0, 0.0, totals) == []
    assert _run_capped(est, 3, 0.20, 0.15, 5.0, totals) == ["low"]
    assert est.loss_before_repair == 0.15 and est.to_json()["loss_before_repair"] == 0.15


def test_downlink_sees_a_cap_dropping_what_repairs_hide_without_a_queue_showing() -> None:
    """As measured under a 230 kbit cap: 29 % lost before repair, reports near clean, the round
    trip up only ~70 ms."""
    est = DownlinkEstimate()
    totals = [0, 0]
    assert _run_capped(est, 5, 0.01, 0.0, 0.0, totals) == []
    assert _run_capped(est, 3, 0.07, 0.29, 5.0, totals) == ["low"]


def test_downlink_keeps_full_on_random_loss_or_a_stall_alone() -> None:
    """10 % random loss with no queue (repairs work), or a CPU stall raising the round trip
    with nothing lost: neither is a full queue."""
    est = DownlinkEstimate()
    totals = [0, 0]
    assert _run_capped(est, 5, 0.05, 0.0, 0.0, totals) == []
    assert _run_capped(est, 10, 0.05, 0.10, 5.0, totals) == []
    assert _run_capped(est, 2, 0.20, 0.0, 15.0, totals) == []
    assert est.tier == "full"
