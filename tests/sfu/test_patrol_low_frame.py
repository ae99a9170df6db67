"""Low-frame (patrol) slots with real aiortc peers over loopback: a patrol subscriber sees a picture
that keeps changing (whole keyframes, decoded, the pattern read) while the server forwards it a small
fraction of the packets a full subscriber of the same track gets, and asks the publisher for a keyframe
only once per PATROL_KEYFRAME_INTERVAL_S for all of the track's low-frame slots."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from peers import close, publish, subscribe, until

from classroom_client.pattern import source_tag
from sfu.media import forwarder
from sfu.media.aiortc_adapter import use_host_addresses


@pytest.fixture(autouse=True)
async def loopback_ice() -> AsyncIterator[None]:
    use_host_addresses(["127.0.0.1"])
    yield
    use_host_addresses(None)


async def test_patrol_slots_get_fresh_keyframes_at_a_fraction_of_the_packets() -> None:
    pub = await publish("pub-patrol")
    full = await subscribe()
    patrols = [await subscribe(low_frame=True) for _ in range(2)]
    camera = pub.tracks["camera"]
    try:
        full.endpoint.slots["v"].attach(camera)
        for p in patrols:
            p.endpoint.slots["v"].attach(camera)
        # every patrol subscriber gets a first picture soon (the new viewer's keyframe request)
        await until(lambda: all(p.video.counters for p in patrols), 10, "a first keyframe at each patrol subscriber")
        start = time.monotonic()
        requests0 = camera.stats.patrol_keyframe_requests
        full0 = len(full.video.counters)
        seen = {id(p): len(p.video.counters) for p in patrols}
        await asyncio.sleep(3 * forwarder.PATROL_KEYFRAME_INTERVAL_S + 0.5)
        elapsed = time.monotonic() - start

        # the full subscriber is unaffected: every frame (30 fps test pattern), in order, readable
        full_fps = (len(full.video.counters) - full0) / elapsed
        assert full_fps > 20, f"full subscriber at {full_fps:.1f} fps"
        assert full.video.bad == 0 and full.video.counters == sorted(full.video.counters)
        full_out = full.endpoint.slots["v"].stats.packets_out
        for p in patrols:
            rx = p.video
            # a picture that updates: new keyframes decoded, the pattern verified, counters moving on
            assert rx.bad == 0, rx.tags
            assert set(rx.tags) == {source_tag("pub-patrol")}
            assert len(rx.counters) - seen[id(p)] >= 2, f"only {len(rx.counters)} keyframes decoded: {rx.counters}"
            assert rx.counters == sorted(rx.counters) and len(set(rx.counters)) == len(rx.counters)
            gaps = [b - a for a, b in zip(rx.counters, rx.counters[1:], strict=False)]
            assert max(gaps) <= 30 * (forwarder.PATROL_KEYFRAME_INTERVAL_S + 1.5), gaps  # a new one every few s
            slot = p.endpoint.slots["v"]
            # the server forwarded it far fewer packets than the full subscriber, and dropped the rest
            assert slot.stats.packets_out * 5 < full_out, (slot.stats.packets_out, full_out)
            assert slot.stats.dropped_low_frame > slot.stats.packets_out
            assert slot.stats.keyframes_forwarded >= len(rx.counters)
            # the subscriber saw a gapless sequence: nothing for its jitter buffer to wait for or NACK
            assert p.endpoint.slots["v"].port.packets_sent == slot.stats.packets_out  # type: ignore[union-attr]
        # one keyframe request per interval for both patrol subscribers together (never one each per frame)
        requests = camera.stats.patrol_keyframe_requests - requests0
        assert 1 <= requests <= elapsed / forwarder.PATROL_KEYFRAME_INTERVAL_S + 1, requests
    finally:
        await close(*patrols, full, pub)


async def test_a_patrol_slot_switches_sources_and_keeps_its_timeline() -> None:
    a, b = await publish("pub-a"), await publish("pub-b")
    sub = await subscribe(low_frame=True)
    slot = sub.endpoint.slots["v"]
    try:
        slot.attach(a.tracks["camera"])
        await until(lambda: sub.video.counters, 10, "a keyframe from pub-a")
        slot.attach(b.tracks["camera"])
        await until(lambda: source_tag("pub-b") in sub.video.tags, 10, "a keyframe from pub-b after the switch")
        assert sub.video.bad == 0
        assert slot.tier == "full"
        slot.set_tier("low")  # a patrol slot never takes a server-made tier (a decoder and an encoder)
        assert slot.source is b.tracks["camera"]
    finally:
        await close(sub, a, b)
