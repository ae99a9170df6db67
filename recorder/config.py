"""Recorder settings, read once when the server starts (environment variables, all optional)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

HLS_MODES = ("broadcast", "all", "off")  # which lessons get a live HLS stream (`serve --hls`)


@dataclass(frozen=True)
class RecorderConfig:
    enabled: bool = True  # TWINCLASS_RECORDER=0 turns recording off for the whole server
    idle_s: float = 20.0  # a lesson is over when no classroom has been connected for this long
    keyframe_interval_s: float = 10.0  # the recorder asks each camera for a keyframe this often
    auto_build: bool = True  # build the archive as soon as a lesson is over
    live_build: bool = True  # build it in chunks while the lesson is recorded (idle priority)
    build_fps: int = 15
    build_workers: int = 0  # 0: one per core
    build_nice: int = 10  # builds yield the CPU to live lessons
    planned_poll_s: float = 15.0  # how often to look for lessons whose planned start has come
    planned_wait_s: float = 1800.0  # a lesson started by its timetable with nobody there: give up
    hls: str = "broadcast"  # live HLS for broadcast lessons, for "all" lessons or "off" (recorder.live_hls)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RecorderConfig:
        env = os.environ if env is None else env

        def num(name: str, default: float) -> float:
            value = env.get(name)
            return float(value) if value not in (None, "") else default

        def flag(name: str, default: bool) -> bool:
            value = env.get(name)
            return default if value in (None, "") else value.lower() not in ("0", "false", "no", "off")

        return cls(
            enabled=flag("TWINCLASS_RECORDER", True),
            idle_s=num("TWINCLASS_RECORDER_IDLE_S", cls.idle_s),
            keyframe_interval_s=num("TWINCLASS_RECORDER_KEYFRAME_S", cls.keyframe_interval_s),
            auto_build=flag("TWINCLASS_RECORDER_AUTOBUILD", True),
            live_build=flag("TWINCLASS_RECORDER_LIVE_BUILD", True),
            build_fps=int(num("TWINCLASS_RECORDER_FPS", cls.build_fps)),
            build_workers=int(num("TWINCLASS_RECORDER_WORKERS", cls.build_workers)),
            build_nice=int(num("TWINCLASS_RECORDER_NICE", cls.build_nice)),
            planned_poll_s=num("TWINCLASS_RECORDER_PLANNED_POLL_S", cls.planned_poll_s),
        )
