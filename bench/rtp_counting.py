"""How bench/light_receiver.py's clients count the RTP that reaches them, without decoding it.

Two receive paths for one receiving connection:
- `wire` (`WireCounter`): each RTP datagram is counted from its header, which SRTP leaves in the
  clear, as aioice hands it over; no queue, no SRTP, no `RtpPacket`, no coroutine per packet;
- `aiortc` (`count_in_aiortc`, the earlier path): aiortc unprotects, parses and routes every packet
  to a counting packet handler.
Either way each stream's sequence numbers and timestamps feed aiortc's per-stream statistics, which
its receiver reports are built from, and a video stream's packets are looked into up to the first
packet of a keyframe (`Counts`). Every aiortc 1.16.0 internal used is in one section below; of the
server's adapter only `ReceiverTap` (a receive() without aiortc's decoder thread) and
`receiver_codecs` are borrowed.
"""

from __future__ import annotations

import functools
import logging
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCRtpReceiver
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import RtpPacket

from sfu.media.aiortc_adapter import ReceiverTap, receiver_codecs
from sfu.media.codecs import is_keyframe_start, is_rtx

logger = logging.getLogger("light")

Payload = bytes  # (Counts has a field named bytes)


@dataclass
class Counts:
    packets: int = 0
    bytes: int = 0  # RTP payload (on the wire path: padding included, see WireCounter)
    video: set[int] = field(default_factory=set)  # SSRCs of the video streams that arrived
    keyframed: set[int] = field(default_factory=set)  # those where the first packet of a keyframe came

    def saw(self, ssrc: int, codec: Any, payload: Payload) -> bool:
        """Note a video stream and whether this packet starts a keyframe; True once nothing is left to look
        for on this stream (not video, or its keyframe came)."""
        if not str(codec.mimeType).lower().startswith("video/") or is_rtx(codec):
            return True
        self.video.add(ssrc)
        if is_keyframe_start(codec.name, payload):
            self.keyframed.add(ssrc)
        return ssrc in self.keyframed

    @property
    def keyframe_seen(self) -> bool:
        """A keyframe started on every video stream that came (and at least one came)."""
        return bool(self.video) and self.video <= self.keyframed


# -- the aiortc 1.16.0 internals this tool uses, all here --------------------------------------------
# (besides sfu.media.aiortc_adapter's ReceiverTap: a receive() without aiortc's decoder thread)


def remote_streams(receiver: RTCRtpReceiver) -> dict[int, StreamStatistics]:
    """The per-SSRC statistics a receiver builds its receiver reports from (every ~1 s)."""
    streams: dict[int, StreamStatistics] = getattr(receiver, "_RTCRtpReceiver__remote_streams", {})
    return streams


def _ice_protocols(receiver: RTCRtpReceiver) -> list[Any]:
    """The aioice StunProtocols (one per local candidate: its UDP socket's datagrams) of the Connection
    under a receiver's transport, once it has gathered; each's `datagram_received(data, addr)` gets what
    arrives, answers STUN and hands the rest to the connection's queue, which aiortc's DTLS/SRTP reads."""
    ice: Any = receiver.transport.transport
    return list(ice._connection._protocols)


def _rx_srtp(receiver: RTCRtpReceiver) -> Any:
    """The transport's SRTP session for what arrives (pylibsrtp.Session), None before DTLS is done."""
    return getattr(receiver.transport, "_rx_srtp", None)


def _set_packet_handler(receiver: RTCRtpReceiver, handle: Callable[[RtpPacket, int], Awaitable[None]]) -> None:
    r: Any = receiver
    r._handle_rtp_packet = handle


# -- counting ---------------------------------------------------------------------------------------


async def _ignore(packet: RtpPacket, codec: Any) -> None:
    return None


def count_in_aiortc(receiver: RTCRtpReceiver, counts: Counts) -> None:
    """The `aiortc` receive path: aiortc takes every datagram through its queue, SRTP unprotect,
    `RtpPacket.parse` and routing; the receiver's packet handler is replaced by counting plus the
    statistics its receiver reports need (the path before the wire one; kept for `--compare`)."""
    # the server adapter's tap brings a receive() without aiortc's decoder thread (one per slot would
    # be hundreds of threads here, each joined on the event loop when its connection closes); its
    # packet handler is replaced by the counting one below
    ReceiverTap(receiver, _ignore)
    streams = remote_streams(receiver)
    codecs = receiver_codecs(receiver)  # the receiver's own dict: receive() fills it

    async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
        codec = codecs.get(packet.payload_type)
        if codec is None:
            return
        stream = streams.get(packet.ssrc)
        if stream is None:
            stream = streams[packet.ssrc] = StreamStatistics(codec.clockRate)
        stream.add(packet)
        counts.packets += 1
        counts.bytes += len(packet.payload)
        if packet.ssrc not in counts.keyframed:
            counts.saw(packet.ssrc, codec, packet.payload)

    _set_packet_handler(receiver, handle)


REPLAY_WINDOW = 128  # how far behind the highest sequence number a late packet still counts (libsrtp's)
_WINDOW_MASK = (1 << REPLAY_WINDOW) - 1


class WireStats(StreamStatistics):
    """aiortc's per-stream statistics (what its receiver reports read: highest sequence and cycles,
    packets received, jitter, fraction lost), fed a header's sequence number and timestamp directly:
    `count` does what `StreamStatistics.add(packet)` does in aiortc 1.16.0, in a quarter of the time.
    A packet repeated within the last REPLAY_WINDOW, or older than that, is not counted (False): on
    aiortc's path SRTP's replay protection drops both, so the two paths count the same packets."""

    def __init__(self, clockrate: int) -> None:
        super().__init__(clockrate)
        self._seen = 0  # bit i: the packet i behind max_seq came

    def count(self, seq: int, timestamp: int) -> bool:
        max_seq = self.max_seq
        if max_seq is None:
            self.base_seq = seq
            self._seen = 1
        else:
            ahead = (seq - max_seq) & 0xFFFF
            if ahead == 0 or ahead >= 0x8000:  # not after the highest so far: late, or repeated
                behind = (max_seq - seq) & 0xFFFF
                if behind >= REPLAY_WINDOW or self._seen >> behind & 1:
                    return False
                self._seen |= 1 << behind
                self.packets_received += 1
                return True
            self._seen = (self._seen << ahead | 1) & _WINDOW_MASK
        self.packets_received += 1
        arrival = int(time.time() * self._clockrate)
        if max_seq is not None and seq < max_seq:
            self.cycles += 1 << 16
        self.max_seq = seq
        last = self._last_timestamp
        if timestamp != last and self.packets_received > 1 and last is not None and self._last_arrival is not None:
            diff = abs((arrival - self._last_arrival) - (timestamp - last))
            self._jitter_q4 += diff - ((self._jitter_q4 + 8) >> 4)
        self._last_arrival = arrival
        self._last_timestamp = timestamp
        return True


class _WireStream:
    __slots__ = ("codec", "look", "receiver", "stats")

    def __init__(self, stats: WireStats, codec: Any, receiver: RTCRtpReceiver) -> None:
        self.stats = stats
        self.codec = codec
        self.receiver = receiver
        self.look = True  # unprotect packets until there is nothing left to look for (Counts.saw)


_HEAD = struct.Struct("!BBHII")  # V/P/X/CC, M/PT, sequence number, timestamp, SSRC
_EXTENSION = struct.Struct("!H")  # a header extension's length in 32-bit words (after its 16-bit profile)


def rtp_header_length(data: bytes) -> int:
    """12 bytes, the CSRCs, and the header extension (4 bytes + its length in 32-bit words)."""
    n = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:
        n += 4 + 4 * _EXTENSION.unpack_from(data, n + 2)[0]
    return n


class WireCounter:
    """The `wire` receive path of one receiving connection: RTP counted from each datagram's header,
    which SRTP leaves in the clear (sequence number, timestamp, SSRC, payload type), as the socket
    hands the datagram over; no STUN parse, no queue, no SRTP, no RtpPacket, no coroutine per packet.
    STUN (ICE consent), DTLS and SRTCP (the server's sender reports: the round trip of the receiver
    reports) still take aioice's and aiortc's own path.

    Each stream's sequence numbers and timestamps feed the StreamStatistics its receiver's reports
    are built from (loss, highest sequence, jitter), so the server sees the same receiver reports.
    SRTP is unprotected only for a stream's first packets: the first, which gives the length of the
    authentication tag, and a video stream's up to the first packet of a keyframe. Unprotect would
    also authenticate each packet; on loopback from our own server nothing else arrives, and what
    is counted is what the server sent (nor is a datagram's source address checked against the ICE
    pair, as the server's adapter does). `bytes` counts payload with RTP padding (encrypted: unseen).

    Make it before the connection's local description is set (the receivers' taps must be in place
    before aiortc calls receive()), `attach()` it once that is set (ICE has gathered: the sockets exist).
    """

    def __init__(self, receivers: list[RTCRtpReceiver], counts: Counts) -> None:
        self.receivers = receivers
        self.counts = counts
        self.streams: dict[int, _WireStream] = {}
        self.tag = 0  # SRTP authentication tag length (learned from the first packet unprotected)
        self.dropped = 0  # RTP datagrams not counted (no codec yet, unprotect failed, repeated or too late)
        for receiver in receivers:
            ReceiverTap(receiver, _ignore)  # receive() without a decoder thread; RTP never reaches it

    def attach(self) -> None:
        protocols = {id(p): p for r in self.receivers for p in _ice_protocols(r)}  # one socket with BUNDLE
        if not protocols:
            raise RuntimeError("WireCounter.attach: the connection has no ICE socket yet (not gathered)")
        for protocol in protocols.values():
            protocol.datagram_received = functools.partial(self.datagram, protocol.datagram_received)

    def datagram(self, deliver: Callable[[bytes, Any], None], data: bytes, addr: Any) -> None:
        """One socket's `datagram_received`: `deliver` is aioice's own (STUN, then the queue aiortc reads)."""
        if len(data) < 12 or not 127 < data[0] < 192 or 192 <= data[1] <= 208:
            deliver(data, addr)  # STUN, DTLS, SRTCP: aioice's and aiortc's path
            return
        b0, b1, seq, timestamp, ssrc = _HEAD.unpack_from(data)
        stream = self.streams.get(ssrc)
        if stream is None:
            stream = self._new_stream(ssrc, b1 & 0x7F)
            if stream is None:
                self.dropped += 1
                return
        if stream.look and not self._look_inside(stream, ssrc, data):
            return
        if not stream.stats.count(seq, timestamp):
            self.dropped += 1
            return
        counts = self.counts
        counts.packets += 1
        n = 12 + 4 * (b0 & 0x0F)  # rtp_header_length, inline: this runs for every packet
        if b0 & 0x10:
            n += 4 + 4 * _EXTENSION.unpack_from(data, n + 2)[0]
        counts.bytes += len(data) - n - self.tag

    def _new_stream(self, ssrc: int, payload_type: int) -> _WireStream | None:
        for receiver in self.receivers:
            codec = receiver_codecs(receiver).get(payload_type)  # filled by receive(), once DTLS is up
            if codec is not None:
                stats = remote_streams(receiver)[ssrc] = WireStats(codec.clockRate)
                stream = self.streams[ssrc] = _WireStream(stats, codec, receiver)
                return stream
        return None

    def _look_inside(self, stream: _WireStream, ssrc: int, data: bytes) -> bool:
        srtp = _rx_srtp(stream.receiver)
        try:
            plain: bytes = srtp.unprotect(data)
        except Exception as exc:  # pylibsrtp.Error; None: DTLS not done
            logger.debug("SRTP unprotect failed: %s", exc)
            self.dropped += 1
            return False
        self.tag = len(data) - len(plain)
        end = len(plain) - (plain[-1] if plain[0] & 0x20 else 0)  # RTP padding: its last byte says how much
        stream.look = not self.counts.saw(ssrc, stream.codec, plain[rtp_header_length(plain):end])
        return True


RECEIVE_PATHS = ("wire", "aiortc")
