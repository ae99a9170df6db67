"""Which lessons have a live HLS stream (`recorder.live_hls`), and what feeds each one.

Broadcast lessons have one (`serve --hls all`: every lesson; `off`: none) while a classroom is
connected. A lesson being recorded feeds its stream from its recording session; a lesson that is
not recorded (``record: false``, or recording off for the server) gets a session of its own that
writes nothing to disk, so either way one hidden subscriber receives the lesson and nothing is
subscribed twice. Each stream writes into ``<data dir>/live/<lesson>/<start ms>/`` (a stream that
replaces another never shares its files), removed when the stream ends.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from recorder.live_hls import SEGMENT_S, LiveHls
from recorder.session import RecordingSession, SessionOptions
from sfu.lessons import BROADCAST, Lesson
from sfu.room import LessonRoom

logger = logging.getLogger(__name__)


class LiveStreams:
    def __init__(self, root: Path, mode: str) -> None:
        self.root = root
        shutil.rmtree(root, ignore_errors=True)  # what a crash left: those lessons are not live
        self.mode = mode  # broadcast | all | off
        self.streams: dict[str, LiveHls] = {}  # lesson id -> its stream (what the routes serve)
        self._own: dict[str, RecordingSession] = {}  # lessons not recorded: a session that only feeds the stream
        self._tasks: set[asyncio.Task[Any]] = set()

    def wants(self, lesson: Lesson) -> bool:
        return self.mode == "all" or (self.mode == "broadcast" and lesson.kind == BROADCAST)

    def _new(self, room: LessonRoom, session: RecordingSession) -> LiveHls:
        lesson = room.lesson
        stream = LiveHls(self.root / lesson.id / str(int(time.time() * 1000)), lesson.master.id,
                         classrooms=len(lesson.classrooms))
        stream.floor = room.floor
        session.taps.append(stream.put)
        session.frequent_keyframes = (SEGMENT_S, stream.keyframes_wanted)
        self.streams[lesson.id] = stream
        return stream

    def recording_started(self, room: LessonRoom, session: RecordingSession) -> None:
        """A recording session joins the lesson: it feeds the stream (an own session is no longer needed)."""
        if not self.wants(room.lesson):
            return
        self._stop(room.lesson.id)
        self._new(room, session)

    async def recording_ended(self, lesson_id: str) -> None:
        if lesson_id in self._own:
            return  # not the recording's stream
        stream = self.streams.pop(lesson_id, None)
        if stream is not None:
            await asyncio.get_running_loop().run_in_executor(None, stream.close)

    def sync(self, room: LessonRoom, *, recorded: bool, closing: bool) -> None:
        """A lesson that is not recorded: its own session while a classroom is connected."""
        lesson = room.lesson
        needed = (self.wants(lesson) and not recorded and not closing and not lesson.extra.get("ended_at")
                  and bool(room.connected_classrooms()))
        if needed and lesson.id not in self._own and lesson.id not in self.streams:
            session = RecordingSession(room, f"live-{lesson.id}", self.root / lesson.id,
                                       SessionOptions(keyframe_interval_s=0, capture=False))
            self._own[lesson.id] = session
            self._new(room, session)
            self._spawn(self._join(session))
            logger.info("lesson %s is not recorded: live HLS from a session of its own", lesson.id)
        elif not needed and lesson.id in self._own:
            self._stop(lesson.id)

    async def _join(self, session: RecordingSession) -> None:
        try:
            await session.start()
        except Exception:
            logger.exception("live HLS could not join lesson %s", session.room.lesson.id)

    def floor(self, lesson_id: str, classroom: str | None) -> None:
        stream = self.streams.get(lesson_id)
        if stream is not None:
            stream.floor = classroom  # whose microphone is mixed in besides the master's

    def _stop(self, lesson_id: str) -> None:
        session = self._own.pop(lesson_id, None)
        if session is None:
            return
        stream = self.streams.pop(lesson_id, None)
        self._spawn(self._finish(session, stream))

    async def _finish(self, session: RecordingSession, stream: LiveHls | None) -> None:
        await session.stop("live stream no longer needed")
        if stream is not None:
            await asyncio.get_running_loop().run_in_executor(None, stream.close)

    async def close(self) -> None:
        for lesson_id in list(self._own):
            self._stop(lesson_id)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
