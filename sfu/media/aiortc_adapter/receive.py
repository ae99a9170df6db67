"""Receive side: the forwarding plane's tap on each incoming packet, capture without decoding."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import RTCRtpReceiver, clock
from aiortc.codecs import is_rtx
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rate import BandwidthUsage
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpReceiveParameters
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtpPacket, pack_remb_fci, unwrap_rtx

from sfu.media.aiortc_adapter.core import (
    EncodedFrameHandler,
    PacketHandler,
    RembPolicy,
    _fire,
    forward_path,
    logger,
)

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
        self._slim = forward_path.slim
        # what the slim path keeps of aiortc's handling (the same objects aiortc's own code updates)
        self._codecs: dict[int, RTCRtpCodecParameters] = r._RTCRtpReceiver__codecs
        self._streams: dict[int, StreamStatistics] = r._RTCRtpReceiver__remote_streams
        self._active: dict[int, Any] = r._RTCRtpReceiver__active_ssrc
        self._estimator: Any = r._RTCRtpReceiver__remote_bitrate_estimator

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
        if self._slim:
            await self._account(packet, arrival_time_ms)
        else:
            await self._original(packet, arrival_time_ms)

    async def _account(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        """What forwarding needs of aiortc 1.16.0's `_handle_rtp_packet`: the bitrate estimate (REMB), the
        source's activity and the statistics of receiver reports. No depayloading, no jitter buffer: the
        server reassembles no frame (NACKs and keyframe requests are the forwarding plane's)."""
        receiver: Any = self.receiver
        if not receiver._enabled:
            return
        estimator = self._estimator
        if estimator is not None and packet.extensions.abs_send_time is not None:
            remb = estimator.add(abs_send_time=packet.extensions.abs_send_time, arrival_time_ms=arrival_time_ms,
                                 payload_size=len(packet.payload) + packet.padding_size, ssrc=packet.ssrc)
            rtcp_ssrc = receiver._RTCRtpReceiver__rtcp_ssrc
            if rtcp_ssrc is not None and remb is not None:
                await receiver._send_rtcp(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0,
                                                         fci=pack_remb_fci(*remb)))
        self._active[packet.ssrc] = clock.current_datetime()
        codec = self._codecs.get(packet.payload_type)
        if codec is None:
            return
        stream = self._streams.get(packet.ssrc)
        if stream is None:
            stream = self._streams[packet.ssrc] = StreamStatistics(codec.clockRate)
        stream.add(packet)

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


