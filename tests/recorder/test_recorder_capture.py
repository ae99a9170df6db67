"""What a track file has on disk while it is still being written (what a kill -9 would leave)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from recorder.capture import TrackFile
from recorder.timeline import scan_track


def _opus_packets(seconds: float) -> list[bytes]:
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format = 48000, "mono", "s16"  # type: ignore[attr-defined]
    out: list[bytes] = []
    rng = np.random.default_rng(1)
    for i in range(int(seconds / 0.02)):
        pcm = (rng.standard_normal(960) * 3000).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate, frame.pts = 48000, i * 960
        out += [bytes(p) for p in enc.encode(frame)]  # type: ignore[attr-defined]
    return out


def test_an_open_track_file_has_all_but_the_last_half_second_on_disk(tmp_path: Path) -> None:
    packets = _opus_packets(6.0)
    track = TrackFile(tmp_path / "master.mic.01.mkv", "opus", "audio", 48000)
    worst = 0.0
    try:
        for n, data in enumerate(packets):
            track.write(n * 20, data)
            if n % 37 == 36:  # at odd moments: what has reached the disk (the file is still open)
                written = n * 0.020
                on_disk = scan_track(track.path, 0.0)
                assert on_disk["packets"] > 0 or written < 0.6
                lag = written - (on_disk["end"] if on_disk["packets"] else 0.0)
                worst = max(worst, lag)
    finally:
        track.close()
    print(f"worst lag of the open file behind the muxer: {worst:.3f} s")
    assert worst <= 0.6, f"{worst:.2f} s of audio written to the muxer were not yet on disk"
    done = scan_track(track.path, 0.0)
    assert done["packets"] == len(packets) and not done["truncated"]
