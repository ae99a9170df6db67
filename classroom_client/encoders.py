"""The terminal's publishing encoders: Opus with in-band FEC, VP8 that ignores REMB churn.

aiortc's `RTCRtpSender` sets `encoder.target_bitrate` on every REMB, and its `Vp8Encoder`
rebuilds libvpx (a fresh keyframe) whenever the target moved by more than 10 %, and opens it
with settings that leave some changed blocks uncoded (see `sfu.media.vp8`). `SteadyVp8Encoder`
opens libvpx without that fault and applies a decrease only below 85 % of the current target and
an increase only above 130 %, at most once per `INCREASE_EVERY_S`, so a steady link never restarts
the encoder. Installed process-wide by `install_publisher_encoders` (a terminal has one client).
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from typing import Any

import av
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import MAX_BITRATE, Vp8Encoder, number_of_threads
from aiortc.mediastreams import convert_timebase
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from sfu.media.aiortc_adapter import enable_opus_inband_fec, use_encoder
from sfu.media.vp8 import VIDEO_TIME_BASE, open_vp8_encoder

STEADY_MIN_BITRATE = 100_000  # aiortc's floor is 250 kbps: more than a weak rural uplink carries
OPUS_BITRATE = 32000  # SILK (where LBRR, the in-band FEC, exists) and light on a weak line
EXPECTED_LOSS_PCT = 10


class FecOpusEncoder(OpusEncoder):
    """aiortc's Opus encoder with libopus in-band FEC on (FFmpeg options `fec`, `packet_loss`)."""

    def __init__(self, expected_loss_pct: int = EXPECTED_LOSS_PCT, bitrate: int = OPUS_BITRATE) -> None:
        super().__init__()
        self.codec.bit_rate = bitrate
        self.codec.options = {"application": "voip", "fec": "1", "packet_loss": str(int(expected_loss_pct))}


class SteadyVp8Encoder(Vp8Encoder):
    """VP8 with REMB hysteresis; `restarts` counts libvpx rebuilds after the first one."""

    DECREASE_BELOW = 0.85
    INCREASE_ABOVE = 1.30
    INCREASE_EVERY_S = 5.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.restarts = 0
        self.remb_ignored = 0
        self._clock = clock
        self._last_increase = -1e9

    @property
    def target_bitrate(self) -> int:
        value: int = Vp8Encoder.target_bitrate.fget(self)  # type: ignore[attr-defined]
        return value

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        bitrate = max(STEADY_MIN_BITRATE, min(int(bitrate), MAX_BITRATE))
        current = self.target_bitrate
        now = self._clock()
        if bitrate < current * self.DECREASE_BELOW:
            pass
        elif bitrate > current * self.INCREASE_ABOVE and now - self._last_increase >= self.INCREASE_EVERY_S:
            self._last_increase = now
        else:
            self.remb_ignored += 1
            return
        Vp8Encoder.target_bitrate.fset(self, bitrate)  # type: ignore[attr-defined]

    def encode(self, frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        """aiortc 1.16.0's `Vp8Encoder.encode`, opening libvpx with `open_vp8_encoder` (no stale blocks)."""
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        codec: Any = self.codec
        if codec is not None and (frame.width != codec.width or frame.height != codec.height
                                  or abs(self.target_bitrate - codec.bit_rate) / codec.bit_rate > 0.1):
            self.codec, codec = None, None
            self.restarts += 1
        if force_keyframe:
            frame.pict_type = av.video.frame.PictureType.I
        if codec is None:
            threads = number_of_threads(frame.width * frame.height, multiprocessing.cpu_count())
            codec = self.codec = open_vp8_encoder(frame.width, frame.height, self.target_bitrate, threads)
        payloads: list[bytes] = []
        timestamp = convert_timebase(frame.pts, frame.time_base, VIDEO_TIME_BASE)
        for packet in codec.encode(frame):
            out, _ = self.pack(packet)  # RFC 7741 payloads; advances the picture id
            payloads.extend(out)
        return payloads, timestamp


class PublisherEncoders:
    """Keeps the encoders it made, so the terminal can report `encoder_restarts`."""

    def __init__(self) -> None:
        self.video: list[SteadyVp8Encoder] = []
        self.audio: list[FecOpusEncoder] = []

    def make_vp8(self, codec: RTCRtpCodecParameters) -> SteadyVp8Encoder:
        encoder = SteadyVp8Encoder()
        self.video.append(encoder)
        return encoder

    def make_opus(self, codec: RTCRtpCodecParameters) -> FecOpusEncoder:
        encoder = FecOpusEncoder()
        self.audio.append(encoder)
        return encoder

    @property
    def restarts(self) -> int:
        return sum(e.restarts for e in self.video)


def install_publisher_encoders() -> PublisherEncoders:
    """Negotiate Opus FEC and encode with the encoders above, process-wide."""
    enable_opus_inband_fec()
    made = PublisherEncoders()
    use_encoder("video/vp8", made.make_vp8)
    use_encoder("audio/opus", made.make_opus)
    return made
