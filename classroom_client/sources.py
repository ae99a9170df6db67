"""What a classroom publishes: a test pattern, a tone, a file or a camera/microphone device."""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from dataclasses import dataclass

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import AUDIO_PTIME, VIDEO_CLOCK_RATE, VIDEO_TIME_BASE, AudioStreamTrack, VideoStreamTrack

from classroom_client.pattern import PatternPainter


class TestPatternTrack(VideoStreamTrack):
    """Pattern frames with counter, send time and source tag, at a steady frame rate."""

    kind = "video"
    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, width: int, height: int, fps: int, label: str, tag: int) -> None:
        super().__init__()
        self.painter = PatternPainter(width, height, label, tag)
        self.fps = fps
        self.counter = 0
        self._t0: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self._t0 is None:
            self._t0 = time.time()
        target = self._t0 + self.counter / self.fps
        delay = target - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        img = self.painter.paint(self.counter)  # stamped with the send time right now
        frame = av.VideoFrame.from_ndarray(img, format="bgr24")
        frame.pts = int(self.counter * VIDEO_CLOCK_RATE / self.fps)
        frame.time_base = VIDEO_TIME_BASE
        self.counter += 1
        return frame


class ToneTrack(AudioStreamTrack):
    """A continuous sine tone (each classroom its own frequency, so receivers can tell them apart)."""

    kind = "audio"

    def __init__(self, frequency: float, sample_rate: int = 48000, level: float = 0.3) -> None:
        super().__init__()
        self.frequency = frequency
        self.sample_rate = sample_rate
        self.level = level
        self._samples = int(AUDIO_PTIME * sample_rate)
        self._sent = 0
        self._t0: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self._t0 is None:
            self._t0 = time.time()
        target = self._t0 + self._sent / self.sample_rate
        delay = target - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        t = (np.arange(self._samples) + self._sent) / self.sample_rate
        wave = (np.sin(2 * math.pi * self.frequency * t) * self.level * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(wave.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = self._sent
        frame.time_base = fractions.Fraction(1, self.sample_rate)
        self._sent += self._samples
        return frame


@dataclass
class SourceSpec:
    video: str = "testsrc"  # testsrc | PATH | /dev/videoN | none
    audio: str = "tone"  # tone | tone:FREQ | PATH | none
    width: int = 640
    height: int = 360
    fps: int = 30


Opened = tuple[MediaStreamTrack | None, MediaStreamTrack | None, list[MediaPlayer]]


def open_sources(spec: SourceSpec, label: str, tag: int, tone_hz: float) -> Opened:
    """(video track, audio track, players to stop) for what the classroom publishes."""
    players: list[MediaPlayer] = []
    video: MediaStreamTrack | None = None
    audio: MediaStreamTrack | None = None
    if spec.video == "testsrc":
        video = TestPatternTrack(spec.width, spec.height, spec.fps, label, tag)
    elif spec.video.startswith("/dev/video"):
        player = MediaPlayer(spec.video, format="v4l2",
                             options={"video_size": f"{spec.width}x{spec.height}", "framerate": str(spec.fps)})
        players.append(player)
        video = player.video
    elif spec.video != "none":
        player = MediaPlayer(spec.video, loop=True)
        players.append(player)
        video = player.video
        if spec.audio == "file":
            audio = player.audio
    if spec.audio.startswith("tone"):
        freq = float(spec.audio.split(":", 1)[1]) if ":" in spec.audio else tone_hz
        audio = ToneTrack(freq)
    elif spec.audio not in ("none", "file"):
        player = MediaPlayer(spec.audio, loop=True)
        players.append(player)
        audio = player.audio
    return video, audio, players
