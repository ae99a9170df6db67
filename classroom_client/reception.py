"""A classroom's downlink: the slots the server feeds it, and what arrives on each (per remote classroom).

`Reception` outlives sessions: the remotes' figures (frames decoded, sound heard...) keep counting
across reconnections, while the slots are replaced by each session's `subscribe` reply and `slots`
events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from classroom_client.jitter import VideoJitterBuffer
from classroom_client.opus import CONCEALED
from classroom_client.pattern import read_pattern
from classroom_client.receiving import Receiving, StallWatch, receive_with_our_buffers
from classroom_client.stats import RemoteStats

logger = logging.getLogger(__name__)

TICK_S = 0.05  # jitter buffer deadlines, re-NACKs and byte counts run on this timer (re-NACK ~1.2 RTT)


@dataclass
class SlotInfo:
    key: str
    kind: str
    group: str
    source: str
    classroom: str | None
    tier: str | None = None  # "full" | "low" from the server (None: it did not say)


class Reception:
    """Slots by mid, what each remote classroom sends us, and the receive loops of one subscription."""

    def __init__(self, spawn: Callable[[Any], asyncio.Task[Any]]) -> None:
        self.remotes: dict[str, RemoteStats] = {}
        self.slots_by_mid: dict[str, SlotInfo] = {}
        self.tags: dict[int, str] = {}  # test-pattern tag -> classroom id
        self.rtt_ms: Callable[[], Any] = lambda: None  # the server's last measure of our round trip
        self.stalls_recovered = 0
        self._spawn = spawn

    def remote(self, classroom: str) -> RemoteStats:
        r = self.remotes.get(classroom)
        if r is None:
            r = self.remotes[classroom] = RemoteStats()
        return r

    def apply_slots(self, slots: list[dict[str, Any]]) -> None:
        for s in slots:
            if s.get("mid") is None:
                continue
            tier = s.get("tier")
            info = SlotInfo(s["key"], s["kind"], s["group"], s["source"], s.get("classroom"),
                            tier if isinstance(tier, str) else None)
            previous = self.slots_by_mid.get(s["mid"])
            self.slots_by_mid[s["mid"]] = info
            if info.classroom and (previous is None or previous.classroom != info.classroom):
                self.remote(info.classroom).mark_visible()
            if info.classroom and info.tier is not None and (info.kind == "video" or self.remote(
                    info.classroom).tier is None):
                self.remote(info.classroom).tier = info.tier
        shown = {s.classroom for s in self.slots_by_mid.values() if s.classroom}
        for classroom, remote in self.remotes.items():
            if remote.visible and classroom.split("/")[0] not in shown:
                remote.mark_hidden()

    def receive_on(self, pc: RTCPeerConnection, slots: list[dict[str, Any]], alive: Callable[[], bool]) -> None:
        """A new subscription: its slots replace the old ones; every track it brings is consumed."""
        self.slots_by_mid.clear()
        self.apply_slots(slots)
        receivings: list[Receiving] = []
        self._spawn(self._tick(receivings, pc, alive))

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            transceiver = next((t for t in pc.getTransceivers() if t.receiver.track is track), None)
            slot = self.slots_by_mid.get(transceiver.mid or "") if transceiver else None
            if slot is None or transceiver is None:
                logger.warning("track on unknown transceiver")
                return
            receiving = receive_with_our_buffers(transceiver.receiver, transceiver.mid or "", track.kind)
            receivings.append(receiving)
            self._spawn(self._consume(track, slot, receiving.watch))

    async def _tick(self, receivings: list[Receiving], pc: RTCPeerConnection, alive: Callable[[], bool]) -> None:
        """Deadlines and re-NACKs of our buffers, bytes per remote, stall checks: every TICK_S."""
        last_stall_check = time.monotonic()
        while alive() and pc.connectionState != "closed":
            await asyncio.sleep(TICK_S)
            rtt = self.rtt_ms()
            check_stalls = time.monotonic() - last_stall_check >= 0.5
            if check_stalls:
                last_stall_check = time.monotonic()
            for r in receivings:
                if isinstance(r.buffer, VideoJitterBuffer) and isinstance(rtt, int | float) and rtt > 0:
                    r.buffer.rtt_s = rtt / 1000
                r.buffer.tick()
                new_bytes, r.counted = r.buffer.bytes_received - r.counted, r.buffer.bytes_received
                slot = self.slots_by_mid.get(r.mid)
                if slot is not None and slot.classroom:
                    who = f"{slot.classroom}/courseware" if slot.source == "courseware" else slot.classroom
                    self.remote(who).on_rtp_bytes(new_bytes)
                if check_stalls and r.watch is not None and r.watch.check():
                    self.stalls_recovered += 1
                    logger.info("video stalled with packets arriving: asked for a keyframe")

    async def _consume(self, track: MediaStreamTrack, slot: SlotInfo, watch: StallWatch | None = None) -> None:
        mid_slot = slot
        try:
            while True:
                frame = await track.recv()
                if watch is not None:
                    watch.frame()
                current = next((s for s in self.slots_by_mid.values() if s.key == mid_slot.key), mid_slot)
                if isinstance(frame, av.VideoFrame):
                    info = read_pattern(luma(frame))
                    who = self.tags.get(info.tag) if info else None
                    who = who or current.classroom
                    if who is None:
                        continue
                    if current.source == "courseware":
                        who = f"{who}/courseware"
                    self.remote(who).on_video_frame(frame.width, frame.height, info)
                elif isinstance(frame, av.AudioFrame):
                    if current.classroom is None:
                        continue
                    samples = frame.to_ndarray()
                    if samples.ndim == 2 and samples.shape[0] == 1 and frame.layout.nb_channels > 1:
                        samples = samples.reshape(-1, frame.layout.nb_channels)[:, 0]
                    self.remote(current.classroom).on_audio_frame(
                        samples.reshape(-1), frame.sample_rate, concealed=frame.opaque == CONCEALED,
                        pts=frame.pts, duration=frame.samples)
        except MediaStreamError:
            return


def luma(frame: av.VideoFrame) -> np.ndarray:
    """The picture's Y plane (no copy for the usual planar formats)."""
    if frame.format.name in ("yuv420p", "yuvj420p", "nv12"):
        plane = frame.planes[0]
        buf = np.frombuffer(memoryview(plane), np.uint8).reshape(frame.height, plane.line_size)
        return buf[:, : frame.width]
    return frame.to_ndarray(format="gray")
