"""The VP8 encoder settings every encoder of ours uses (the server's tiers, the classroom terminal).

aiortc 1.16.0's `Vp8Encoder` opens libvpx with `static-thresh=1` and `noise-sensitivity=4`
(temporal denoising). Together they sometimes leave macroblocks that changed uncoded: sharp
content that flips between frames (text on courseware, the test pattern's counter blocks) keeps
a stale block for a frame. Encoding the test pattern offline, with no network at all, 0.4–0.8 %
of decoded frames failed their checksum at 250 kbps–1.2 Mbps (7–15 of 1,800); with
`static-thresh=0` (libvpx's default) none did. That was the "unreadable frame" every receiver of
one publisher saw at the same frame on a clean loopback lesson.
"""

from __future__ import annotations

import fractions
from typing import Any

import av

VIDEO_TIME_BASE = fractions.Fraction(1, 90000)


def open_vp8_encoder(width: int, height: int, bitrate: int, threads: int = 1, denoise: bool = True) -> Any:
    """A libvpx encoder context with aiortc's real-time CBR settings, minus the stale blocks."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height = width, height
    codec.pix_fmt = "yuv420p"
    codec.bit_rate = bitrate
    codec.time_base = VIDEO_TIME_BASE
    codec.gop_size = 3000  # keyframes on request only
    codec.qmin, codec.qmax = 2, 56
    rate = str(bitrate)
    codec.options = {
        "bufsize": rate, "minrate": rate, "maxrate": rate,  # CBR with a one-second buffer
        "cpu-used": "-6", "deadline": "realtime", "lag-in-frames": "0",
        "noise-sensitivity": "4" if denoise else "0",
        "static-thresh": "0",
        "undershoot-pct": "100", "overshoot-pct": "15", "partitions": "0",
    }
    codec.thread_count = threads
    return codec
