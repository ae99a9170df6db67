"""The terminal's receive path around aiortc: our jitter buffers per transceiver, stall watching."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from classroom_client.jitter import AudioJitterBuffer, VideoJitterBuffer
from sfu.media.aiortc_adapter import install_jitter_buffer, packets_received, receiver_codecs, send_nack, send_pli


@dataclass
class Receiving:
    """One receiving transceiver: its slot's mid, our jitter buffer, and bytes already counted."""

    mid: str
    buffer: VideoJitterBuffer | AudioJitterBuffer
    watch: StallWatch | None
    counted: int = 0


def receive_with_our_buffers(receiver: Any, mid: str, kind: str) -> Receiving:
    """Our jitter buffers (and, for audio, our Opus decoder) in aiortc's receive path."""
    buffer: VideoJitterBuffer | AudioJitterBuffer
    if kind == "video":
        def codec_name(payload_type: int) -> str:
            codec = receiver_codecs(receiver).get(payload_type)
            return codec.name if codec is not None else ""

        buffer = VideoJitterBuffer(codec_name, nack=lambda ssrc, seqs: send_nack(receiver, ssrc, seqs),
                                   pli=lambda ssrc: send_pli(receiver, ssrc))
        watch: StallWatch | None = StallWatch(receiver, buffer)
    else:
        buffer = AudioJitterBuffer()
        watch = None
    buffer.deliver = install_jitter_buffer(receiver, buffer)
    return Receiving(mid, buffer, watch)


class StallWatch:
    """Notices a video track whose packets arrive but whose frames stopped coming out."""

    STALL_S = 1.0

    def __init__(self, receiver: Any, buffer: VideoJitterBuffer) -> None:
        self.receiver = receiver
        self.buffer = buffer
        self.last_frame = time.monotonic()
        self.packets_at_frame = 0

    def frame(self) -> None:
        self.last_frame = time.monotonic()
        self.packets_at_frame = packets_received(self.receiver)

    def check(self) -> bool:
        if time.monotonic() - self.last_frame < self.STALL_S:
            return False
        if packets_received(self.receiver) - self.packets_at_frame < 20:
            return False  # nothing arriving: the source is quiet, not stuck
        self.buffer.request_keyframe()
        self.frame()
        return True
