"""ICE consent freshness (RFC 7675) with real aioice connections over loopback: a peer whose answers
come late (a starved machine) keeps consent; one that stops answering loses it. aioice's own check
(one request, 0.5 s, no retransmission) closed the master's publishing connection of a broadcast
with 100 viewers on two loaded cores (bench/broadcast.py); the adapter retransmits each check."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aioice
import aioice.ice
import aioice.stun
import pytest

from sfu.media.aiortc_adapter import core, use_host_addresses


@pytest.fixture
async def pair(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[aioice.Connection, aioice.Connection]]:
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.2)  # a check every ~0.2 s instead of ~5 s
    use_host_addresses(["127.0.0.1"])
    a = aioice.Connection(ice_controlling=True)
    b = aioice.Connection(ice_controlling=False)
    for conn in (a, b):
        await conn.gather_candidates()
    for here, there in ((a, b), (b, a)):
        for candidate in there.local_candidates:
            if candidate.host.startswith("127."):
                await here.add_remote_candidate(candidate)
        await here.add_remote_candidate(None)
        here.remote_username = there.local_username
        here.remote_password = there.local_password
    await asyncio.wait_for(asyncio.gather(a.connect(), b.connect()), 20)
    yield a, b
    for conn in (a, b):
        await conn.close()
    use_host_addresses(None)


def answer_late(conn: aioice.Connection, delay_s: float | None) -> None:
    """`conn` answers STUN requests `delay_s` late (None: never)."""
    loop = asyncio.get_running_loop()
    for protocol in conn._protocols:
        original: Callable[..., None] = protocol.send_stun

        def send(message: aioice.stun.Message, addr: Any, original: Callable[..., None] = original) -> None:
            if message.message_class != aioice.stun.Class.RESPONSE:
                original(message, addr)
            elif delay_s is not None:
                loop.call_later(delay_s, original, message, addr)

        protocol.send_stun = send  # type: ignore[method-assign]


async def still_open(a: aioice.Connection, b: aioice.Connection, seconds: float) -> bool:
    """Whether `a` keeps its connection (and data still reaches `b`) for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not a._nominated:
            return False
        await asyncio.sleep(0.1)
    await a.send(b"still here")
    return await asyncio.wait_for(b.recv(), 2) == b"still here"


def test_the_adapter_replaces_aiocies_single_shot_consent_check() -> None:
    assert aioice.ice.Connection.query_consent is core._query_consent
    # what is replaced is still what the adapter was written against: one request, no retransmission
    original = inspect.getsource(core._original_query_consent)
    assert "retransmissions=0" in original and "CONSENT_FAILURES" in original and "CONSENT_INTERVAL" in original


async def test_late_answers_keep_consent(pair: tuple[aioice.Connection, aioice.Connection]) -> None:
    a, b = pair
    answer_late(b, 0.8)  # later than aioice's 0.5 s, within the retransmitted check's 3.5 s
    assert await still_open(a, b, 8.0), "consent expired although every check was answered"


async def test_late_answers_expire_aioices_own_check(pair: tuple[aioice.Connection, aioice.Connection],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = pair  # the same delay against aioice's own check: what closed the bench's publisher
    assert a._query_consent_task is not None
    a._query_consent_task.cancel()
    monkeypatch.setattr(aioice.ice.Connection, "query_consent", core._original_query_consent)
    a._query_consent_task = asyncio.ensure_future(a.query_consent())
    answer_late(b, 0.8)
    assert not await still_open(a, b, 10.0)


async def test_a_peer_that_stops_answering_still_loses_consent(
        pair: tuple[aioice.Connection, aioice.Connection]) -> None:
    a, b = pair
    answer_late(b, None)
    # 6 checks of 3.5 s each after ~0.2 s sleeps
    assert not await still_open(a, b, 6 * (0.5 + 1 + 2 + 0.25) + 3)
