"""What the capture learns from encoded frames without decoding them, checked against real encoders."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from archive_checks import large_pictures
from synthetic import Classroom, SyntheticLesson, write_capture

from recorder import bitstream
from recorder.build import BuildOptions, build_archive


def _encode(codec: str, width: int, height: int, n: int = 3, **options: str) -> list[bytes]:
    enc = av.CodecContext.create(codec, "w")
    enc.width, enc.height, enc.pix_fmt, enc.time_base = width, height, "yuv420p", Fraction(1, 30)
    enc.options = options
    out = []
    for i in range(n):
        frame = av.VideoFrame.from_ndarray(np.full((height * 3 // 2, width), 40 * i, np.uint8), format="yuv420p")
        frame.pts = i
        out += [bytes(p) for p in enc.encode(frame)]
    return out + [bytes(p) for p in enc.encode(None)]


@pytest.mark.parametrize("size", [(320, 240), (640, 360), (1280, 720), (854, 480)])
def test_picture_size_and_keyframes_from_the_bitstream(size: tuple[int, int]) -> None:
    vp8 = _encode("libvpx", *size, deadline="realtime")
    assert bitstream.vp8_size(vp8[0]) == size and bitstream.vp8_is_keyframe(vp8[0])
    assert not bitstream.vp8_is_keyframe(vp8[1]) and bitstream.vp8_size(vp8[1]) is None
    h264 = _encode("libx264", *size, preset="ultrafast", tune="zerolatency")
    assert bitstream.h264_size(h264[0]) == size and bitstream.h264_is_keyframe(h264[0])
    assert not bitstream.h264_is_keyframe(h264[1])
    high = _encode("libx264", *size, preset="ultrafast", profile="high")
    assert bitstream.h264_size(high[0]) == size


def test_g711_expands_like_the_standard() -> None:
    """ITU-T G.711 anchor values; both laws are odd-symmetric and monotonic within each half."""
    ulaw = np.frombuffer(bitstream.g711_to_pcm16("PCMU", bytes(range(256))), "<i2")
    alaw = np.frombuffer(bitstream.g711_to_pcm16("PCMA", bytes(range(256))), "<i2")
    assert (ulaw[0x00], ulaw[0x7F], ulaw[0x80], ulaw[0xFF]) == (-32124, 0, 32124, 0)
    assert (alaw[0x55], alaw[0xD5], alaw[0x2A], alaw[0xAA]) == (-8, 8, -32256, 32256)
    assert (np.diff(ulaw[:128].astype(int)) > 0).all() and (ulaw[128:] == -ulaw[:128]).all()
    assert sorted(set(np.abs(alaw.astype(int)))) == sorted(set(np.abs(alaw[:128].astype(int))))


def test_an_h264_classroom_is_captured_and_archived(tmp_path: Path) -> None:
    """A browser that publishes H.264: the track is kept as H.264 and shows in the archive."""
    directory = tmp_path / "h264-lesson"
    lesson = SyntheticLesson(duration=6.0, fps=10, classrooms=[Classroom("master", 440, codec="H264"),
                                                               Classroom("rural-1", 660, joined=0.2)])
    write_capture(directory, lesson)
    manifest = build_archive(directory, BuildOptions(fps=10, workers=1))
    codecs = {(t["classroom"], t["source"]): t["codec"] for t in manifest["tracks"]}
    assert codecs[("master", "camera")] == "H264" and codecs[("rural-1", "camera")] == "VP8"
    with av.open(str(directory / "capture/tracks/master.camera.01.mkv")) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    seen = [s.classroom for s in large_pictures(directory / "lesson.mp4", step=4) if s.t > 1]
    assert seen and seen.count("master") == len(seen), seen
