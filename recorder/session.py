"""A recording session: the recorder joins a lesson as a hidden system participant and captures it.

It subscribes through the same interface as every subscriber (`LessonRoom.join`, `subscribe`,
`subscribe_answer`): the room gives system participants a slot for every classroom's camera and
microphone and the master's courseware, and the forwarding plane feeds them like any other.
On its own peer connection the receivers hand over reassembled encoded frames
(`capture_encoded_frames`), which a writer thread muxes to disk (and `taps`, the live HLS
stream, are given too). Room events go to
``events.jsonl`` as they happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription

from recorder.capture import CapturedFrame, CaptureWriter, JsonLines, write_json_atomic
from sfu.lessons import Role
from sfu.media.aiortc_adapter import capture_encoded_frames, packets_received, restart_video_reassembly
from sfu.media.endpoint import rtc_configuration
from sfu.room import LessonRoom, Participant

logger = logging.getLogger(__name__)

CAPTURE_FORMAT = "twinclass-capture/1"
RECORDED_EVENTS = frozenset({
    "classroom_joined", "classroom_left", "hand_raised", "hand_lowered", "floor", "mute_requested",
    "courseware", "published", "unpublished",
})


STALL_S = 0.7  # no frame for this long while packets keep arriving: reassembly is stuck


@dataclass
class SessionOptions:
    keyframe_interval_s: float = 10.0  # ask for a keyframe this often (0: never); bounds build seeks
    capture: bool = True  # False: nothing on disk, the frames only go to `taps` (a lesson not recorded)


class StallWatch:
    """A video receiver whose packets arrive but whose frames stopped coming out.

    After a loss that retransmission could not repair, aiortc's jitter buffer holds everything
    back for seconds; the recorder restarts reassembly (and asks for a keyframe) instead.
    """

    def __init__(self, receiver: RTCRtpReceiver) -> None:
        self.receiver = receiver
        self.frames = 0  # bumped by the sink: the only per-frame cost
        self._seen = -1
        self._since = time.monotonic()  # when the frame count last moved
        self._packets = 0  # packets received then
        self.recovered = 0

    def check(self) -> None:
        now = time.monotonic()
        if self.frames != self._seen:
            self._seen, self._since, self._packets = self.frames, now, packets_received(self.receiver)
            return
        if now - self._since < STALL_S:
            return
        arrived = packets_received(self.receiver) - self._packets
        if arrived < 20:
            return  # nothing arriving: the source is quiet, not stuck
        logger.info("video reassembly stuck (%d packets, no frame for %.1f s): restarting it", arrived,
                    now - self._since)
        restart_video_reassembly(self.receiver)
        self.recovered += 1
        self._seen = -1


def request_keyframe(receiver: RTCRtpReceiver) -> None:
    """Send a PLI for every source this receiver heard recently (a subscriber's ordinary RTCP).

    aiortc has no public call for this; `_send_rtcp_pli` is the one its own receiver uses.
    """
    for source in receiver.getSynchronizationSources():
        task = asyncio.ensure_future(receiver._send_rtcp_pli(source.source))  # type: ignore[attr-defined]
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)


class RecordingSession:
    """Captures one lesson (or one part of it, if classrooms come back after it ended)."""

    def __init__(self, room: LessonRoom, recording_id: str, directory: Path, options: SessionOptions) -> None:
        self.room = room
        self.recording_id = recording_id
        self.directory = directory
        self.capture_dir = directory / "capture"
        self.options = options
        self.epoch = time.time()
        self.ended_at: float | None = None
        self.joined_classrooms: set[str] = set()
        self.events: JsonLines | None = None
        if options.capture:
            self.capture_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.capture_dir / "session.json", {
                "format": CAPTURE_FORMAT,
                "recording": recording_id,
                "epoch": self.epoch,
                "lesson": room.lesson.to_json(),
            })
            self.events = JsonLines(self.capture_dir / "events.jsonl")
        self.event("state", room.state())
        self.writer: CaptureWriter | None = None
        self.participant: Participant | None = None
        self.pc: RTCPeerConnection | None = None
        self._generation = 0
        self.watches: list[StallWatch] = []
        self.taps: list[Callable[[CapturedFrame], None]] = []  # also given every frame (the live HLS stream)
        # (every S seconds, the slot keys to ask for a keyframe: the live HLS stream's segments)
        self.frequent_keyframes: tuple[float, Callable[[], set[str]]] | None = None
        self.stalls_recovered = 0
        self._stalls_before = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._connected = asyncio.Event()

    # -- events ------------------------------------------------------------------------------

    def event(self, name: str, data: dict[str, Any]) -> None:
        if self.events is not None:
            self.events.append({"t": time.time(), "event": name, **data})

    def on_room_event(self, name: str, data: dict[str, Any]) -> None:
        if name == "classroom_joined":
            self.joined_classrooms.add(str(data.get("classroom")))
        if name in RECORDED_EVENTS and not self._stopping:
            self.event(name, data)

    # -- media -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Join the room as a hidden participant and start receiving every slot."""
        if self._stopping:
            return
        self._generation += 1
        participant = Participant(
            sid=f"recorder-{uuid.uuid4().hex[:12]}", classroom="recorder", name="录制 Recorder", role=Role.SYSTEM
        )
        await self.room.join(participant)
        self.participant = participant
        offer, slots = await self.room.subscribe(participant.sid)
        by_mid = {s["mid"]: s for s in slots if s.get("mid") is not None}
        if self._stopping:
            await self._leave()
            return
        if self.writer is None and self.options.capture:
            self.writer = CaptureWriter(self.capture_dir, self.epoch, {s["key"]: s["kind"] for s in slots})
        pc = RTCPeerConnection(rtc_configuration(self.room.ice_servers))
        self.pc = pc
        self._watch(pc)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        watches = []
        receivers: dict[str, RTCRtpReceiver] = {}
        for transceiver in pc.getTransceivers():
            slot = by_mid.get(transceiver.mid)
            if slot is not None:
                receivers[slot["key"]] = transceiver.receiver
                watch = StallWatch(transceiver.receiver) if transceiver.kind == "video" else None
                capture_encoded_frames(transceiver.receiver, self._sink(slot["key"], self._generation, watch))
                if watch is not None:
                    watches.append(watch)
        await pc.setLocalDescription(await pc.createAnswer())
        await self.room.subscribe_answer(participant.sid, pc.localDescription.sdp)
        self.watches = watches
        if self._stopping:  # the lesson ended while we were still joining
            await self._leave()
            return
        self._spawn(self._watch_stalls(pc, watches))
        if self.options.keyframe_interval_s > 0:
            self._spawn(self._keyframes(pc))
        if self.frequent_keyframes is not None:
            self._spawn(self._frequent_keyframes(pc, receivers, *self.frequent_keyframes))
        logger.info("recording %s: joined lesson %s with %d slots", self.recording_id, self.room.lesson.id, len(by_mid))

    def _sink(self, key: str, generation: int, watch: StallWatch | None) -> Any:
        writer = self.writer

        def sink(codec: Any, frame: Any) -> None:
            if watch is not None:
                watch.frames += 1
            captured = CapturedFrame(key, codec.name, codec.clockRate, frame.data, frame.timestamp, time.time(),
                                     generation)
            if writer is not None:
                writer.put(captured)
            for tap in self.taps:
                tap(captured)

        return sink

    async def _watch_stalls(self, pc: RTCPeerConnection, watches: list[StallWatch]) -> None:
        while pc is self.pc and pc.connectionState != "closed":
            await asyncio.sleep(0.25)
            for watch in watches:
                watch.check()
            self.stalls_recovered = sum(w.recovered for w in watches) + self._stalls_before

    def _watch(self, pc: RTCPeerConnection) -> None:
        @pc.on("connectionstatechange")
        async def changed() -> None:
            state = pc.connectionState
            if state == "connected":
                self._connected.set()
            if state == "failed" and pc is self.pc and not self._stopping:
                logger.warning("recording %s: connection failed, rejoining", self.recording_id)
                self._spawn(self._rejoin())

    async def _rejoin(self) -> None:
        await self._leave()
        if not self._stopping:
            await self.start()

    async def _keyframes(self, pc: RTCPeerConnection) -> None:
        """Ask every video source for a keyframe now and then: the build seeks to them."""
        while pc is self.pc and pc.connectionState != "closed":
            await asyncio.sleep(self.options.keyframe_interval_s)
            for transceiver in pc.getTransceivers():
                if transceiver.kind == "video" and pc.connectionState == "connected":
                    request_keyframe(transceiver.receiver)

    async def _frequent_keyframes(self, pc: RTCPeerConnection, receivers: dict[str, RTCRtpReceiver], every_s: float,
                                  wanted: Callable[[], set[str]]) -> None:
        while pc is self.pc and pc.connectionState != "closed":
            await asyncio.sleep(every_s)
            for key in wanted():
                if key in receivers and pc.connectionState == "connected":
                    request_keyframe(receivers[key])

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_connected(self, timeout: float) -> bool:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout)
        return self._connected.is_set()

    async def _leave(self) -> None:
        self._stalls_before = self.stalls_recovered
        participant, pc = self.participant, self.pc
        self.participant = self.pc = None
        if participant is not None:
            with contextlib.suppress(Exception):
                await self.room.leave(participant.sid, reason="recording stopped")
        if pc is not None:
            with contextlib.suppress(Exception):
                await pc.close()

    async def stop(self, reason: str, ended_at: float | None = None) -> None:
        """Leave the lesson, finish every file and write ``ended.json``."""
        if self._stopping:
            return
        self._stopping = True
        self.ended_at = ended_at or time.time()
        for task in list(self._tasks):
            task.cancel()
        await self._leave()
        writer = self.writer
        if writer is not None:
            await asyncio.get_running_loop().run_in_executor(None, writer.close)
        self.event("recording_stopped", {"reason": reason})
        if self.events is None:
            logger.info("live session %s stopped (%s)", self.recording_id, reason)
            return
        self.events.close()
        write_json_atomic(self.capture_dir / "ended.json", {
            "ended_at": self.ended_at,
            "reason": reason,
            "frames": writer.stats.frames if writer else 0,
            "write_errors": writer.stats.errors if writer else 0,
            "stalls_recovered": self.stalls_recovered,
        })
        logger.info("recording %s stopped (%s)", self.recording_id, reason)
