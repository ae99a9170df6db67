"""Every use of aiortc/aioice internals, in one place (aiortc is pinned to 1.16.0 for this).

Forwarding on aiortc needs hooks it does not offer publicly:
- a receive tap: see each RTP packet (RTX unwrapped) before aiortc's own handling, which still
  runs so NACKs, REMB and receiver reports keep flowing, but with no decoder thread at all;
- a send port: write already-encoded packets through an `RTCRtpSender` with its SSRC, MID and
  header-extension ids, kept in its history (so NACKs are answered) and counted (so sender
  reports stay valid), and learn when the subscriber asks for a keyframe;
- keyframe requests upstream (PLI) and the host addresses ICE gathers;
- a lossy uplink in user space (no `tc netem` here): drop a share of a connection's outgoing RTP.

`tests/sfu/test_aiortc_adapter.py` checks each hook against the installed aiortc, so an upgrade
that moves any of them fails loudly there instead of silently in a lesson.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aioice.ice
import aiortc
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver, clock
from aiortc import rtcrtpreceiver as _receiver_mod
from aiortc import rtcrtpsender as _sender_mod
from aiortc.codecs import is_rtx
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpReceiveParameters
from aiortc.rtp import RtpPacket, is_rtcp, unwrap_rtx, wrap_rtx
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
EncodedFrameHandler = Callable[[RTCRtpCodecParameters, Any], None]

# -- process-wide settings -------------------------------------------------------------------

_original_get_host_addresses = aioice.ice.get_host_addresses
_decoder_count = [0]  # mutable cell, not rebound: counts decoders aiortc creates here
_original_get_decoder = _receiver_mod.get_decoder


def _counting_get_decoder(codec: RTCRtpCodecParameters) -> Any:
    _decoder_count[0] += 1
    return _original_get_decoder(codec)


_receiver_mod.get_decoder = _counting_get_decoder


def decoders_created() -> int:
    """How many media decoders aiortc created in this process (the server's must stay 0)."""
    return _decoder_count[0]


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
                else:
                    forward = None  # type: ignore[assignment]
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
        task = asyncio.ensure_future(self.receiver._send_rtcp_pli(self.media_ssrc))
        _pending.add(task)
        task.add_done_callback(_pending.discard)


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
        task = asyncio.ensure_future(receiver._send_rtcp_pli(ssrc))
        _pending.add(task)
        task.add_done_callback(_pending.discard)


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
        self.packets_sent = 0
        self.retransmissions = 0
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
        """Answer a subscriber's NACK from the history, as RTX of the packet's own codec."""
        s: Any = self.sender
        packet: RtpPacket | None = s._RTCRtpSender__rtp_history.get(sequence_number % RTP_HISTORY_SIZE)
        if packet is None or packet.sequence_number != sequence_number:
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

    def sender_counters(self) -> tuple[int, int, int]:
        """(packet count, octet count, last RTP timestamp) as the next sender report gives them."""
        s: Any = self.sender
        return (s._RTCRtpSender__packet_count, s._RTCRtpSender__octet_count, s._RTCRtpSender__rtp_timestamp)

    def sender_report_clock(self) -> tuple[int, int]:
        """(NTP time, RTP timestamp): the pair the next sender report maps wall clock to media time with."""
        s: Any = self.sender
        return (s._RTCRtpSender__ntp_timestamp, s._RTCRtpSender__rtp_timestamp)


# -- impairment ------------------------------------------------------------------------------


class UplinkLoss:
    """Drops a share of the RTP packets a peer connection sends, as a lossy network would.

    Wraps the send of each DTLS transport the connection's senders use (after the answer is
    applied: with BUNDLE that is one transport). Retransmissions are RTP too and are dropped
    alike; RTCP (receiver/sender reports, NACK, PLI) always goes through. The senders still count
    a dropped packet as sent, so the far end sees the gap in sequence numbers.
    """

    def __init__(self, loss: float, seed: int | None = None) -> None:
        if not 0.0 <= loss <= 1.0:
            raise ValueError(f"loss must be between 0 and 1, not {loss}")
        self.loss = loss
        self.dropped = 0
        self.passed = 0
        self._rng = random.Random(seed)

    def apply(self, pc: RTCPeerConnection) -> None:
        """Impair every transport `pc`'s senders use now (call again after renegotiation)."""
        for sender in pc.getSenders():
            transport: Any = sender.transport
            if transport is None or getattr(transport, "_twinclass_uplink_loss", None) is self:
                continue
            transport._send_rtp = self._wrap(transport._send_rtp)
            transport._twinclass_uplink_loss = self

    def _wrap(self, send: Callable[[bytes], Awaitable[None]]) -> Callable[[bytes], Awaitable[None]]:
        async def send_rtp(data: bytes) -> None:
            if not is_rtcp(data):
                if self._rng.random() < self.loss:
                    self.dropped += 1
                    return
                self.passed += 1
            await send(data)

        return send_rtp


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


def _fire(coro: Awaitable[None]) -> None:
    task = asyncio.ensure_future(coro)
    _pending.add(task)
    task.add_done_callback(_pending.discard)


def send_nack(receiver: RTCRtpReceiver, media_ssrc: int, sequence_numbers: Sequence[int]) -> None:
    """Ask the sender to retransmit these packets (RTCP NACK, fire and forget)."""
    if sequence_numbers:
        _fire(receiver._send_rtcp_nack(media_ssrc, sorted(sequence_numbers)))


def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Ask the sender for a keyframe (RTCP PLI, fire and forget)."""
    _fire(receiver._send_rtcp_pli(media_ssrc))
