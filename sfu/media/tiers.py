"""Lower tiers of a published video track, made once per tier on the server.

A subscriber on a weak link cannot take a classroom's full camera (up to 1.2 Mbps) or
courseware (up to 1.5 Mbps). Rather than lowering what the publisher sends to everybody, the
server decodes the track ONCE, scales and slows it, and encodes it ONCE per tier; every weak
subscriber's slot is fed from that `TierTrack` exactly as from a classroom's own track (same
munging, keyframe waits and source switches in `forwarder.Slot`). A tier exists only while a
slot uses it: it stops `IDLE_STOP_S` after its last slot went back to the full stream.

The work runs in one worker thread per tier (libvpx and the decoders release the GIL), so the
forwarding loop only hands over encoded frames and sends the packets that come back.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import av
from aiortc.codecs import depayload
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from sfu.media.aiortc_adapter import make_decoder
from sfu.media.codecs import frame_is_keyframe
from sfu.media.vp8 import VIDEO_TIME_BASE, open_vp8_encoder

if TYPE_CHECKING:
    from sfu.media.forwarder import PublishedTrack

logger = logging.getLogger(__name__)

IDLE_STOP_S = 5.0
_TIER_PAYLOAD_TYPE = 96
TIER_CODEC = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=_TIER_PAYLOAD_TYPE)
_TS_MOD = 1 << 32


@dataclass(frozen=True)
class TierSpec:
    """What a tier looks like: a size (None: the source's), a frame rate and a bitrate."""

    name: str
    max_width: int | None
    max_height: int | None
    fps: float
    bitrate: int


CAMERA_LOW = TierSpec("low", 320, 180, 15.0, 100_000)  # with audio (~60 kbit), fits a 200 kbit line
COURSEWARE_LOW = TierSpec("low", None, None, 3.0, 300_000)  # courseware stays sharp, just slower


def tier_spec(label: str, tier: str) -> TierSpec:
    if tier != "low":
        raise ValueError(f"unknown tier {tier!r}")
    return COURSEWARE_LOW if label.endswith("/courseware") else CAMERA_LOW


def _scaled_size(width: int, height: int, spec: TierSpec) -> tuple[int, int]:
    if spec.max_width is None or spec.max_height is None:
        return width, height
    scale = min(1.0, spec.max_width / width, spec.max_height / height)
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


class TierEncoder:
    """Decoded frames in, a smaller/slower VP8 stream out (RTP payloads with their timestamp)."""

    def __init__(self, spec: TierSpec) -> None:
        self.spec = spec
        self._codec: Any = None
        self._size: tuple[int, int] | None = None
        self._packer = Vp8Encoder()  # only its RFC 7741 packetizer (pack) is used
        self._last_pts: int | None = None
        self.frames_out = 0

    def wants(self, pts: int) -> bool:
        """Keep this frame at the tier's frame rate? (pts in 90 kHz units)."""
        if self._last_pts is None:
            return True
        return pts - self._last_pts >= 90000 / self.spec.fps * 0.9

    def encode(self, frame: av.VideoFrame, pts: int, keyframe: bool) -> list[bytes]:
        size = _scaled_size(frame.width, frame.height, self.spec)
        if self._codec is None or size != self._size:
            self._codec, self._size = open_vp8_encoder(*size, self.spec.bitrate, denoise=False), size
            keyframe = True
        scaled = frame.reformat(width=size[0], height=size[1], format="yuv420p")
        scaled.pts = pts
        scaled.time_base = VIDEO_TIME_BASE
        scaled.pict_type = av.video.frame.PictureType.I if keyframe else av.video.frame.PictureType.NONE
        self._last_pts = pts
        payloads: list[bytes] = []
        for packet in self._codec.encode(scaled):
            packet.time_base = VIDEO_TIME_BASE
            out, _ = self._packer.pack(packet)
            payloads.extend(out)
        self.frames_out += 1
        return payloads


class TierTrack:
    """One tier of one published video track; its `track` feeds slots like a classroom's own."""

    def __init__(self, source: PublishedTrack, spec: TierSpec, loop: asyncio.AbstractEventLoop) -> None:
        from sfu.media.forwarder import PublishedTrack  # the module that imports this one

        self.source = source
        self.spec = spec
        self.track = PublishedTrack(source.kind, f"{source.label}@{spec.name}", upstream=self)
        self._loop = loop
        self._jitter = JitterBuffer(capacity=256, is_video=True)
        self._queue: queue.Queue[tuple[RTCRtpCodecParameters, JitterFrame] | None] = queue.Queue(maxsize=60)
        self._encoder = TierEncoder(spec)
        self._keyframe_wanted = threading.Event()
        self._keyframe_wanted.set()
        self._need_input_keyframe = True
        self._seq = 0
        self._ts_base: int | None = None
        self._last_ts: int | None = None
        self._ts_cycles = 0
        self._unused_since: float | None = None
        self._outbox: asyncio.Queue[list[RtpPacket]] = asyncio.Queue()
        self._sender: asyncio.Future[None] | None = None
        self.closed = False
        self.frames_in = 0
        self.frames_dropped = 0
        self.cpu_s = 0.0  # worker thread time spent decoding, scaling and encoding
        self._thread = threading.Thread(target=self._work, name=f"tier {self.track.label}", daemon=True)
        self._thread.start()

    # -- what PublishedTrack asks of its upstream -------------------------------------------------

    media_ssrc = 0

    @property
    def codecs(self) -> dict[int, RTCRtpCodecParameters]:
        return {_TIER_PAYLOAD_TYPE: TIER_CODEC}

    def request_keyframe(self) -> None:
        self._keyframe_wanted.set()

    # -- fed by the source track, on the event loop ----------------------------------------------

    def feed(self, packet: RtpPacket, codec: RTCRtpCodecParameters) -> None:
        if self.closed:
            return
        if not self.track.slots:
            now = time.monotonic()
            if self._unused_since is None:
                self._unused_since = now
            elif now - self._unused_since > IDLE_STOP_S:
                self.close()
                return
        else:
            self._unused_since = None
        try:
            packet._data = depayload(codec, packet.payload) if packet.payload else b""  # type: ignore[attr-defined]
        except ValueError:
            return
        pli, frame = self._jitter.add(packet)
        if pli:
            self._resync()
        if frame is None:
            return
        if self._need_input_keyframe:
            if not frame_is_keyframe(self.source.codec_name(codec), frame.data):
                self.source.request_keyframe()
                return
            self._need_input_keyframe = False
        try:
            self._queue.put_nowait((codec, frame))
            self.frames_in += 1
        except queue.Full:  # the worker fell behind: start again from a keyframe
            self.frames_dropped += 1
            self._resync()

    def _resync(self) -> None:
        self._need_input_keyframe = True
        self.source.request_keyframe()

    # -- the worker thread ----------------------------------------------------------------------

    def _work(self) -> None:
        decoder: Any = None
        decoder_codec: str | None = None
        while True:
            item = self._queue.get()
            if item is None:
                return
            started = time.thread_time()
            codec, encoded = item
            if decoder is None or decoder_codec != codec.mimeType:
                decoder, decoder_codec = make_decoder(codec), codec.mimeType
            try:
                frames = decoder.decode(encoded)
            except Exception:  # a broken frame: the next keyframe heals it
                logger.debug("%s: decode failed", self.track.label, exc_info=True)
                frames = []
            for frame in frames:
                pts = self._pts(encoded.timestamp)
                keyframe = self._keyframe_wanted.is_set()
                if not keyframe and not self._encoder.wants(pts):
                    continue
                self._keyframe_wanted.clear()
                try:
                    payloads = self._encoder.encode(frame, pts, keyframe)
                except Exception:
                    logger.exception("%s: encoding the tier failed", self.track.label)
                    continue
                if payloads:
                    ts = (pts + (self._ts_base or 0)) % _TS_MOD
                    self._loop.call_soon_threadsafe(self._emit, payloads, ts)
            self.cpu_s += time.thread_time() - started

    def _pts(self, timestamp: int) -> int:
        """The source's RTP timestamp, unwrapped and counted from the first frame."""
        if self._ts_base is None:
            self._ts_base = timestamp
        if self._last_ts is not None and timestamp < self._last_ts and self._last_ts - timestamp > (1 << 31):
            self._ts_cycles += 1
        self._last_ts = timestamp
        return self._ts_cycles * _TS_MOD + timestamp - self._ts_base

    # -- back on the event loop -------------------------------------------------------------------

    def _emit(self, payloads: list[bytes], timestamp: int) -> None:
        packets = []
        for i, payload in enumerate(payloads):
            packets.append(RtpPacket(payload_type=_TIER_PAYLOAD_TYPE, marker=i == len(payloads) - 1,
                                     sequence_number=self._seq, timestamp=timestamp, payload=payload))
            self._seq = (self._seq + 1) % 65536
        self._outbox.put_nowait(packets)
        if self._sender is None:
            self._sender = asyncio.ensure_future(self._send())

    async def _send(self) -> None:
        """One sender, so frames leave in order even when a slot's write waits."""
        while True:
            packets = await self._outbox.get()
            for packet in packets:
                await self.track.on_packet(packet, TIER_CODEC)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.source.tiers.pop(self.spec.name, None)
        self.track.close()
        if self._sender is not None:
            self._sender.cancel()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            with self._queue.mutex:
                self._queue.queue.clear()
            self._queue.put_nowait(None)
        logger.info("%s stopped (%d frames in, %d out)", self.track.label, self.frames_in, self._encoder.frames_out)

    def stats(self) -> dict[str, Any]:
        return {"label": self.track.label, "frames_in": self.frames_in, "frames_out": self._encoder.frames_out,
                "frames_dropped": self.frames_dropped, "slots": len(self.track.slots), "cpu_s": round(self.cpu_s, 3),
                "fps": self.spec.fps, "bitrate": self.spec.bitrate}

