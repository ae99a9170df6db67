"""Process-wide settings and what the other parts share: aiortc fixes, decoder counting, ICE addresses."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aioice.ice
import aioice.stun
from aiortc import RTCDtlsTransport, RTCPeerConnection
from aiortc import rtcrtpreceiver as _receiver_mod
from aiortc import rtcrtpsender as _sender_mod
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpReceiveParameters
from aiortc.rtp import RtcpPacket, RtpPacket

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




# -- which way a forwarded packet goes through aiortc -------------------------------------------

FORWARD_PATHS = ("slim", "classic")


@dataclass
class ForwardPath:
    """Process-wide, set once at start (`use_forward_path`); each tap and port reads it when made.

    slim: a forwarded publisher's packets are counted for receiver reports and REMB but never
    depayloaded or jitter-buffered, and a subscriber's packet is written as bytes (a header made
    from a per-sender template) straight through SRTP to the UDP socket of the nominated ICE pair.
    classic: aiortc's receiver handles every packet in full, and each subscriber's packet is a new
    `RtpPacket`, serialised and sent through aiortc's and aioice's coroutines (kept for comparison).
    """

    slim: bool = True


forward_path = ForwardPath()


def use_forward_path(name: str) -> None:
    """"slim" (the default) or "classic" for the taps and ports made from now on."""
    if name not in FORWARD_PATHS:
        raise ValueError(f"forward path {name!r}: one of {', '.join(FORWARD_PATHS)}")
    forward_path.slim = name == "slim"


# -- one bad packet never takes a connection down ----------------------------------------------
#
# aiortc's DTLS transport reads datagrams in one task, and any exception below it ends that task:
# the whole connection (with max-bundle: every track of that classroom) goes dark. RtpPacket.parse
# raises struct.error, not the ValueError aiortc catches, on a header extension shorter than its
# id says (found by tests/fuzz/test_fuzz_media.py: an audio-level extension of 0 bytes); and a
# handler of ours that trips on one odd packet must cost that packet, not the lesson.

WARN_EVERY_S = 10.0  # a handler failure is logged with its traceback at most this often per transport


def _handler_failed(transport: RTCDtlsTransport, what: str) -> None:
    now = asyncio.get_running_loop().time()
    failures = getattr(transport, "_twinclass_handler_failures", 0) + 1
    transport._twinclass_handler_failures = failures  # type: ignore[attr-defined]
    if now - getattr(transport, "_twinclass_warned_at", -WARN_EVERY_S) >= WARN_EVERY_S:
        transport._twinclass_warned_at = now  # type: ignore[attr-defined]
        logger.warning("handling an incoming %s packet failed (%d so far on this connection); packet dropped",
                       what, failures, exc_info=True)


async def _handle_rtp_data(self: RTCDtlsTransport, data: bytes, arrival_time_ms: int) -> None:
    """aiortc's `_handle_rtp_data`, dropping what does not parse and what a handler fails on."""
    try:
        packet = RtpPacket.parse(data, self._rtp_header_extensions_map)
    except Exception as exc:  # ValueError, struct.error, IndexError: malformed input
        logger.debug("malformed RTP packet dropped: %s", exc)
        return
    receiver = self._rtp_router.route_rtp(packet)
    if receiver is None:
        return
    try:
        await receiver._handle_rtp_packet(packet, arrival_time_ms=arrival_time_ms)
    except asyncio.CancelledError:
        raise
    except Exception:
        _handler_failed(self, "RTP")


async def _handle_rtcp_data(self: RTCDtlsTransport, data: bytes) -> None:
    """aiortc's `_handle_rtcp_data`, with the same two guards."""
    try:
        packets = RtcpPacket.parse(data)
    except Exception as exc:
        logger.debug("malformed RTCP packet dropped: %s", exc)
        return
    for packet in packets:
        for recipient in self._rtp_router.route_rtcp(packet):
            try:
                await recipient._handle_rtcp_packet(packet)
            except asyncio.CancelledError:
                raise
            except Exception:
                _handler_failed(self, "RTCP")


RTCDtlsTransport._handle_rtp_data = _handle_rtp_data  # type: ignore[method-assign]
RTCDtlsTransport._handle_rtcp_data = _handle_rtcp_data  # type: ignore[method-assign]


# -- media only from an address ICE has checked -----------------------------------------------
#
# aioice hands every datagram that is not STUN to the connection, whoever sent it: a stranger
# who learns a media port (it is in the SDP) could write into a classroom's DTLS transport, and an
# empty datagram made aiortc's reader fail on `data[0]` and end the connection (found by
# tests/fuzz/test_fuzz_media.py). STUN still goes to aioice (its checks are authenticated); media
# is taken only from the remote address of a candidate pair on the connection's check list.

_original_datagram_received = aioice.ice.StunProtocol.datagram_received


def _datagram_received(self: aioice.ice.StunProtocol, data: bytes | str, addr: tuple[Any, ...]) -> None:
    if not data:
        return
    if isinstance(data, bytes) and data[0] > 3:  # STUN starts with 0b00: anything else is media
        source = (addr[0], addr[1])
        if not any(pair.remote_addr == source for pair in getattr(self.receiver, "_check_list", ())):
            logger.debug("datagram from %s dropped: no candidate pair with that address", source)
            return
    _original_datagram_received(self, data, addr)


aioice.ice.StunProtocol.datagram_received = _datagram_received  # type: ignore[method-assign]


# -- consent freshness that a busy peer does not fail (RFC 7675) -----------------------------
#
# aioice checks consent every ~5 s with ONE STUN request that must be answered within 0.5 s (no
# retransmission), and closes the connection after 6 misses in a row. On a starved machine the
# answers do come, only later than 0.5 s: with 100 light viewers on two loaded cores the master's
# publishing connection closed ("Consent to send expired") while both ends were alive, and the
# lesson lost its picture (bench/broadcast.py; the "publisher closed at 48 observers" of
# bench/sfu_forwarding.py). Here each check is retransmitted as STUN transactions are (after 0.5,
# 1 and 2 s; an answer to any copy counts): a peer that answers within ~3.5 s keeps consent, and
# one that stopped answering still loses it after 6 checks (~30-50 s).

CONSENT_RETRANSMISSIONS = 2
_original_query_consent = aioice.ice.Connection.query_consent


async def _query_consent(self: aioice.ice.Connection) -> None:
    """aioice 0.13's `Connection.query_consent`, each check retransmitted CONSENT_RETRANSMISSIONS times."""
    assert self.remote_password is not None
    c: Any = self
    failures = 0
    while True:
        await asyncio.sleep(aioice.ice.CONSENT_INTERVAL * (0.8 + 0.4 * random.random()))
        for pair in c._nominated.values():
            request = c.build_request(pair, nominate=False)
            try:
                await pair.protocol.request(request, pair.remote_addr,
                                            integrity_key=self.remote_password.encode("utf8"),
                                            retransmissions=CONSENT_RETRANSMISSIONS)
                failures = 0
            except aioice.stun.TransactionError:
                failures += 1
            if failures >= aioice.ice.CONSENT_FAILURES:
                aioice.ice.logger.info("%s Consent to send expired", self)
                c._query_consent_task = None
                await self.close()
                return


aioice.ice.Connection.query_consent = _query_consent  # type: ignore[method-assign]


# -- closing a peer connection whose remote description failed half-way ----------------------
#
# An offer whose m-lines aiortc could only partly apply (e.g. the audio `m=` line dropped, its
# attributes left under the video section) leaves a transceiver with no transport, and aiortc's
# own `close()` then fails on `transceiver.receiver.transport.stop()`: the refusal of that offer
# raised, the session got no answer and the connection's other transports kept running (found by
# bench/fuzz.py). What aiortc's close leaves undone is finished here, transport by transport.

async def close_peer_connection(pc: RTCPeerConnection) -> None:
    """`pc.close()`, finished by hand where aiortc stops on a transceiver that has no transport."""
    try:
        await pc.close()
        return
    except AttributeError:
        logger.debug("aiortc could not close a peer connection cleanly; closing its transports", exc_info=True)
    for transceiver in pc.getTransceivers():
        for part in (transceiver.receiver, transceiver.sender):
            dtls = getattr(part, "transport", None)
            for transport in (dtls, getattr(dtls, "transport", None)):
                if transport is not None:
                    try:
                        await transport.stop()
                    except Exception:  # already stopped, or never started
                        logger.debug("stopping %r", transport, exc_info=True)
    p: Any = pc
    for update in ("__updateIceGatheringState", "__updateIceConnectionState", "__updateConnectionState"):
        getattr(p, f"_RTCPeerConnection{update}")()
    pc.remove_all_listeners()
    closed = p._RTCPeerConnection__isClosed
    if isinstance(closed, asyncio.Future) and not closed.done():
        closed.set_result(True)
