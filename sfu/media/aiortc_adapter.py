"""Every use of aiortc/aioice internals, in one place (aiortc is pinned to 1.16.0 for this).

Forwarding on aiortc needs hooks it does not offer publicly:
- a receive tap: see each RTP packet (RTX unwrapped) before aiortc's own handling, which still
  runs so NACKs, REMB and receiver reports keep flowing, but with no decoder thread at all;
- a send port: write already-encoded packets through an `RTCRtpSender` with its SSRC, MID and
  header-extension ids, kept in its history (so NACKs are answered) and counted (so sender
  reports stay valid), and learn when the subscriber asks for a keyframe;
- keyframe requests upstream (PLI) and the host addresses ICE gathers;
- a datagram hook on a connection's ICE transports, both ways (the classroom terminal's
  user-space link impairment, `classroom_client/link.py`, runs through it: no `tc netem` here).

`tests/sfu/test_aiortc_adapter.py` checks each hook against the installed aiortc, so an upgrade
that moves any of them fails loudly there instead of silently in a lesson.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aioice.ice
import aiortc
from aiortc import RTCDtlsTransport, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver, clock
from aiortc import rtcrtpreceiver as _receiver_mod
from aiortc import rtcrtpsender as _sender_mod
from aiortc.codecs import is_rtx
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rate import BandwidthUsage
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpReceiveParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpSrPacket,
    RtpPacket,
    unpack_remb_fci,
    unwrap_rtx,
    wrap_rtx,
)
from aiortc.utils import uint16_add

AIORTC_VERSION = "1.16.0"  # every private name used below was read from this release

# Checked before any of aiortc is patched below: another release may have moved what we use.
if aiortc.__version__ != AIORTC_VERSION:
    raise ImportError(
        f"sfu.media.aiortc_adapter relies on aiortc {AIORTC_VERSION} internals, but aiortc {aiortc.__version__} "
        f"is installed: install aiortc=={AIORTC_VERSION} (pyproject.toml pins it), or port this module and "
        "run tests/sfu/test_aiortc_adapter.py against the new release"
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


# -- receive side ----------------------------------------------------------------------------


def receiver_codecs(receiver: RTCRtpReceiver) -> dict[int, RTCRtpCodecParameters]:
    codecs: dict[int, RTCRtpCodecParameters] = receiver._RTCRtpReceiver__codecs  # type: ignore[attr-defined]
    return codecs


def _receive_without_decoder(receiver: RTCRtpReceiver) -> Callable[[RTCRtpReceiveParameters], Awaitable[None]]:
    """RTCRtpReceiver.receive as aiortc 1.16.0 has it, minus the decoder thread."""

    async def receive(parameters: RTCRtpReceiveParameters) -> None:
        r: Any = receiver
        if r._RTCRtpReceiver__started:
            return
        for codec in parameters.codecs:
            r._RTCRtpReceiver__codecs[codec.payloadType] = codec
        for encoding in parameters.encodings:
            if encoding.rtx:
                r._RTCRtpReceiver__rtx_ssrc[encoding.rtx.ssrc] = encoding.ssrc
        r._RTCRtpReceiver__transport._register_rtp_receiver(receiver, parameters)
        r._RTCRtpReceiver__rtcp_task = asyncio.ensure_future(receiver._run_rtcp())
        r._RTCRtpReceiver__started = True

    return receive


class ReceiverTap:
    """Sees every RTP packet of one receiver first; aiortc still handles it, but never decodes."""

    def __init__(self, receiver: RTCRtpReceiver, on_packet: PacketHandler) -> None:
        self.receiver = receiver
        self._on_packet = on_packet
        self._original = receiver._handle_rtp_packet
        r: Any = receiver
        r.receive = _receive_without_decoder(receiver)
        r._handle_rtp_packet = self._handle_rtp_packet
        self.media_ssrc: int | None = None
        self.last_was_retransmission = False  # the packet being forwarded came as RTX (a repair)
        # aiortc NACKs each gap once; the forwarding plane's NackTracker asks again (send_nack)
        r._RTCRtpReceiver__nack_generator = None

    def set_remb_policy(self, policy: RembPolicy) -> None:
        """Decide the REMBs sent to the publisher ourselves; aiortc's estimator only judges delay.

        aiortc's AIMD estimate follows the incoming rate, so it moves with every change of the
        picture, and each move of more than 10 % restarts an aiortc publisher's VP8 encoder.
        """
        estimator = self.receiver._RTCRtpReceiver__remote_bitrate_estimator  # type: ignore[attr-defined]
        if estimator is None:  # audio: aiortc estimates video only
            return
        original_add = estimator.add

        def add(arrival_time_ms: int, abs_send_time: int, payload_size: int, ssrc: int) -> tuple[int, list[int]] | None:
            original_add(arrival_time_ms=arrival_time_ms, abs_send_time=abs_send_time,
                         payload_size=payload_size, ssrc=ssrc)
            bitrate = policy(arrival_time_ms, estimator.detector.state() == BandwidthUsage.OVERUSING)
            if bitrate is None:
                return None
            return bitrate, list(estimator.ssrcs.keys())

        estimator.add = add

    @property
    def codecs(self) -> dict[int, RTCRtpCodecParameters]:
        return receiver_codecs(self.receiver)

    async def _handle_rtp_packet(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        codecs = receiver_codecs(self.receiver)
        codec = codecs.get(packet.payload_type)
        if codec is not None:
            forward = packet
            if is_rtx(codec):
                rtx_ssrc: dict[int, int] = self.receiver._RTCRtpReceiver__rtx_ssrc  # type: ignore[attr-defined]
                apt = codec.parameters.get("apt")
                original_ssrc = rtx_ssrc.get(packet.ssrc)
                if original_ssrc is not None and isinstance(apt, int) and apt in codecs and len(packet.payload) >= 2:
                    forward = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
                    codec = codecs[apt]
                    self.last_was_retransmission = True
                else:
                    forward = None  # type: ignore[assignment]
            else:
                self.last_was_retransmission = False
            if forward is not None:
                if self.media_ssrc is None:
                    self.media_ssrc = forward.ssrc
                try:
                    await self._on_packet(forward, codec)
                except Exception:  # a bug in one track's fan-out must not kill the transport
                    logger.exception("forwarding failed")
        await self._original(packet, arrival_time_ms)

    def request_keyframe(self) -> None:
        """Send a PLI to the publisher for this track."""
        if self.media_ssrc is None:
            return
        _fire(self.receiver._send_rtcp_pli(self.media_ssrc))

    def send_nack(self, lost: list[int]) -> None:
        """Ask the publisher to retransmit these sequence numbers (RTCP generic NACK)."""
        if self.media_ssrc is None or not lost:
            return
        _fire(self.receiver._send_rtcp_nack(self.media_ssrc, lost))


class _DecodeQueueToSink(queue.Queue):  # type: ignore[type-arg]
    """Stands in for a receiver's decoder queue: hands encoded frames to a sink instead."""

    def __init__(self, sink: EncodedFrameHandler) -> None:
        super().__init__()
        self._sink = sink

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            return
        codec, encoded_frame = item
        self._sink(codec, encoded_frame)


class _NoThread:
    """Stands in for the decoder thread that capture never starts (aiortc joins it on stop)."""

    def join(self) -> None:
        return None


def capture_encoded_frames(receiver: RTCRtpReceiver, sink: EncodedFrameHandler) -> None:
    """Deliver the receiver's reassembled encoded frames to `sink(codec, frame)`, never decoding.

    `frame.data` holds the depayloaded bitstream, `frame.timestamp` the RTP timestamp mapped to
    start at 0. Used by the recorder to mux tracks without transcoding.
    """
    r: Any = receiver
    r.receive = _receive_without_decoder(receiver)
    r._RTCRtpReceiver__decoder_queue = _DecodeQueueToSink(sink)
    r._RTCRtpReceiver__decoder_thread = _NoThread()  # aiortc queues frames only when this is set


def packets_received(receiver: RTCRtpReceiver) -> int:
    """RTP packets this receiver has taken in (all its sources)."""
    streams: dict[int, Any] = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
    return sum(int(s.packets_received) for s in streams.values())


def restart_video_reassembly(receiver: RTCRtpReceiver) -> None:
    """Unstick a receiving video track and ask the sender for a keyframe.

    After a loss that retransmission could not repair, aiortc's jitter buffer waits for the
    missing packet until ~500 more have arrived (seconds of frozen picture). A classroom
    terminal calls this when packets keep arriving but no frame has come out for a while.
    """
    r: Any = receiver
    r._RTCRtpReceiver__jitter_buffer = JitterBuffer(capacity=512, is_video=True)
    for ssrc in list(r._RTCRtpReceiver__remote_streams):
        _fire(receiver._send_rtcp_pli(ssrc))


# -- send side -------------------------------------------------------------------------------


class SenderPort:
    """Writes forwarded packets through an RTCRtpSender whose own encoder loop never runs."""

    def __init__(
        self,
        transceiver: RTCRtpTransceiver,
        on_started: Callable[[], None],
        on_keyframe_request: Callable[[], None],
    ) -> None:
        self.transceiver = transceiver
        self.sender: RTCRtpSender = transceiver.sender
        self.started = False
        self._on_started = on_started
        s: Any = self.sender
        s._run_rtp = self._run_rtp
        s._send_keyframe = on_keyframe_request
        # aiortc's own _retransmit wraps every repair in the RTX payload type paired with the
        # first negotiated codec; a slot carries whichever codec its source publishes.
        s._retransmit = self._retransmit
        self._handle_rtcp_original = self.sender._handle_rtcp_packet
        s._handle_rtcp_packet = self._handle_rtcp_packet
        self._rtcp_observer: RtcpObserver | None = None
        self.packets_sent = 0
        self.retransmissions = 0
        self.retransmit_misses = 0
        self.retransmits_throttled = 0
        self._repairs: dict[int, tuple[int, float]] = {}  # seq -> (times resent, when last)
        self._sent_window: list[tuple[float, int]] = []  # (when, payload bytes): the last second
        self._repair_window: list[tuple[float, int]] = []
        self._rtx_payload_types: dict[int, int] | None = None  # media PT -> its RTX PT (apt)
        self._last_seq: int | None = None  # highest sequence number sent (the SR's RTP/NTP pair)

    async def _run_rtp(self, codec: RTCRtpCodecParameters) -> None:
        s: Any = self.sender
        s._RTCRtpSender__rtp_started.set()
        self.started = True
        try:
            self._on_started()
            await asyncio.Event().wait()  # until stop() cancels us
        except asyncio.CancelledError:
            pass
        finally:
            self.started = False
            s._RTCRtpSender__rtp_exited.set()

    def observe_rtcp(self, observer: RtcpObserver) -> None:
        """Be told what the subscriber reports about this sender: loss, round trip, REMB."""
        self._rtcp_observer = observer

    async def _handle_rtcp_packet(self, packet: Any) -> None:
        await self._handle_rtcp_original(packet)  # aiortc: RTT, NACK -> _retransmit, PLI -> keyframe
        observer = self._rtcp_observer
        if observer is None:
            return
        ssrc = self.ssrc
        if isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            for report in packet.reports:
                if report.ssrc == ssrc:  # an RtcpReceiverInfo: fraction_lost, packets_lost, highest_sequence
                    rtt: float | None = self.sender._RTCRtpSender__rtt  # type: ignore[attr-defined]
                    observer(ssrc, report, rtt, None, self.packets_sent)
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                return
            if ssrc in ssrcs:
                observer(ssrc, None, None, bitrate // max(1, len(ssrcs)), self.packets_sent)

    @property
    def octets_sent(self) -> int:
        """Payload bytes sent so far (what the sender report counts)."""
        s: Any = self.sender
        return int(s._RTCRtpSender__octet_count)

    @property
    def codecs(self) -> list[RTCRtpCodecParameters]:
        """The codecs negotiated with the subscriber for this slot (with its payload types)."""
        codecs: list[RTCRtpCodecParameters] = self.transceiver._codecs
        return codecs

    def rtx_payload_type(self, payload_type: int) -> int | None:
        """The subscriber's RTX payload type whose apt is this media payload type, if negotiated."""
        if not self._rtx_payload_types:  # computed once the subscriber's answer gave the codecs
            self._rtx_payload_types = {}
            for c in self.codecs:
                apt = c.parameters.get("apt")
                if is_rtx(c) and c.payloadType is not None and isinstance(apt, int):
                    self._rtx_payload_types[apt] = c.payloadType
        return self._rtx_payload_types.get(payload_type)

    async def _retransmit(self, sequence_number: int) -> None:
        """Answer a subscriber's NACK from the history, as RTX of the packet's own codec.

        Throttled, so a congested subscriber's NACKs cannot fill its own link with repairs: a
        packet is resent at most `MAX_REPAIRS` times, not twice within 0.8 round trips, and
        repairs stay within `REPAIR_SHARE` of what this sender sent in the last second.
        """
        s: Any = self.sender
        packet: RtpPacket | None = s._RTCRtpSender__rtp_history.get(sequence_number % RTP_HISTORY_SIZE)
        if packet is None or packet.sequence_number != sequence_number:
            self.retransmit_misses += 1  # never sent (lost upstream), or older than the history
            return
        if not self._repair_allowed(sequence_number, len(packet.payload)):
            self.retransmits_throttled += 1
            return
        rtx_pt = self.rtx_payload_type(packet.payload_type)
        if rtx_pt is not None:
            packet = wrap_rtx(
                packet,
                payload_type=rtx_pt,
                sequence_number=s._RTCRtpSender__rtx_sequence_number,
                ssrc=self.sender._rtx_ssrc,
            )
            s._RTCRtpSender__rtx_sequence_number = uint16_add(s._RTCRtpSender__rtx_sequence_number, 1)
        # (no RTX for this codec: resend the packet as it was, which a receiver also accepts)
        try:
            await self.sender.transport._send_rtp(packet.serialize(s._RTCRtpSender__rtp_header_extensions_map))
        except ConnectionError:
            return
        self.retransmissions += 1

    MAX_REPAIRS = 3
    REPAIR_SHARE = 0.3

    def _repair_allowed(self, seq: int, size: int) -> bool:
        now = time.monotonic()
        rtt: float = self.sender._RTCRtpSender__rtt or 0.1  # type: ignore[attr-defined]
        times, last = self._repairs.get(seq, (0, -1e9))
        if times >= self.MAX_REPAIRS or now - last < 0.8 * rtt:
            return False
        for window in (self._sent_window, self._repair_window):
            while window and now - window[0][0] > 1.0:
                window.pop(0)
        sent = sum(n for _, n in self._sent_window)
        repaired = sum(n for _, n in self._repair_window)
        if repaired + size > max(self.REPAIR_SHARE * sent, 3000):
            return False
        self._repairs[seq] = (times + 1, now)
        if len(self._repairs) > 2 * RTP_HISTORY_SIZE:
            for old in sorted(self._repairs, key=lambda k: self._repairs[k][1])[:RTP_HISTORY_SIZE]:
                del self._repairs[old]
        self._repair_window.append((now, size))
        return True

    @property
    def ssrc(self) -> int:
        ssrc: int = self.sender._ssrc
        return ssrc

    async def write(self, packet: RtpPacket, payload_type: int, sequence_number: int, timestamp: int) -> None:
        """Send one packet as this sender's own (SSRC, PT, seq, ts and extensions rewritten)."""
        s: Any = self.sender
        out = RtpPacket(
            payload_type=payload_type,
            marker=packet.marker,
            sequence_number=sequence_number,
            timestamp=timestamp,
            ssrc=self.sender._ssrc,
            payload=packet.payload,
        )
        out.extensions.mid = s._RTCRtpSender__mid
        out.extensions.abs_send_time = (clock.current_ntp_time() >> 14) & 0x00FFFFFF
        out.extensions.audio_level = packet.extensions.audio_level
        s._RTCRtpSender__rtp_history[sequence_number % RTP_HISTORY_SIZE] = out
        data = out.serialize(s._RTCRtpSender__rtp_header_extensions_map)
        try:
            await self.sender.transport._send_rtp(data)
        except ConnectionError:
            return
        if self._last_seq is None or 0 < (sequence_number - self._last_seq) % 65536 < 0x8000:
            # the sender report pairs "now" with the newest RTP timestamp: a late or reordered
            # packet (older timestamp) must not move that pair backwards
            self._last_seq = sequence_number
            s._RTCRtpSender__ntp_timestamp = clock.current_ntp_time()
            s._RTCRtpSender__rtp_timestamp = timestamp
        s._RTCRtpSender__octet_count += len(packet.payload)
        s._RTCRtpSender__packet_count += 1
        self.packets_sent += 1
        self._sent_window.append((time.monotonic(), len(packet.payload)))

    def sender_counters(self) -> tuple[int, int, int]:
        """(packet count, octet count, last RTP timestamp) as the next sender report gives them."""
        s: Any = self.sender
        return (s._RTCRtpSender__packet_count, s._RTCRtpSender__octet_count, s._RTCRtpSender__rtp_timestamp)

    def sender_report_clock(self) -> tuple[int, int]:
        """(NTP time, RTP timestamp): the pair the next sender report maps wall clock to media time with."""
        s: Any = self.sender
        return (s._RTCRtpSender__ntp_timestamp, s._RTCRtpSender__rtp_timestamp)


# -- datagram hook (for a user-space link impairment) -----------------------------------------

DatagramSink = Callable[[bytes], None]
DatagramHook = Callable[[bytes, DatagramSink], None]


def wrap_ice_datagrams(pc: RTCPeerConnection, send: DatagramHook, receive: DatagramHook) -> int:
    """Route every datagram `pc`'s ICE transports carry through two hooks, so DTLS, SRTP and SRTCP alike.

    `send(data, forward)` gets each datagram the connection sends; calling `forward(data)` (now
    or later, from any callback on the loop) puts it on the wire. `receive(data, deliver)` gets
    each datagram that arrived; `deliver(data)` hands it to aiortc. Not calling them drops the
    datagram. Nothing else is decided here: the classroom terminal's `classroom_client/link.py`
    holds the impairment. ICE's own STUN checks bypass the hooks (aioice sends them itself).

    Call once the transports exist (the offerer after setLocalDescription, the answerer after
    setRemoteDescription) and before DTLS starts; transports already wrapped are skipped, so
    calling again after renegotiation is safe. Returns how many transports were wrapped now.
    """
    transports: list[Any] = [t.receiver.transport.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport.transport)
    wrapped = 0
    for ice in dict.fromkeys(transports):  # unique, in order (one with max-bundle)
        if getattr(ice, "_twinclass_datagrams", None) is None:
            ice._twinclass_datagrams = _IceDatagrams(ice, send, receive)
            wrapped += 1
    return wrapped


class _IceDatagrams:
    """Replaces one RTCIceTransport's `_send`/`_recv` (what RTCDtlsTransport calls in 1.16.0)."""

    def __init__(self, ice: Any, send: DatagramHook, receive: DatagramHook) -> None:
        self._ice = ice
        self._send_hook = send
        self._receive_hook = receive
        self._original_send: Callable[[bytes], Awaitable[None]] = ice._send
        self._original_recv: Callable[[], Awaitable[bytes]] = ice._recv
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()  # None: the connection ended
        self._pump: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Future[None]] = set()
        self._error: str | None = None
        ice._send = self._send
        ice._recv = self._recv
        ice.on("statechange", self._state_changed)

    async def _send(self, data: bytes) -> None:
        if self._error is not None or self._ice.state in ("closed", "failed"):
            raise ConnectionError("Cannot send data, not connected")
        self._send_hook(data, self._forward)

    def _forward(self, data: bytes) -> None:
        if self._error is not None:
            return
        task = asyncio.ensure_future(self._original_send(data))  # run in creation order: no reordering
        self._sending.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Future[None]) -> None:
        self._sending.discard(task)
        if not task.cancelled() and task.exception() is not None and not isinstance(task.exception(), ConnectionError):
            logger.warning("datagram send failed: %r", task.exception())

    async def _recv(self) -> bytes:
        if self._pump is None and self._error is None:  # started by DTLS's first read, once ICE is up
            self._pump = asyncio.ensure_future(self._run_pump())
            self._pump.set_name("twinclass-ice-datagram-pump")
        if self._queue.empty() and self._error is not None:
            raise ConnectionError(self._error)
        data = await self._queue.get()
        if data is None:
            self._queue.put_nowait(None)  # every later read fails the same way
            raise ConnectionError(self._error or "Connection lost while receiving data")
        return data

    def _deliver(self, data: bytes) -> None:
        if self._error is None:
            self._queue.put_nowait(data)

    async def _run_pump(self) -> None:
        try:
            while True:
                data = await self._original_recv()
                self._receive_hook(data, self._deliver)
        except ConnectionError as exc:
            self._end(str(exc) or "Connection lost while receiving data")
        except asyncio.CancelledError:
            self._end("Connection closed")
            raise

    def _end(self, reason: str) -> None:
        if self._error is None:
            self._error = reason
            self._queue.put_nowait(None)

    def _state_changed(self) -> None:
        if self._ice.state == "closed":
            self._end("Connection closed")
            if self._pump is not None:
                self._pump.cancel()


# -- classroom terminal: receive-path and codec hooks -----------------------------------------
# (for classroom_client: its own jitter buffers, decoders and encoders; generic, no policy here)

_decoder_factories: dict[str, Callable[[RTCRtpCodecParameters], Any]] = {}
_encoder_factories: dict[str, Callable[[RTCRtpCodecParameters], Any]] = {}
_get_decoder_before_overrides = _receiver_mod.get_decoder  # the counting wrapper above
_original_get_encoder = _sender_mod.get_encoder


def _get_decoder_with_overrides(codec: RTCRtpCodecParameters) -> Any:
    factory = _decoder_factories.get(codec.mimeType.lower())
    if factory is None:
        return _get_decoder_before_overrides(codec)
    _decoder_count[0] += 1  # still counted: the server's "never decodes" check sees every decoder
    return factory(codec)


def _get_encoder_with_overrides(codec: RTCRtpCodecParameters) -> Any:
    factory = _encoder_factories.get(codec.mimeType.lower())
    return _original_get_encoder(codec) if factory is None else factory(codec)


_receiver_mod.get_decoder = _get_decoder_with_overrides
_sender_mod.get_encoder = _get_encoder_with_overrides


def use_decoder(mime_type: str, factory: Callable[[RTCRtpCodecParameters], Any] | None) -> None:
    """Process-wide: receivers decode `mime_type` (e.g. "audio/opus") with `factory(codec)`; None: aiortc's."""
    if factory is None:
        _decoder_factories.pop(mime_type.lower(), None)
    else:
        _decoder_factories[mime_type.lower()] = factory


def use_encoder(mime_type: str, factory: Callable[[RTCRtpCodecParameters], Any] | None) -> None:
    """Process-wide: senders encode `mime_type` with `factory(codec)` (an aiortc Encoder); None: aiortc's."""
    if factory is None:
        _encoder_factories.pop(mime_type.lower(), None)
    else:
        _encoder_factories[mime_type.lower()] = factory


def enable_opus_inband_fec() -> None:
    """Process-wide, idempotent: offer and answer Opus with `useinbandfec=1` in its fmtp."""
    from aiortc.codecs import CODECS

    for codec in CODECS["audio"]:
        if codec.mimeType.lower() == "audio/opus":
            codec.parameters.setdefault("useinbandfec", 1)


FrameSink = Callable[[Any, int], None]  # (JitterFrame, payload type)


def install_jitter_buffer(receiver: RTCRtpReceiver, buffer: Any) -> FrameSink:
    """Replace the receiver's jitter buffer with `buffer` (aiortc's `add(packet) -> (pli, frame)`).

    Returns a sink `deliver(frame, payload_type)` that queues an extra reassembled frame for
    decoding right away, exactly as aiortc does with the frame `add` returns: a buffer that
    completes several frames at once hands the others to it, in order.
    """
    r: Any = receiver
    r._RTCRtpReceiver__jitter_buffer = buffer

    def deliver(frame: Any, payload_type: int) -> None:
        codec = receiver_codecs(receiver).get(payload_type)
        if codec is None or not r._RTCRtpReceiver__decoder_thread:
            return
        frame.timestamp = r._RTCRtpReceiver__timestamp_mapper.map(frame.timestamp)
        r._RTCRtpReceiver__decoder_queue.put((codec, frame))

    return deliver


def send_nack(receiver: RTCRtpReceiver, media_ssrc: int, sequence_numbers: Sequence[int]) -> None:
    """Ask the sender to retransmit these packets (RTCP NACK, fire and forget)."""
    if sequence_numbers:
        _fire(receiver._send_rtcp_nack(media_ssrc, sorted(sequence_numbers)))


def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Ask the sender for a keyframe (RTCP PLI, fire and forget)."""
    _fire(receiver._send_rtcp_pli(media_ssrc))
