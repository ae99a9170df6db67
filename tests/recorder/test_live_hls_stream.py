"""The live HLS stream on its own (recorder.live_hls): encoded frames in, fMP4 segments out.

The frames are really encoded (the terminal's VP8 or H.264 test pattern, Opus tones) and fed
with their arrival times, as the recording session's sink would feed them, but faster than life
(with a backlog in the worker's queue: nothing may be lost to it).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hls_checks import decode_segment, parse_playlist, tones_hz
from synthetic import Classroom, SyntheticLesson, _audio_frames, _video_frames

from classroom_client.pattern import source_tag
from recorder.capture import CapturedFrame
from recorder.live_hls import PLAYLIST, SEGMENT_S, WINDOW, LiveHls

EPOCH = 1_000_000.0


def _frames(codec: str, duration: float, keyframe_every_s: float) -> list[CapturedFrame]:
    lesson = SyntheticLesson(duration=duration, classrooms=[], fps=15, keyframe_every_s=keyframe_every_s)
    frames = (_video_frames("master:camera", "master", 0.4, duration, lesson, EPOCH, 320, 240, codec)
              + _audio_frames("master:mic", Classroom("master", 440.0), 0.4, duration, EPOCH)
              + _audio_frames("rural-1:mic", Classroom("rural-1", 660.0), 0.4, duration, EPOCH)
              + _audio_frames("rural-2:mic", Classroom("rural-2", 880.0), 0.4, duration, EPOCH)
              + _video_frames("rural-1:camera", "rural-1", 0.4, duration, lesson, EPOCH, 320, 240))
    return sorted(frames, key=lambda f: f.arrival)


def _replay(directory: Path, frames: list[CapturedFrame], floor: str | None = None) -> LiveHls:
    stream = LiveHls(directory, "master", classrooms=3, epoch=EPOCH)
    stream.floor = floor
    for frame in frames:
        stream.put(frame)
        while stream._queue.qsize() > 100:  # a replay runs faster than life: let the worker keep up
            time.sleep(0.005)
    deadline = time.monotonic() + 20
    while stream._queue.qsize() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    return stream


@pytest.mark.parametrize("codec", ["VP8", "H264"])
def test_segments_show_the_masters_pattern_and_mix_the_floor(tmp_path: Path, codec: str) -> None:
    directory = tmp_path / "live"
    stream = _replay(directory, _frames(codec, 9.0, 2.0), floor="rural-1")
    try:
        playlist = parse_playlist((directory / PLAYLIST).read_text())
        assert len(playlist.segments) >= 3, playlist
        for duration, _uri in playlist.segments:
            assert SEGMENT_S * 0.75 <= duration <= SEGMENT_S * 1.3, playlist
        init = (directory / playlist.init).read_bytes()
        decoded = decode_segment(init, (directory / playlist.segments[1][1]).read_bytes())
        assert decoded.codecs == {"video": "h264", "audio": "aac"}
        assert decoded.pictures >= 25 and len(decoded.patterns) >= 0.95 * decoded.pictures
        assert {p.tag for p in decoded.patterns} == {source_tag("master")}  # the master's camera, not rural-1's
        counters = [p.counter for p in decoded.patterns]
        assert counters == sorted(counters) and counters[-1] - counters[0] >= 25  # a moving picture, in order
        # the sound: the master's 440 Hz and the floor's 660 Hz; rural-2 (not on the floor) is not mixed in
        assert decoded.samples.shape[0] >= 1.8 * 48000
        assert {440, 660} <= tones_hz(decoded.samples) and 880 not in tones_hz(decoded.samples)
        assert stream.stats.passthrough is (codec == "H264") and stream.stats.errors == 0
    finally:
        stream.close()
    assert not directory.exists()  # the stream's files go when it ends


def test_old_segments_are_deleted(tmp_path: Path) -> None:
    directory = tmp_path / "live"
    stream = _replay(directory, _frames("VP8", 26.0, 10.0))
    try:
        playlist = parse_playlist((directory / PLAYLIST).read_text())
        assert len(playlist.segments) == WINDOW and playlist.sequence >= 5, playlist
        on_disk = sorted(p.name for p in directory.glob("*.m4s"))
        assert f"{stream.stamp}-0.m4s" not in on_disk  # the first segments left the window and the disk
        assert len(on_disk) <= WINDOW + 3, on_disk
        assert all(uri in on_disk for _d, uri in playlist.segments)
    finally:
        stream.close()
