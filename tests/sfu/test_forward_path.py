"""The slim forward path of sfu/media/aiortc_adapter/ (`wire`, the tap's accounting) against the installed aiortc.

The slim path must put on the wire exactly the bytes aiortc would, skip aiortc's depayloading and
send coroutines for real, and keep what receiver reports and REMB need; the classic path (kept for
benches) must still forward.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiortc import clock
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtcpSrPacket, RtpPacket
from peers import close, publish, spy_rtp, subscribe, until

from sfu.media.aiortc_adapter import packets_received, use_forward_path, use_host_addresses
from sfu.media.aiortc_adapter.wire import HeaderTemplate, ntp_now

MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"


@pytest.fixture(autouse=True)
async def loopback_ice() -> AsyncIterator[None]:
    use_host_addresses(["127.0.0.1"])
    yield
    use_host_addresses(None)
    use_forward_path("slim")


def extensions_map(*uris: str) -> HeaderExtensionsMap:
    m = HeaderExtensionsMap()
    m.configure(RTCRtpParameters(headerExtensions=[RTCRtpHeaderExtensionParameters(id=i, uri=u)
                                                   for i, u in enumerate(uris, start=1)]))
    return m


def aiortc_bytes(m: HeaderExtensionsMap, mid: str, ssrc: int, marker: int, pt: int, seq: int, ts: int, abs_t: int,
                 level: tuple[bool, int] | None, payload: bytes) -> bytes:
    p = RtpPacket(payload_type=pt, marker=marker, sequence_number=seq, timestamp=ts, ssrc=ssrc, payload=payload)
    p.extensions.mid, p.extensions.abs_send_time, p.extensions.audio_level = mid, abs_t, level
    return p.serialize(m)


def cases() -> Iterator[tuple[int, int, int, int, int, tuple[bool, int] | None, bytes]]:
    for marker, pt, seq, ts, abs_t in itertools.product((0, 1), (96, 111, 127), (0, 1, 65535), (0, 3000, 2**32 - 1),
                                                        (0, 0x123456, 0xFFFFFF)):
        yield marker, pt, seq, ts, abs_t, None, bytes(range(seq % 200))
    for level in ((True, 0), (False, 127), (True, 40)):
        yield 1, 111, 7, 960, 0xABCDEF, level, b"\x01\x02opus"


def count_jitter_buffer_adds(receiver: Any) -> list[int]:
    """A one-element count of the packets the receiver's jitter buffer is given from now on."""
    adds = [0]
    buffer = receiver._RTCRtpReceiver__jitter_buffer
    add = buffer.add

    def counting_add(packet: RtpPacket) -> Any:
        adds[0] += 1
        return add(packet)

    buffer.add = counting_add
    return adds


@pytest.mark.parametrize("uris", [(MID, ABS_SEND_TIME), (MID, ABS_SEND_TIME, AUDIO_LEVEL), (MID,), ()])
def test_header_template_makes_the_bytes_aiortc_serialises(uris: tuple[str, ...]) -> None:
    m = extensions_map(*uris)
    template = HeaderTemplate(m, "3", 0xDEADBEEF)
    for marker, pt, seq, ts, abs_t, level, payload in cases():
        want = aiortc_bytes(m, "3", 0xDEADBEEF, marker, pt, seq, ts, abs_t, level, payload)
        assert template.packet(marker, pt, seq, ts, abs_t, level, payload) == want, (uris, marker, pt, seq, level)


def test_ntp_now_is_aiortcs_clock() -> None:
    assert abs(ntp_now() - clock.current_ntp_time()) < 2**32 // 100  # within 10 ms


async def forwarding(name: str, packets: int) -> tuple[Any, Any, Any, Any, list[RtpPacket], list[int]]:
    """A publisher forwarded to a subscriber's slot "v" until `packets` arrived: (publisher, subscriber,
    the tap, the slot's port, the packets the subscriber got, the count of the tap's jitter-buffer adds)."""
    pub = await publish(name)
    sub = await subscribe()
    tap = pub.tracks["camera"]._tap
    assert tap is not None
    jitter_adds = count_jitter_buffer_adds(tap.receiver)
    received: list[RtpPacket] = []
    spy_rtp(sub.receiver("video"), received.append)
    slot = sub.endpoint.slots["v"]
    slot.attach(pub.tracks["camera"])
    await until(lambda: len(received) > packets, 10, f"{packets} forwarded packets")
    assert slot.port is not None
    return pub, sub, tap, slot.port, received, jitter_adds


async def test_slim_path_skips_depayloading_and_aioices_send_but_keeps_receiver_statistics() -> None:
    pub, sub, tap, port, received, jitter_adds = await forwarding("slim", 150)
    dtls: Any = port.sender.transport
    assert dtls._RTCDtlsTransport__tx_packets >= len(received)  # counted like aiortc's own sends
    ice = dtls.transport  # the server's ICE transport to this subscriber: aiortc sends through ice._send
    sends = [0]
    ice_send = ice._send

    async def counting_send(data: bytes) -> None:
        sends[0] += 1
        await ice_send(data)

    ice._send = counting_send
    await until(lambda: len(received) > 300, 10, "150 more")
    assert sends[0] < 20, "forwarded packets went through aiortc's and aioice's coroutines"  # RTCP still does
    assert jitter_adds[0] == 0, "the server depayloaded and jitter-buffered a forwarded packet"
    assert packets_received(tap.receiver) >= pub.tracks["camera"].stats.packets_in - 5  # receiver reports' counts
    steps = {(b.sequence_number - a.sequence_number) % 65536 for a, b in itertools.pairwise(received)}
    assert steps == {1}
    await close(sub, pub)


async def test_classic_path_still_forwards_through_aiortcs_receiver_and_objects() -> None:
    use_forward_path("classic")
    pub, sub, _, port, _, jitter_adds = await forwarding("classic", 100)
    history: dict[int, RtpPacket] = port.sender._RTCRtpSender__rtp_history  # type: ignore[attr-defined]
    assert history, "the classic path keeps aiortc's RtpPacket history"
    assert jitter_adds[0] > 50
    await close(sub, pub)


async def test_only_a_sender_that_sent_something_sends_reports() -> None:
    pub = await publish("reports")
    sub = await subscribe()
    slot, idle = sub.endpoint.slots["v"], sub.endpoint.slots["v2"]
    assert slot.port is not None and idle.port is not None
    reports: list[int] = []
    receiver = sub.receiver("video")
    handle_rtcp = receiver._handle_rtcp_packet

    async def on_rtcp(packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket):
            reports.append(packet.ssrc)
        await handle_rtcp(packet)

    for t in sub.pc.getTransceivers():  # every receiver of the subscriber's connection shares the RTCP
        if t.kind == "video":
            t.receiver._handle_rtcp_packet = on_rtcp
    slot.attach(pub.tracks["camera"])
    await until(lambda: reports.count(slot.port.ssrc) >= 3, 10, "three sender reports")  # type: ignore[union-attr]
    assert idle.port.ssrc not in reports and idle.port.reports_sent == 0
    assert slot.port.reports_sent >= 3
    slot.attach(None)  # a slot that goes quiet stops reporting after its last packets' report
    await asyncio.sleep(1.6)
    quiet = slot.port.reports_sent
    await asyncio.sleep(3.2)
    assert slot.port.reports_sent == quiet
    await close(sub, pub)


def test_an_unknown_forward_path_is_refused() -> None:
    with pytest.raises(ValueError, match="one of slim, classic"):
        use_forward_path("fast")
