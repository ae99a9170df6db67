"""classroom_client/link.py: the SPEC, each impairment's statistics on a virtual clock, and a real
pair of aiortc peers over loopback whose data channel sees the delay and a blackout."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections.abc import AsyncIterator

import pytest
from aiortc import RTCDataChannel, RTCPeerConnection

from classroom_client.link import Link, LinkDirection, LinkSpec, VirtualClock
from sfu.media.aiortc_adapter import use_host_addresses
from sfu.media.endpoint import rtc_configuration

# -- SPEC ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "canonical"), [
    ("", "none"),
    ("none", "none"),
    ("loss=3%,delay=75ms,jitter=15ms,rate=1mbit", "loss=3%,delay=75ms,jitter=15ms,rate=1mbit"),
    ("rate=1500kbps, delay=0.1s", "delay=100ms,rate=1500kbit"),
    ("burst=10%", "burst=10%,burstlen=4"),
    ("burstlen=2,burst=5%,loss=1%", "loss=1%,burst=5%,burstlen=2"),
    ("rate=256kbit,queue=50kb", "rate=256kbit,queue=50000b"),
    ("rate=2mbps,queue=0.3s", "rate=2mbit,queue=300ms"),
    ("blackout=20s+10s;60s+500ms,blackout=90s+1s", "blackout=20s+10s;60s+0.5s;90s+1s"),
])
def test_spec_round_trips_to_a_canonical_form(text: str, canonical: str) -> None:
    spec = LinkSpec.parse(text)
    assert str(spec) == canonical
    assert LinkSpec.parse(str(spec)) == spec


def test_spec_fields_are_in_natural_units() -> None:
    spec = LinkSpec.parse("loss=3%,delay=75ms,jitter=15ms,rate=1mbit,blackout=20s+10s")
    assert (spec.loss, spec.delay, spec.jitter, spec.rate, spec.blackouts) == (3, 75, 15, 1e6, ((20, 10),))
    assert spec.queue_limit() == 25_000  # 200 ms at 1 Mbit/s
    assert LinkSpec.parse("rate=64kbit").queue_limit() == 4500  # at least three full packets
    assert LinkSpec.parse("delay=5ms").queue_limit() == float("inf")
    assert LinkSpec.parse("none") == LinkSpec()


@pytest.mark.parametrize(("text", "field"), [
    ("loss=3", "loss"),
    ("loss=120%", "loss"),
    ("delay=75", "delay"),
    ("delay=fast", "delay"),
    ("jitter=20ms,delay=10ms", "jitter"),
    ("rate=1gbyte", "rate"),
    ("rate=0kbit", "rate"),
    ("queue=200ms", "queue"),
    ("rate=1mbit,queue=5 parcels", "queue"),
    ("blackout=20s", "blackout"),
    ("blackout=20s+0s", "blackout"),
    ("burst=100%", "burst"),
    ("burstlen=3", "burstlen"),
    ("burst=5%,burstlen=0.5", "burstlen"),
    ("speed=3", "speed"),
    ("loss", "loss"),
    ("loss=1%,loss=2%", "loss"),
])
def test_a_bad_field_is_named(text: str, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^'?{field}'?:"):
        LinkSpec.parse(text)


# -- statistics on a virtual clock -----------------------------------------------------------


def drive(spec: str, packets: int, interval: float, size: int = 200, seed: int = 1
          ) -> tuple[LinkDirection, list[tuple[int, float, float]], VirtualClock]:
    """Offer `packets` datagrams every `interval` s; returns (direction, [(index, sent, arrived)], clock)."""
    clock = VirtualClock(100.0)
    link = Link(LinkSpec.parse(spec), clock, seed=seed)
    arrived: list[tuple[int, float, float]] = []
    for i in range(packets):
        sent = clock.time()
        link.uplink.offer(i.to_bytes(4, "big") + bytes(size - 4),
                          lambda d, sent=sent: arrived.append((int.from_bytes(d[:4], "big"), sent, clock.time())))
        clock.run_until(clock.time() + interval)
    clock.run_until(clock.time() + 10)
    return link.uplink, arrived, clock


def loss_runs(packets: int, arrived: list[tuple[int, float, float]]) -> list[int]:
    got = {i for i, _, _ in arrived}
    return [len(list(g)) for lost, g in itertools.groupby(range(packets), lambda i: i not in got) if lost]


def test_bernoulli_loss_matches_the_spec_and_is_not_bursty() -> None:
    n = 100_000
    direction, arrived, _ = drive("loss=3%", n, 0.001)
    loss = 1 - len(arrived) / n
    runs = loss_runs(n, arrived)
    print(f"loss=3%: measured {loss:.4%}, mean loss run {statistics.mean(runs):.2f}")
    assert abs(loss - 0.03) < 0.003
    assert statistics.mean(runs) < 1.1
    s = direction.stats
    assert (s.offered, s.dropped_loss, s.delivered, s.in_flight) == (n, n - len(arrived), len(arrived), 0)


def test_gilbert_elliott_loss_matches_the_mean_and_comes_in_bursts() -> None:
    n = 200_000
    _, arrived, _ = drive("burst=10%,burstlen=4", n, 0.001)
    loss = 1 - len(arrived) / n
    runs = loss_runs(n, arrived)
    print(f"burst=10%,burstlen=4: measured {loss:.4%}, mean loss run {statistics.mean(runs):.2f}")
    assert abs(loss - 0.10) < 0.01
    assert statistics.mean(runs) > 1.5 and abs(statistics.mean(runs) - 4) < 0.4


def test_delay_and_jitter_keep_the_mean_one_way_delay_and_never_reorder() -> None:
    for interval in (0.002, 0.02):  # dense (video) and sparse (audio) traffic
        _, arrived, _ = drive("delay=75ms,jitter=15ms", 20_000, interval)
        delays = [(a - s) * 1000 for _, s, a in arrived]
        mean, sd = statistics.mean(delays), statistics.pstdev(delays)
        print(f"delay=75ms,jitter=15ms every {interval * 1000:g} ms: mean {mean:.2f} ms, sd {sd:.2f}, "
              f"range {min(delays):.1f}-{max(delays):.1f}")
        assert abs(mean - 75) < 7.5
        assert 60 - 1e-6 <= min(delays) and max(delays) <= 90 + 1e-6 and sd > 4  # it does wander
        assert [i for i, _, _ in arrived] == list(range(len(arrived)))  # no loss, and in order
        times = [a for _, _, a in arrived]
        assert times == sorted(times)


def test_the_rate_cap_delivers_its_rate_and_tail_drops_the_excess() -> None:
    size, offered_bps = 1200, 2e6
    direction, arrived, _ = drive("rate=1mbit", 10_000, size * 8 / offered_bps, size=size)  # 48 s at 2 Mbit/s
    span = arrived[-1][2] - arrived[0][2]
    rate = (len(arrived) - 1) * size * 8 / span
    s = direction.stats
    delays = [(a - t) * 1000 for _, t, a in arrived]
    print(f"rate=1mbit offered 2 Mbit/s: delivered {rate / 1e6:.3f} Mbit/s, dropped by the queue "
          f"{s.dropped_queue / s.offered:.1%}, queue delay max {s.max_queue_delay_ms:.1f} ms")
    assert abs(rate - 1e6) < 1e5
    assert s.dropped_loss == 0 and abs(s.dropped_queue / s.offered - 0.5) < 0.05
    bound = 200 + size * 8 / 1e6 * 1000  # a 200 ms buffer, plus the packet's own serialisation
    assert 190 < s.max_queue_delay_ms <= bound and max(delays) <= bound
    # the drops are the tail of a full queue, not random: once full, it stays full
    got = {i for i, _, _ in arrived}
    first_drop = min(i for i in range(10_000) if i not in got)
    assert first_drop > 25_000 / size  # nothing lost until the buffer (25 kB) filled


def test_reconfigure_lifts_a_rate_cap_and_the_queue_drains_in_order() -> None:
    clock = VirtualClock()
    link = Link(LinkSpec.parse("rate=100kbit,queue=100ms"), clock, seed=3)
    order: list[int] = []
    for i in range(40):  # 40 x 1000 B at once: 1250 B buffered at most, the rest tail-dropped
        link.uplink.offer(i.to_bytes(4, "big") + bytes(996), lambda d: order.append(int.from_bytes(d[:4], "big")))
    assert link.stats()["uplink"]["dropped_queue"] > 30
    link.reconfigure(LinkSpec.parse("delay=10ms"))
    link.uplink.offer((99).to_bytes(4, "big"), lambda d: order.append(int.from_bytes(d[:4], "big")))
    clock.run_until(5)
    assert order == sorted(order) and order[-1] == 99  # behind what was queued: a FIFO line
    assert str(link.spec) == "delay=10ms" and link.stats()["uplink"]["in_flight"] == 0


def test_a_blackout_delivers_nothing_in_its_window_and_everything_after() -> None:
    _, arrived, _ = drive("delay=50ms,blackout=2s+1s;4s+0.5s", 600, 0.01)  # 6 s from t=100
    elapsed = [(s - 100, a - 100) for _, s, a in arrived]
    assert not [a for _, a in elapsed if 2 <= a < 3 or 4 <= a < 4.5]
    sent = {round(s, 2) for s, _ in elapsed}
    expected = {round(i * 0.01, 2) for i in range(600)}
    lost = expected - sent
    assert lost == {t for t in expected if 1.95 <= t < 3 or 3.95 <= t < 4.5}  # (in flight at its start, too)
    print(f"blackout=2s+1s;4s+0.5s: {len(lost)} of 600 lost, none delivered in either window")


# -- real peers over loopback ----------------------------------------------------------------


@pytest.fixture
async def loopback_ice() -> AsyncIterator[None]:
    use_host_addresses(["127.0.0.1"])
    yield
    use_host_addresses(None)


async def connected_pair(link: Link) -> tuple[RTCPeerConnection, RTCPeerConnection, RTCDataChannel]:
    """pc `a` (on `link`) offers a data channel to a clean pc `b` that echoes every message."""
    a, b = RTCPeerConnection(rtc_configuration([])), RTCPeerConnection(rtc_configuration([]))
    channel = a.createDataChannel("ping", ordered=False, maxRetransmits=0)

    @b.on("datachannel")
    def on_channel(echo: RTCDataChannel) -> None:
        echo.on("message", echo.send)

    opened = asyncio.Event()
    channel.on("open", opened.set)
    await a.setLocalDescription(await a.createOffer())
    assert link.attach(a) == 1 and link.attach(a) == 0  # one transport with max-bundle; once
    await b.setRemoteDescription(a.localDescription)
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(b.localDescription)
    await asyncio.wait_for(opened.wait(), 10)
    return a, b, channel


async def ping(channel: RTCDataChannel, count: int, interval: float, link: Link) -> list[tuple[float, float]]:
    """Send `count` pings; returns [(sent, rtt)] for those answered, times from the link's start."""
    sent: dict[str, float] = {}
    answers: list[tuple[float, float]] = []
    loop = asyncio.get_running_loop()
    channel.on("message", lambda m: answers.append((sent[m] - link.start, loop.time() - sent[m])))
    for i in range(count):
        sent[str(i)] = loop.time()
        channel.send(str(i))
        await asyncio.sleep(interval)
    await asyncio.sleep(0.5)
    return answers


async def test_a_75ms_link_doubles_into_a_150ms_round_trip(loopback_ice: None) -> None:
    link = Link(LinkSpec.parse("delay=75ms"))
    a, b, channel = await connected_pair(link)
    rtts = [rtt * 1000 for _, rtt in await ping(channel, 30, 0.1, link)]
    median = statistics.median(rtts)
    print(f"delay=75ms over loopback: RTT median {median:.1f} ms, range {min(rtts):.1f}-{max(rtts):.1f} ms")
    assert len(rtts) == 30 and 150 <= median < 165 + 5  # 150 ms ±10 %, plus loopback overhead
    stats = link.stats()
    assert stats["uplink"]["delivered"] > 30 and stats["downlink"]["delivered"] > 30
    started = time.monotonic()
    await a.close()
    await b.close()
    assert time.monotonic() - started < 3
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "twinclass-ice-datagram-pump"]


async def test_a_blackout_stops_the_traffic_and_it_resumes(loopback_ice: None) -> None:
    link = Link(LinkSpec.parse("delay=20ms,blackout=4s+2s"))
    a, b, channel = await connected_pair(link)
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, link.start + 2.5 - loop.time()))
    answers = await ping(channel, 100, 0.05, link)  # sent from 2.5 s to 7.5 s
    received = sorted(s + rtt for s, rtt in answers)
    during = [t for t in received if 4 <= t < 6]
    before = [t for t in received if t < 4]
    after = [t for t in received if t >= 6]
    print(f"blackout=4s+2s: {len(before)} answers before, {len(during)} during, {len(after)} after "
          f"(first after at {after[0] if after else None})")
    assert not during and len(before) > 20 and len(after) > 20
    stats = link.stats()  # the pings die on the way out; the answers to earlier ones on the way in
    assert after[0] < 6.5 and stats["uplink"]["dropped_blackout"] + stats["downlink"]["dropped_blackout"] > 0
    await a.close()
    await b.close()
