"""Process-wide settings and what the other parts share: aiortc fixes, decoder counting, ICE addresses."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aioice.ice
from aiortc import RTCDtlsTransport
from aiortc import rtcrtpreceiver as _receiver_mod
from aiortc import rtcrtpsender as _sender_mod
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpReceiveParameters
from aiortc.rtp import (
    RtpPacket,
)

logger = logging.getLogger(__name__)

RTP_HISTORY_SIZE: int = _sender_mod.RTP_HISTORY_SIZE

_pending: set[asyncio.Future[None]] = set()  # fire-and-forget RTCP sends, kept alive until done

PacketHandler = Callable[[RtpPacket, RTCRtpCodecParameters], Awaitable[None]]
# (arrival ms, the delay detector overuses?) -> the REMB to send the publisher now, or None
RembPolicy = Callable[[int, bool], int | None]
# (sender ssrc, receiver report or None, round trip s or None, REMB bps or None, packets we had sent)
RtcpObserver = Callable[[int, Any, float | None, int | None, int], None]
EncodedFrameHandler = Callable[[RTCRtpCodecParameters, Any], None]

def _fire(coro: Awaitable[None]) -> None:
    task = asyncio.ensure_future(coro)
    _pending.add(task)
    task.add_done_callback(_pending.discard)


# -- process-wide settings -------------------------------------------------------------------

_original_get_host_addresses = aioice.ice.get_host_addresses
_decoder_count = [0]  # mutable cell, not rebound: counts decoders aiortc creates here
_original_get_decoder = _receiver_mod.get_decoder


def _counting_get_decoder(codec: RTCRtpCodecParameters) -> Any:
    _decoder_count[0] += 1
    return _original_get_decoder(codec)


_receiver_mod.get_decoder = _counting_get_decoder


def decoders_created() -> int:
    """How many media decoders were created in this process: the server's stay 0 unless a
    lower tier is being made (`make_decoder`, one per tier)."""
    return _decoder_count[0]


def make_decoder(codec: RTCRtpCodecParameters) -> Any:
    """An aiortc decoder for this codec (`decode(JitterFrame) -> frames`), counted like aiortc's own."""
    return _counting_get_decoder(codec)


def _register_rtp_receiver_with_rtx(self: RTCDtlsTransport, receiver: Any, parameters: RTCRtpReceiveParameters) -> None:
    """aiortc's `_register_rtp_receiver`, plus the RTX SSRCs of the receiver's encodings.

    aiortc routes an incoming packet by SSRC, else by a payload type only one receiver has. It
    registers only the media SSRCs, so with two video m-lines on one transport (every subscriber
    connection of ours; a master publishing camera and courseware) the payload type is shared
    and every retransmission (RTX, its own SSRC) was dropped unrouted: NACKs "worked" in tests
    with one video track and repaired nothing in a lesson.
    """
    _original_register_rtp_receiver(self, receiver, parameters)
    router = self._rtp_router
    for encoding in parameters.encodings:
        if encoding.rtx is not None and encoding.rtx.ssrc not in router.ssrc_table:
            router.ssrc_table[encoding.rtx.ssrc] = receiver


_original_register_rtp_receiver = RTCDtlsTransport._register_rtp_receiver
RTCDtlsTransport._register_rtp_receiver = _register_rtp_receiver_with_rtx  # type: ignore[method-assign]


def use_host_addresses(addresses: Sequence[str] | None) -> None:
    """Gather ICE host candidates only on these addresses (None: every interface, aioice's way).

    aioice never offers 127.0.0.1 by itself; a lesson on one machine (tests, the demo) needs it.
    """
    if addresses is None:
        aioice.ice.get_host_addresses = _original_get_host_addresses
        return
    fixed = list(addresses)

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in fixed if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = get_host_addresses


