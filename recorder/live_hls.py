"""A lesson's live HLS stream: the master's camera and the mixed sound, made once per lesson.

It is fed the encoded frames the recording session already receives (nothing extra is
subscribed): the master's camera, the master's microphone and the microphone of the classroom
that has the floor. The event loop only filters and queues; a worker thread at nice 19 (the
lesson's forwarding comes first) decodes VP8 and encodes H.264 once (libx264 ultrafast, one
thread, an IDR every `SEGMENT_S`), or passes the master's H.264 through untouched, mixes the
microphones (`recorder.audio`) to AAC and writes fMP4 segments with ffmpeg's hls muxer:

    index.m3u8           a sliding window of `WINDOW` segments (replaced atomically)
    <stamp>-init.mp4     the fMP4 init segment
    <stamp>-<n>.m4s      the segments; the muxer deletes those that left the window
    stats.json           what the worker did (frames, CPU seconds), for tests and benches

`<stamp>` is the stream's start time: a stream made again never reuses a file name, so a cache
may keep any segment it has.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.audio.resampler import AudioResampler

from recorder import bitstream
from recorder.audio import AAC_FRAME, CONTIGUOUS_S, RATE, add_blocks, mix_gain, mono48k
from recorder.capture import CapturedFrame, TrackClock

logger = logging.getLogger(__name__)

SEGMENT_S = 2.0  # segment length: an IDR starts each one (forced, or asked of a master passed through)
SPLIT_S = 0.75 * SEGMENT_S  # the muxer starts a segment at every keyframe at least this far from the last
WINDOW = 6  # segments the playlist lists; older ones are deleted
# The sound is mixed this far behind the newest frame the worker has handled (its arrival time), when
# every microphone's frames are in. Not behind the wall clock: a worker that fell behind would mix
# silence where frames still wait in its queue.
AUDIO_DELAY_S = 0.4
QUEUE_MAX = 600  # frames waiting for the worker; more and video is dropped up to the next keyframe
VIDEO_TB = Fraction(1, 90000)
AUDIO_TB = Fraction(1, RATE)
STATS_EVERY_S = 2.0
PLAYLIST = "index.m3u8"


@dataclass
class HlsStats:
    frames_in: int = 0  # queued by the event loop
    dropped: int = 0  # not queued: the worker was behind
    video_frames: int = 0  # pictures written (encoded or passed through)
    audio_packets: int = 0
    errors: int = 0
    cpu_s: float = 0.0  # the worker thread's CPU time
    wall_s: float = 0.0  # since the worker started
    passthrough: bool = False  # the master's H.264 written as it came


def lower_thread_priority() -> None:
    """nice 19 for the calling thread only (Linux: a thread is a task with its own nice value)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


def h264_parameter_sets(data: bytes) -> bytes:
    """The SPS and PPS of an Annex-B keyframe, as Annex-B extradata (the mp4 muxer turns it into avcC)."""
    return b"".join(b"\x00\x00\x00\x01" + nal for nal in bitstream.h264_nal_units(data) if nal[0] & 0x1F in (7, 8))


class LiveMix:
    """Microphones placed on the stream's sample clock and mixed in AAC-frame multiples."""

    def __init__(self, classrooms: int = 2) -> None:
        self.gain = mix_gain(classrooms)
        self.next: int | None = None  # the first sample not yet mixed
        self._blocks: list[tuple[int, np.ndarray]] = []
        self._expected: dict[str, int] = {}

    def add(self, key: str, start: int, samples: np.ndarray) -> None:
        expected = self._expected.get(key)
        if expected is not None and abs(start - expected) <= CONTIGUOUS_S * RATE:
            start = expected  # consecutive frames stay contiguous: rounding never clicks
        if expected is not None and start < expected:
            cut = min(expected - start, samples.shape[0])
            samples, start = samples[cut:], start + cut
        if samples.shape[0]:
            self._blocks.append((start, samples))
            self._expected[key] = start + samples.shape[0]

    def take(self, until: int) -> tuple[int, np.ndarray] | None:
        """(first sample, mixed mono float32) for [next, until) rounded down to whole AAC frames."""
        if self.next is None:
            return None
        count = (until - self.next) // AAC_FRAME * AAC_FRAME
        if count <= 0:
            return None
        start = self.next
        mix = np.zeros(count, np.float32)
        add_blocks(mix, start, self._blocks)
        self.next = start + count
        self._blocks = [b for b in self._blocks if b[0] + b[1].shape[0] > self.next]
        return start, np.clip(mix * self.gain, -1.0, 1.0)


class _Output:
    """The hls muxer and its two streams (opened on the first picture, when the size is known)."""

    def __init__(self, directory: Path, stamp: str, width: int, height: int, h264_extradata: bytes | None) -> None:
        self.width, self.height = width, height
        self.encoding = h264_extradata is None  # else the master's H.264 passes through
        self.container: Any = av.open(str(directory / PLAYLIST), "w", format="hls", options={
            "hls_time": str(SPLIT_S), "hls_list_size": str(WINDOW), "hls_delete_threshold": "2",
            "hls_segment_type": "fmp4", "hls_fmp4_init_filename": f"{stamp}-init.mp4",
            "hls_segment_filename": str(directory / f"{stamp}-%d.m4s"),
            "hls_flags": "delete_segments+independent_segments+temp_file",
        })
        if h264_extradata is not None:  # passed through: no encoder
            self.video: Any = self.container.add_mux_stream("h264", width=width, height=height)
        else:
            self.video = self.container.add_stream("libx264", options={
                "preset": "ultrafast", "tune": "zerolatency", "forced-idr": "1", "profile": "baseline"})
            self.video.width, self.video.height, self.video.pix_fmt = width, height, "yuv420p"
            self.video.codec_context.time_base = VIDEO_TB
            self.video.codec_context.thread_count = 1
            self.video.codec_context.gop_size = 1000  # IDRs are forced, one per segment
        self.video.time_base = VIDEO_TB
        self.audio: Any = self.container.add_stream("aac", rate=RATE, layout="mono")
        self.audio.bit_rate = 96000
        self.audio.time_base = AUDIO_TB
        self._next_key = 0.0

    def picture(self, frame: av.VideoFrame, t: float) -> int:
        if (frame.width, frame.height) != (self.width, self.height) or frame.format.name != "yuv420p":
            frame = frame.reformat(width=self.width, height=self.height, format="yuv420p")
        frame.pts = round(t / VIDEO_TB)
        frame.time_base = VIDEO_TB
        if t >= self._next_key:
            frame.pict_type = av.video.frame.PictureType.I
            self._next_key = t + SEGMENT_S - 0.05
        else:
            frame.pict_type = av.video.frame.PictureType.NONE
        packets = self.video.encode(frame)
        self.container.mux(packets)
        return len(packets)

    def passthrough(self, data: bytes, t: float) -> None:
        packet = av.Packet(data)
        packet.stream = self.video
        packet.pts = packet.dts = round(t / VIDEO_TB)
        packet.time_base = VIDEO_TB
        packet.is_keyframe = bitstream.h264_is_keyframe(data)
        self.container.mux(packet)

    def sound(self, start: int, samples: np.ndarray) -> int:
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples).reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = RATE
        frame.pts = start
        frame.time_base = AUDIO_TB
        packets = self.audio.encode(frame)
        self.container.mux(packets)
        return len(packets)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.encoding:
                self.container.mux(self.video.encode(None))
            self.container.mux(self.audio.encode(None))
        self.container.close()


class LiveHls:
    """The live HLS stream of one lesson; `put` is called on the event loop, the rest on the worker."""

    def __init__(self, directory: Path, master: str, *, classrooms: int = 2, epoch: float | None = None) -> None:
        self.directory = directory
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        self.master = master
        self.floor: str | None = None  # the classroom whose microphone is mixed in besides the master's
        self.epoch = time.time() if epoch is None else epoch
        self._newest = self.epoch  # the latest arrival time the worker has handled
        self.stamp = str(int(self.epoch * 1000))
        self.stats = HlsStats()
        self._mix = LiveMix(classrooms)
        self._clocks: dict[str, tuple[int, TrackClock]] = {}
        self._decoders: dict[str, Any] = {}
        self._output: _Output | None = None
        self._skip_video = False  # a video frame was dropped: drop the rest up to a keyframe
        self._queue: queue.Queue[CapturedFrame | None] = queue.Queue(maxsize=QUEUE_MAX)
        self._thread = threading.Thread(target=self._run, name="live-hls", daemon=True)
        self._thread.start()

    # -- on the event loop ---------------------------------------------------------------------

    def keyframes_wanted(self) -> set[str]:
        """Slot keys to ask for a keyframe every SEGMENT_S: the master's camera while it is passed through."""
        return {f"{self.master}:camera"} if self.stats.passthrough else set()

    def put(self, frame: CapturedFrame) -> None:
        key = frame.key
        video = key == f"{self.master}:camera"
        if not video and key != f"{self.master}:mic" and not (self.floor and key == f"{self.floor}:mic"):
            return
        if video and self._skip_video:
            if not _is_keyframe(frame):
                return
            self._skip_video = False
        try:
            self._queue.put_nowait(frame)
            self.stats.frames_in += 1
        except queue.Full:
            self.stats.dropped += 1
            self._skip_video = self._skip_video or video

    def close(self, timeout: float = 10.0) -> None:
        """Finish the stream (the worker drains what is queued) and remove its files."""
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- the worker thread ---------------------------------------------------------------------

    def _run(self) -> None:
        lower_thread_priority()
        started_wall, started_cpu, written = time.monotonic(), time.thread_time(), 0.0
        while True:
            try:
                frame: CapturedFrame | None = self._queue.get(timeout=STATS_EVERY_S)
            except queue.Empty:
                frame = CapturedFrame("", "", 0, b"", 0, self._newest)  # nothing came: only the stats
            if frame is None:
                break
            try:
                if frame.key:
                    self._newest = max(self._newest, frame.arrival)
                    self._handle(frame)
                    self._sound_until(self._newest - AUDIO_DELAY_S)
            except Exception:
                self.stats.errors += 1
                if self.stats.errors <= 5:
                    logger.exception("live HLS of %s: a frame failed", self.master)
            now = time.monotonic()
            self.stats.cpu_s, self.stats.wall_s = time.thread_time() - started_cpu, now - started_wall
            if now - written >= STATS_EVERY_S:
                self._write_stats()
                written = now
        if self._output is not None:
            with contextlib.suppress(Exception):
                self._output.close()

    def _write_stats(self) -> None:
        tmp = self.directory / "stats.json.tmp"
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps(asdict(self.stats)))
            os.replace(tmp, self.directory / "stats.json")

    def _time(self, frame: CapturedFrame, kind: str) -> float:
        generation, clock = self._clocks.get(frame.key, (None, None))
        if clock is None or generation != frame.generation:  # the recorder rejoined: RTP times restart
            clock = TrackClock(kind, self.epoch, floor=clock.last if clock else -1.0)
            self._clocks[frame.key] = (frame.generation, clock)
        return clock.seconds(frame.timestamp, frame.clock_rate, frame.arrival)

    def _handle(self, frame: CapturedFrame) -> None:
        if frame.key.endswith(":camera"):
            self._video(frame, self._time(frame, "video"))
        else:
            self._audio(frame, self._time(frame, "audio"))

    def _video(self, frame: CapturedFrame, t: float) -> None:
        codec = frame.codec.upper()
        if codec == "H264" and (self._output is None or not self._output.encoding):
            if self._output is None:
                size = bitstream.h264_size(frame.data)
                if size is None:
                    return  # wait for a keyframe (its SPS tells the size)
                self._open(size, h264_parameter_sets(frame.data), t)
            assert self._output is not None
            self._output.passthrough(frame.data, t)
            self.stats.video_frames += 1
            return
        decoder: Any = self._decoders.get(frame.key)
        if decoder is None or decoder.name != codec.lower():
            decoder = self._decoders[frame.key] = av.CodecContext.create(codec.lower(), "r")
            decoder.thread_count = 1
        try:
            pictures = decoder.decode(av.Packet(frame.data))
        except av.FFmpegError:
            return  # a lost reference: pictures come back with the next keyframe
        for picture in pictures:
            if self._output is None:
                self._open((picture.width // 2 * 2, picture.height // 2 * 2), None, t)
            assert self._output is not None
            self._output.picture(picture, t)
            self.stats.video_frames += 1

    def _open(self, size: tuple[int, int], h264_extradata: bytes | None, t: float) -> None:
        self._output = _Output(self.directory, self.stamp, size[0], size[1], h264_extradata)
        self.stats.passthrough = h264_extradata is not None
        self._mix.next = round(t * RATE) // AAC_FRAME * AAC_FRAME  # the sound starts with the picture
        logger.info("live HLS of %s: %dx%d, %s", self.master, size[0], size[1],
                    "H.264 passed through" if h264_extradata is not None else "encoded to H.264")

    def _audio(self, frame: CapturedFrame, t: float) -> None:
        codec = frame.codec.upper()
        decoder: Any = self._decoders.get(frame.key)
        if codec == "OPUS":
            if decoder is None:
                decoder = self._decoders[frame.key] = av.CodecContext.create("opus", "r")
            try:
                decoded = decoder.decode(av.Packet(frame.data))
            except av.FFmpegError:
                return
            resampler = None
        elif codec in ("PCMU", "PCMA"):
            pcm = np.frombuffer(bitstream.g711_to_pcm16(codec, frame.data), np.int16).reshape(1, -1)
            one = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
            one.sample_rate = frame.clock_rate
            decoded = [one]
            if decoder is None:
                decoder = self._decoders[frame.key] = AudioResampler(format="flt", layout="mono", rate=RATE)
            resampler = decoder
        else:
            return
        start = round(t * RATE)
        for picture in decoded:
            for samples in mono48k(picture, resampler):
                self._mix.add(frame.key, start, samples)
                start += samples.shape[0]

    def _sound_until(self, wall: float) -> None:
        if self._output is None:
            return
        mixed = self._mix.take(round((wall - self.epoch) * RATE))
        if mixed is not None:
            self.stats.audio_packets += self._output.sound(*mixed)


def _is_keyframe(frame: CapturedFrame) -> bool:
    name = frame.codec.upper()
    if name == "VP8":
        return bitstream.vp8_is_keyframe(frame.data)
    if name == "H264":
        return bitstream.h264_is_keyframe(frame.data)
    return True
