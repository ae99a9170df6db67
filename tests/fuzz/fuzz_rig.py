"""What every fuzz target runs against: one real `twinclass serve`, a real lesson on it, a loop.

- `LessonWatch`: the master and rural-1 classroom terminals (test pattern, tone) of the demo
  lesson, and a thread that reads their stats files twice a second: the frame rate each one
  decodes of the other, and their decode errors, over any window of the run.
- `LoopThread`: one asyncio loop in a thread, for the fuzzers' socket.io and aiortc clients, so a
  client connected for one example is still there for the next (Hypothesis calls are synchronous).
- `FuzzFailure`: what a target raises when the server mishandled an input (a hang, an internal
  error, a 5xx); bench/fuzz.py counts them, the tests let Hypothesis shrink them.

Imported by tests/fuzz/ (as `fuzz_rig`) and by bench/fuzz.py.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from harness import ClassroomLauncher, ClassroomProcess, ServerProcess, mint_token, wait_for

T = TypeVar("T")
PATTERN_FPS = 30  # `twinclass classroom`'s default --fps
REPLY_TIMEOUT_S = 10.0  # a server that has not answered by then is hanging on that input


class FuzzFailure(AssertionError):
    """The server mishandled one input; the message names what it did."""


class LoopThread:
    """An asyncio loop running in a daemon thread; `run` waits for one coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fuzz-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.run(cancel_all(), timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)


@dataclass
class Sample:
    at: float
    fps: dict[str, float]  # "<receiver> <- <sender>" -> frames decoded per second (last 3 s)
    decode_errors: int


@dataclass
class LessonWindow:
    """The lesson's health over one fuzz run."""

    fps_min: float
    fps_median: float
    decode_errors: int
    samples: int
    low_share: float = 0.0  # the share of samples in which a stream ran under half the pattern's rate
    load: str = ""  # /proc/loadavg at the end (other processes on the machine starve the terminals too)

    def problems(self, rate: float = PATTERN_FPS, share: float = 0.8, floor: float = 0.5,
                 low_allowed: float = 0.1) -> list[str]:
        """The median 3-s frame rate must stay at `share` of the pattern's, and no more than
        `low_allowed` of the samples may fall under `floor` of it: a machine shared with other
        work starves every process for a moment, a server stalled by an input shows for seconds."""
        out = []
        if self.samples == 0:
            out.append("no stats sample of the lesson during the run")
        if self.fps_median < share * rate:
            out.append(f"the lesson ran at a median {self.fps_median:.1f} fps (pattern {rate} fps, "
                       f"at least {share * rate:.0f} expected; load {self.load})")
        if self.low_share > low_allowed:
            out.append(f"the lesson ran under {floor * rate:.0f} fps in {self.low_share:.0%} of the samples "
                       f"(lowest {self.fps_min:.1f} fps; load {self.load})")
        if self.decode_errors:
            out.append(f"{self.decode_errors} frames of the lesson failed to decode")
        return out


class LessonWatch:
    """The real lesson that keeps running while the fuzzers hit the server (`stop` ends it)."""

    PAIRS = (("master", "rural-1"), ("rural-1", "master"))  # (receiver, sender)

    def __init__(self, server: ServerProcess, workdir: Path, duration_s: float = 3600) -> None:
        self.launcher = ClassroomLauncher(server, workdir)
        self.procs: dict[str, ClassroomProcess] = {
            who: self.launcher.start(who, role, "--duration", str(duration_s),
                                     token=mint_token(server, role=role, classroom=who), name=f"lesson-{who}")
            for who, role in (("master", "master"), ("rural-1", "rural"))
        }
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_loop, name="lesson-watch", daemon=True)

    def wait_running(self, timeout: float = 60) -> None:
        def running() -> bool:
            return all(self.procs[rx].remote(tx).get("video_fps", 0) >= 0.8 * PATTERN_FPS for rx, tx in self.PAIRS)

        wait_for(running, timeout, "the lesson's classrooms decoding each other at full rate", interval=0.5)
        self._thread.start()

    def _sample_loop(self) -> None:
        while not self._stop.wait(0.5):
            fps: dict[str, float] = {}
            errors = 0
            for rx, tx in self.PAIRS:
                remote = self.procs[rx].remote(tx)
                fps[f"{rx}<-{tx}"] = float(remote.get("video_fps", 0.0))
                errors += int(remote.get("decode_errors", 0))
            self.samples.append(Sample(time.monotonic(), fps, errors))

    def window(self, start: float, end: float | None = None) -> LessonWindow:
        """The lesson between two `time.monotonic()` readings (the fps is over 3 s, so the samples
        from 3 s after `start` on are the ones that saw only the run)."""
        end = end or time.monotonic()
        inside = [s for s in list(self.samples) if start + 3.0 <= s.at <= end] or \
                 [s for s in list(self.samples) if start <= s.at <= end]
        before = [s for s in list(self.samples) if s.at < start]
        if not inside:
            return LessonWindow(0.0, 0.0, 0, 0)
        values = [v for s in inside for v in s.fps.values()]
        base_errors = before[-1].decode_errors if before else inside[0].decode_errors
        low = sum(1 for s in inside if min(s.fps.values()) < 0.5 * PATTERN_FPS) / len(inside)
        return LessonWindow(min(values), statistics.median(values), inside[-1].decode_errors - base_errors,
                            len(inside), low, Path("/proc/loadavg").read_text().strip())

    def still_running(self) -> list[str]:
        return [f"classroom {who} exited ({p.proc.returncode})" for who, p in self.procs.items()
                if p.proc.poll() is not None]

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.launcher.stop_all()


def debug_counts(server: ServerProcess, admin: str) -> dict[str, Any]:
    status, body = server.api("/api/debug/counts", token=admin)
    if status != 200 or not isinstance(body, dict):
        raise FuzzFailure(f"/api/debug/counts answered {status}: {body!r}")
    return body


def lesson_participants(counts: dict[str, Any]) -> int:
    return int(counts.get("participants", {}).get("demo", 0))


def wait_clean(server: ServerProcess, admin: str, baseline: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
    """Wait until the server holds no more than it did before the run (the lesson's own classrooms and
    recorder); FuzzFailure with the counts if it still holds more after `timeout` seconds."""
    keys = ("peer_connections", "signaling_sessions", "sockets", "rooms")
    last: dict[str, Any] = {}

    def clean() -> bool:
        nonlocal last
        last = debug_counts(server, admin)
        return (all(int(last[k]) <= int(baseline[k]) for k in keys)
                and lesson_participants(last) <= lesson_participants(baseline)
                and int(last["tasks"]) <= int(baseline["tasks"]) + 5)

    try:
        wait_for(clean, timeout, "the server to let go of what the fuzz run made", interval=0.5)
    except AssertionError as exc:
        raise FuzzFailure(f"leak after the run: before {baseline}, after {last}") from exc
    return last


def healthy(server: ServerProcess) -> None:
    if server.proc.poll() is not None:
        raise FuzzFailure(f"the server exited ({server.proc.returncode})")
    status, body = server.api("/healthz")
    if status != 200:
        raise FuzzFailure(f"/healthz answered {status}: {body!r}")
