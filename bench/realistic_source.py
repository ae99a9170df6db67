"""A publisher that sends what a classroom camera really sends: a moving, detailed picture at a fixed bitrate.

    .venv/bin/python bench/realistic_source.py --server URL --token TOKEN --size 640x480 --bitrate 1500000 \\
        [--fps 30] [--mic] [--seconds S]

The test pattern alone (a flat coloured scene and one moving bar) compresses to ~250 kbps at
640x480 whatever the encoder is allowed: a forwarding bench fed with it measures a server that
forwards 34 packets a second. Here the pattern's counter/time/tag rows stay at the top (so the
decoding subscribers still check every frame and measure glass-to-glass latency), and the rest
of the frame is a detailed texture that moves every frame, plus fresh grain that no motion search
can predict: VP8's CBR then spends the whole target, as a camera on a classroom does.

The encoder ignores the server's REMB (the bench wants a fixed rate; the server caps a camera at
1.2 Mbps); the client is a light one (`bench/light_receiver.py`): real signaling and
ICE/DTLS-SRTP through aiortc, publishing video only (and, with `--mic`, a tone as the microphone).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from aiortc.mediastreams import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE, VideoStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.light_receiver import LightClient, PublishSpec
from classroom_client.encoders import SteadyVp8Encoder
from classroom_client.pattern import PatternPainter, source_tag
from sfu.media.aiortc_adapter import use_encoder, use_host_addresses

GRAIN_FRAMES = 7  # a bank of grain images, cycled (drawing new random numbers each frame costs ms)


class TexturedPatternTrack(VideoStreamTrack):
    """The test pattern's rows on top of a texture that moves and changes every frame."""

    kind = "video"

    def __init__(self, width: int, height: int, fps: int, label: str, seed: int = 7) -> None:
        super().__init__()
        self.painter = PatternPainter(width, height, label, source_tag(label))
        self.width, self.height, self.fps = width, height, fps
        self.top = self.painter.rows_height + 4
        rng = np.random.default_rng(seed)
        body = (height - self.top, width)
        # detail at several scales: fine noise, blotches, a colour gradient
        fine = rng.integers(0, 256, (2 * body[0], 2 * body[1], 3), dtype=np.uint8)
        coarse = cv2.resize(rng.integers(0, 256, (body[0] // 8, body[1] // 8, 3), dtype=np.uint8),
                            (2 * body[1], 2 * body[0]), interpolation=cv2.INTER_CUBIC)
        self.texture = cv2.addWeighted(cv2.GaussianBlur(fine, (3, 3), 0.8), 0.5, coarse, 0.5, 0)
        self.grain = [rng.integers(0, 48, (*body, 3), dtype=np.uint8) for _ in range(GRAIN_FRAMES)]
        self.counter = 0
        self._t0: float | None = None

    def picture(self, counter: int) -> np.ndarray:
        img = self.painter.paint(counter)
        h, w = self.height - self.top, self.width
        x = (counter * 5) % w
        y = int((1 + np.sin(counter / 40)) * h / 2) % h
        body = cv2.add(self.texture[y:y + h, x:x + w], self.grain[counter % GRAIN_FRAMES])
        img[self.top:] = body
        return img

    async def recv(self) -> av.VideoFrame:
        if self._t0 is None:
            self._t0 = time.time()
        delay = self._t0 + self.counter / self.fps - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = av.VideoFrame.from_ndarray(self.picture(self.counter), format="bgr24")
        frame.pts = int(self.counter * VIDEO_CLOCK_RATE / self.fps)
        frame.time_base = VIDEO_TIME_BASE
        self.counter += 1
        return frame


class FixedRateVp8Encoder(SteadyVp8Encoder):
    """The terminal's VP8 encoder at one bitrate: REMBs are counted, never applied."""

    def __init__(self, bitrate: int) -> None:
        self._fixed_bitrate = bitrate
        super().__init__()

    @property
    def target_bitrate(self) -> int:
        return self._fixed_bitrate

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        self.remb_ignored = getattr(self, "remb_ignored", 0) + 1


def use_fixed_rate_vp8(bitrate: int) -> None:
    """Every VP8 sender of this process encodes at `bitrate`, whatever the receiver's REMB says."""

    def make(codec: RTCRtpCodecParameters) -> FixedRateVp8Encoder:
        return FixedRateVp8Encoder(bitrate)

    use_encoder("video/vp8", make)


async def publish(server: str, token: str, width: int, height: int, fps: int, bitrate: int,
                  seconds: float | None, mic: bool = False) -> None:
    use_host_addresses(["127.0.0.1"])
    use_fixed_rate_vp8(bitrate)
    spec = PublishSpec(width=width, height=height, fps=fps, audio=mic,
                       video=lambda label: TexturedPatternTrack(width, height, fps, label))
    client = LightClient(server, token, spec)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    await client.start()
    sender = next(t.sender for t in client.connections[0].getTransceivers() if t.sender.track)
    track: Any = sender.track
    started = time.monotonic()
    while not done.is_set() and (seconds is None or time.monotonic() - started < seconds):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 5.0)
        sent = getattr(sender, "_RTCRtpSender__packet_count", "?")
        state = client.connections[0].connectionState
        print(f"{time.monotonic() - started:6.1f} s: frame {track.counter}, {sent} RTP packets, publishing connection "
              f"{state}, socket {'up' if client.sio.connected else 'closed'}", flush=True)
    await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--bitrate", type=int, default=1_500_000, help="bits per second, fixed")
    parser.add_argument("--seconds", type=float, default=None, help="leave after S seconds (default: until SIGTERM)")
    parser.add_argument("--mic", action="store_true", help="also publish a microphone (a tone)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    # aioice says (at INFO) when it closes a connection because consent checks went unanswered
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    consent = logging.getLogger("aioice.ice")
    consent.setLevel(logging.INFO)
    consent.addFilter(lambda record: "onsent" in record.getMessage() or record.levelno >= logging.WARNING)
    asyncio.run(publish(args.server, args.token, width, height, args.fps, args.bitrate, args.seconds, args.mic))


if __name__ == "__main__":
    main()
