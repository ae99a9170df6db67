"""Server-made lower tiers with real aiortc peers: made once per tier, decodable, gone when unused."""

from __future__ import annotations

import asyncio
import time

import pytest
from peers import close, publish, subscribe

from sfu.media import tiers
from sfu.media.aiortc_adapter import decoders_created, use_host_addresses


@pytest.fixture(autouse=True)
def loopback() -> None:
    use_host_addresses(["127.0.0.1"])


async def until(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.mark.asyncio
async def test_low_tier_is_made_once_and_decodes_small_and_slow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tiers, "IDLE_STOP_S", 1.0)
    pub = await publish("rural-1")
    subs = [await subscribe() for _ in range(2)]
    camera = pub.tracks["camera"]
    for sub in subs:
        sub.endpoint.slots["v"].attach(camera)
    await until(lambda: all(len(s.video.counters) > 30 for s in subs), 15, "the full stream")
    decoders_before = decoders_created()
    marks = [(len(s.video.counters), len(s.video.sizes), s.video.bad) for s in subs]
    for sub in subs:
        sub.endpoint.slots["v"].set_tier("low")
    await asyncio.sleep(5.0)
    assert list(camera.tiers) == ["low"], "one tier for both subscribers"
    assert decoders_created() - decoders_before == 1, "the tier decodes the source once, for everyone"
    tier = camera.tiers["low"]
    for sub, (n0, s0, bad0) in zip(subs, marks, strict=True):
        assert sub.video.bad == bad0, "no unreadable frame across the switch"
        small = [size for size in sub.video.sizes[s0:] if size[1] <= 180]
        assert len(small) >= 55, f"about 15 fps at the low tier, got {len(small)} small frames in 5 s"
        assert all(w <= 320 for w, _ in small)
        counters = sub.video.counters[n0:]
        assert counters == sorted(counters)
    assert tier.stats()["frames_out"] <= 5.0 * 15 + 10  # encoded once: not once per subscriber
    for sub in subs:
        sub.endpoint.slots["v"].set_tier("full")
    await until(lambda: tier.closed, 5, "the unused tier to stop")
    assert camera.tiers == {}
    n_full = [len(s.video.counters) for s in subs]
    await asyncio.sleep(1.5)
    for sub, n0 in zip(subs, n_full, strict=True):
        assert len(sub.video.counters) - n0 >= 30, "the full stream is back"
        assert sub.video.sizes[-1] == (320, 240)
    await close(*subs, pub)
