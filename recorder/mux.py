"""Joining the chunks into lesson.mp4: their H.264 and AAC packets, re-timed, index at the front.

No re-encoding: every video chunk starts with an IDR frame and comes from an encoder with the
same settings; every audio chunk holds the AAC packets of its own span (see `chunk_audio`).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av

from recorder.audio import AAC_FRAME


def join_chunks(video: list[tuple[int, Path]], audio: list[tuple[int, Path]], fps: int, out: Path) -> None:
    """`video`: (first frame, chunk file); `audio`: (first packet's time in samples, chunk file)."""
    v_inputs = [(first, av.open(str(path))) for first, path in video]
    a_inputs = [(first, av.open(str(path))) for first, path in audio]
    try:
        output = av.open(str(out), "w", format="mp4", options={"movflags": "+faststart"})
        ov = output.add_stream_from_template(v_inputs[0][1].streams.video[0])
        oa = output.add_stream_from_template(a_inputs[0][1].streams.audio[0])

        def pictures() -> Iterator[tuple[float, int, Any]]:
            for first, container in v_inputs:
                stream: Any = container.streams.video[0]
                tb = stream.time_base
                shift = round(first / fps / tb)
                for packet in container.demux(stream):
                    if packet.dts is None:
                        continue
                    packet.pts += shift
                    packet.dts += shift
                    packet.stream = ov
                    yield float(packet.dts * tb), 0, packet

        def sound() -> Iterator[tuple[float, int, Any]]:
            for first, container in a_inputs:
                stream: Any = container.streams.audio[0]
                i = 0
                for packet in container.demux(stream):
                    if packet.size == 0:
                        continue
                    # the chunk's packets follow each other without a gap: time them from its start
                    pts = first + i * AAC_FRAME
                    i += 1
                    packet.pts = packet.dts = pts
                    packet.time_base = stream.time_base
                    packet.stream = oa
                    yield pts / 48000, 1, packet

        for _t, _k, packet in heapq.merge(pictures(), sound(), key=lambda x: (x[0], x[1])):
            output.mux(packet)
        output.close()
    finally:
        for _first, container in v_inputs + a_inputs:
            container.close()
