"""The archive built while recording (the chunk worker) against the live lesson it must not disturb.

Run by ``bench/archive_build.py --incremental`` (``--minutes`` sets the lesson's length).

One `twinclass serve` with the recorder's automatic build on (its chunk worker running beside
it at SCHED_IDLE), a 1+3 lesson of `twinclass classroom` processes; rural-1 receives and
decodes everyone (its glass-to-glass latency and fps of the master's picture are the live
lesson's figures). During the lesson the bench alternates windows in which the chunk worker is
stopped (SIGSTOP) and running (SIGCONT): both conditions in the same run, same machine load;
the last windows keep it running so it catches up before the end. Then the classrooms leave,
and the bench times how long until the recording is ``ready``; finally the same capture is
built again from nothing, as after the lesson, for comparison.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import BIN, cpu_seconds, read_json, token


@dataclass
class WindowStats:
    running: bool
    seconds: float
    fps: float
    p50: float | None
    p95: float | None
    worker_cpu: float  # share of one core
    server_cpu: float
    behind_s: float | None
    load: float


@dataclass
class IncrementalResult:
    windows: list[WindowStats] = field(default_factory=list)
    ready_after_end_s: float = 0.0
    ready_after_stop_s: float = 0.0
    after_build_s: float = 0.0
    duration_s: float = 0.0
    worker_cpu_lesson: float = 0.0
    reused: dict[str, int] = field(default_factory=dict)
    chunks: int = 0
    loads: list[float] = field(default_factory=list)


def worker_pid(server_pid: int) -> int | None:
    """The server's chunk worker (a child process running ``recorder chunks``)."""
    try:
        children = Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()
    except OSError:
        return None
    for pid in children:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"chunks" in cmd and b"recorder" in cmd:
            return int(pid)
    return None


def master_stats(path: Path) -> dict[str, Any]:
    data = read_json(path) or {}
    return dict(data.get("remotes", {}).get("master", {}))


def run(server: Any, data_dir: Path, admin: str, minutes: float, window_s: float, size: str, fps: int,
        api: Any) -> IncrementalResult:
    lesson = "bench-live"
    api(server.url + "/api/lessons", admin, method="POST", body={
        "id": lesson, "title": "边录边合成 incremental", "subject": "英语", "grade": "3", "record": True,
        "master": "master", "rurals": ["rural-1", "rural-2", "rural-3"]})
    stats_path = data_dir / "rural-1-stats.json"
    procs = []
    for classroom, role in (("master", "master"), ("rural-1", "rural"), ("rural-2", "rural"), ("rural-3", "rural")):
        tok = token(data_dir, "--lesson", lesson, "--classroom", classroom, "--role", role)
        extra = ["--stats-json", str(stats_path)] if classroom == "rural-1" else ["--no-receive"]
        procs.append(subprocess.Popen(
            [str(BIN / "twinclass"), "classroom", "--server", server.url, "--token", tok, "--size", size,
             "--fps", str(fps), "--log-level", "WARNING", *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    result = IncrementalResult()
    lesson_s = minutes * 60
    t_start = time.monotonic()
    worker = None
    while worker is None and time.monotonic() - t_start < 30:
        worker = worker_pid(server.proc.pid)
        time.sleep(0.5)
    assert worker is not None, "the server started no chunk worker"
    cpu0 = cpu_seconds(worker)
    time.sleep(15)  # everyone joins, pictures flow
    catch_up_s = max(120.0, min(300.0, lesson_s * 0.2))  # the worker runs through the last part
    running = False
    try:
        while time.monotonic() - t_start + window_s <= lesson_s - catch_up_s:
            running = not running
            os.kill(worker, signal.SIGCONT if running else signal.SIGSTOP)
            result.windows.append(_window(server, worker, stats_path, running, window_s, admin, lesson, api))
            w = result.windows[-1]
            print(f"  window {'build running' if running else 'build stopped'}: {w.fps:.1f} fps, p50 {w.p50} "
                  f"p95 {w.p95} ms, worker {w.worker_cpu * 100:.0f} %, behind {w.behind_s} s, load {w.load:.1f}",
                  flush=True)
    finally:
        os.kill(worker, signal.SIGCONT)
    while time.monotonic() - t_start < lesson_s - 5:
        time.sleep(min(10.0, lesson_s - 5 - (time.monotonic() - t_start)))
        print(f"  catching up: behind {_behind(server, admin, lesson, api)} s", flush=True)
    result.worker_cpu_lesson = (cpu_seconds(worker) - cpu0) / (time.monotonic() - t_start)
    result.loads.append(os.getloadavg()[0])
    # the lesson ends: every classroom leaves
    for p in procs:
        p.send_signal(signal.SIGTERM)
    t_end = time.monotonic()
    for p in procs:
        p.wait(20)
    rec = _wait_ready(server, admin, lesson, api, timeout=600)
    result.ready_after_end_s = time.monotonic() - t_end
    ready_wall = time.time()
    result.loads.append(os.getloadavg()[0])
    rec_dir = data_dir / "recordings" / rec["id"]
    manifest = json.loads((rec_dir / "manifest.json").read_text())
    result.duration_s = manifest["duration_s"]
    result.ready_after_stop_s = ready_wall - manifest["ended_at"]
    result.reused = manifest["build"]["chunks_reused"]
    result.chunks = manifest["build"]["chunks"]
    # the same capture, built from nothing as after the lesson
    scratch = data_dir / "after-build"
    shutil.copytree(rec_dir / "capture", scratch / "capture")
    t0 = time.perf_counter()
    subprocess.run([str(BIN / "twinclass"), "archive", "build", str(scratch), "--quiet", "--no-catalog"], check=True)
    result.after_build_s = time.perf_counter() - t0
    result.loads.append(os.getloadavg()[0])
    return result


def _behind(server: Any, admin: str, lesson: str, api: Any) -> float | None:
    body = api(server.url + f"/api/recordings?lesson={lesson}", admin)
    for rec in body["recordings"]:
        if rec["status"] == "recording" and rec.get("build"):
            return float(rec["build"]["behind_live_s"])
    return None


def _window(server: Any, worker: int, stats_path: Path, running: bool, seconds: float, admin: str, lesson: str,
            api: Any) -> WindowStats:
    settle = min(10.0, seconds / 6)  # the receiver's latency list then covers this window only
    time.sleep(settle)
    s0 = master_stats(stats_path)
    w0, v0, t0 = cpu_seconds(worker), cpu_seconds(server.proc.pid), time.monotonic()
    time.sleep(seconds - settle)
    s1 = master_stats(stats_path)
    dt = time.monotonic() - t0
    frames = float(s1.get("frames_decoded", 0)) - float(s0.get("frames_decoded", 0))
    return WindowStats(running, dt, frames / dt, s1.get("latency_ms_p50"), s1.get("latency_ms_p95"),
                       (cpu_seconds(worker) - w0) / dt, (cpu_seconds(server.proc.pid) - v0) / dt,
                       _behind(server, admin, lesson, api), os.getloadavg()[0])


def _wait_ready(server: Any, admin: str, lesson: str, api: Any, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = api(server.url + f"/api/recordings?lesson={lesson}", admin)
        for rec in body["recordings"]:
            if rec["status"] == "ready":
                return dict(rec)
            if rec["status"] == "failed":
                raise RuntimeError(f"archive build failed: {rec['error']}")
        time.sleep(0.2)
    raise TimeoutError("the recording was not ready in time")


def rows(r: IncrementalResult) -> list[tuple[str, str, str]]:
    def summary(values: list[float]) -> str:
        if not values:
            return "-"
        return f"median {statistics.median(values):.1f}, min {min(values):.1f}, max {max(values):.1f}"

    stopped = [w for w in r.windows if not w.running]
    going = [w for w in r.windows if w.running]

    def figures(ws: list[WindowStats]) -> str:
        return (f"fps {summary([w.fps for w in ws])}; p50 {summary([float(w.p50) for w in ws if w.p50 is not None])}"
                f" ms; p95 {summary([float(w.p95) for w in ws if w.p95 is not None])} ms")

    loads = [w.load for w in r.windows] + r.loads
    return [
        ("incremental: lesson", f"1+3, {r.duration_s / 60:.1f} min, {len(r.windows)} alternating windows", ""),
        ("incremental: ready after the lesson's end", f"{r.ready_after_end_s:.1f} s (chunks reused: "
         f"{r.reused.get('video', 0)}/{r.chunks} video, {r.reused.get('audio', 0)}/{r.chunks} sound)", "<= 30 s"),
        ("incremental: ready after the last classroom left", f"{r.ready_after_stop_s:.1f} s "
         "(the lesson is over 1 s after that: TWINCLASS_RECORDER_IDLE_S=1)", ""),
        ("after-lesson build of the same capture", f"{r.after_build_s:.1f} s", ""),
        ("live master picture, chunk worker stopped", figures(stopped), ""),
        ("live master picture, chunk worker running", figures(going), "no change beyond 5 %"),
        ("chunk worker CPU, running windows", f"{summary([w.worker_cpu * 100 for w in going])} % of a core", ""),
        ("chunk worker CPU, whole lesson", f"{r.worker_cpu_lesson * 100:.1f} % of a core", ""),
        ("server CPU, stopped / running", f"{statistics.median([w.server_cpu for w in stopped] or [0]) * 100:.1f} / "
         f"{statistics.median([w.server_cpu for w in going] or [0]) * 100:.1f} % of a core", ""),
        ("build backlog (behind live), running windows", summary([w.behind_s for w in going if w.behind_s is not None])
         + " s", "30-60 s"),
        ("load average during the run", f"{min(loads):.1f} .. {max(loads):.1f} (2 cores)", ""),
    ]
