"""The classroom terminal's hooks: its own jitter buffers, decoders and encoders, Opus FEC."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from aiortc import RTCRtpReceiver
from aiortc import rtcrtpreceiver as _receiver_mod
from aiortc import rtcrtpsender as _sender_mod
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from sfu.media.aiortc_adapter.core import (
    _decoder_count,
    _fire,
)
from sfu.media.aiortc_adapter.receive import receiver_codecs

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

