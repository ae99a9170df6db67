"""The archive built while the lesson is recorded equals the one built after it.

A 90 s synthetic lesson written to disk as it goes (the recorder's own writer): rural-1 has the
floor across the 30 s chunk boundary, rural-2 across the 60 s one, the master shares slides in
the last chunk, and every classroom leaves at 89.5 s. The chunk worker steps along as the
capture grows; at the end the final build must reuse its chunks (all but the last) and give the same shots,
duration, pictures and sound as a build of a copy of the capture from nothing. A worker killed
with SIGKILL mid-lesson leaves its finished chunks, which the final build reuses.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from archive_checks import audio_of, large_pictures, onset
from synthetic import CaptureParts, Classroom, SyntheticLesson, capture_parts
from synthetic_live import LiveCapture

from recorder.analysis import analyze_archive
from recorder.build import BuildOptions, build_archive
from recorder.chunks import DIRNAME, read_status
from recorder.live_build import ChunkWorker, LiveRecording
from recorder.manifest import verify

FPS = 10
OPTIONS = BuildOptions(fps=FPS, workers=2)


def _between(a: float, b: float):  # type: ignore[no-untyped-def]
    return lambda t: a <= t < b


@pytest.fixture(scope="module")
def parts() -> CaptureParts:
    lesson = SyntheticLesson(
        duration=89.5,
        fps=10,
        classrooms=[
            Classroom("master", 440, left=89.5, loud=lambda t: not (27.0 <= t < 34.0 or 57.0 <= t < 65.0)),
            Classroom("rural-1", 660, joined=0.3, left=89.5, loud=_between(27.5, 33.0)),
            Classroom("rural-2", 880, joined=0.6, left=89.5, loud=_between(59.7, 64.0)),
        ],
        events=[(27.0, "floor", {"classroom": "rural-1"}), (33.5, "floor", {"classroom": None}),
                (58.5, "floor", {"classroom": "rural-2"}), (64.5, "floor", {"classroom": None}),
                (20.0, "hand_raised", {"classroom": "rural-1"})],
        courseware=(70.0, 80.0),
    )
    return capture_parts(lesson)


def _frames_at(video: Path, times: list[float]) -> dict[float, np.ndarray]:
    out: dict[float, np.ndarray] = {}
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            t = round(float(frame.time or 0), 2)
            for want in times:
                if abs(t - want) < 0.5 / FPS:
                    out[want] = frame.to_ndarray(format="gray").astype(np.int16)
    return out


def test_incremental_build_equals_the_build_after_the_lesson(parts: CaptureParts, tmp_path: Path) -> None:
    live_dir = tmp_path / "recordings" / "synth-live"
    live = LiveCapture(live_dir, parts)
    worker = LiveRecording(live_dir, OPTIONS, replan_s=0)
    behind: dict[float, float] = {}
    for t in range(5, 90, 5):
        live.advance(float(t))
        while worker.step():
            pass
        status = read_status(live_dir)
        if status is not None:
            behind[t] = status["behind_s"]
    ledger = json.loads((live_dir / DIRNAME / "ledger.json").read_text())
    # 30-60 s behind live while the lesson goes on; everything built once all classrooms left
    assert 30 <= behind[65] <= 60 and 30 <= behind[85] <= 60, behind
    live.advance(89.6)
    while worker.step():
        pass
    ledger = json.loads((live_dir / DIRNAME / "ledger.json").read_text())
    assert sorted(ledger["video"]) == ["0", "1"], ledger["video"].keys()  # the last waits for the end
    live.finish()

    started = time.perf_counter()
    manifest = build_archive(live_dir, OPTIONS)
    final_s = time.perf_counter() - started
    assert manifest["build"]["chunks_reused"] == {"audio": 2, "video": 2}, manifest["build"]
    assert verify(live_dir).ok

    after_dir = tmp_path / "recordings" / "synth-after"
    shutil.copytree(live_dir / "capture", after_dir / "capture")
    started = time.perf_counter()
    reference = build_archive(after_dir, OPTIONS)
    after_s = time.perf_counter() - started
    print(f"final step {final_s:.1f} s after the incremental build, {after_s:.1f} s from nothing")
    assert reference["build"]["chunks_reused"] == {"audio": 0, "video": 0}

    # the same shots (the floor across both chunk boundaries), the same duration
    assert manifest["shots"] == reference["shots"]
    larges = [(s["large"], s["reason"]) for s in manifest["shots"]]
    assert ("rural-1:camera", "floor") in larges and ("rural-2:camera", "floor") in larges, larges
    floor1 = next(s for s in manifest["shots"] if s["large"] == "rural-1:camera")
    assert floor1["start"] < 30 < floor1["end"], floor1
    floor2 = next(s for s in manifest["shots"] if s["large"] == "rural-2:camera")
    assert floor2["start"] < 60 < floor2["end"], floor2
    assert manifest["duration_s"] == pytest.approx(reference["duration_s"], abs=0.1)
    with av.open(str(live_dir / "lesson.mp4")) as a, av.open(str(after_dir / "lesson.mp4")) as b:
        assert float(a.duration or 0) / 1e6 == pytest.approx(float(b.duration or 0) / 1e6, abs=0.1)

    # the same pictures at every switch and at the chunk boundaries
    switches = sorted({round(s["start"], 1) for s in manifest["shots"][1:]} | {29.9, 30.0, 59.9, 60.0})
    times = sorted({round(t + d, 1) for t in switches for d in (-0.2, 0.0, 0.3)})
    ours, theirs = _frames_at(live_dir / "lesson.mp4", times), _frames_at(after_dir / "lesson.mp4", times)
    assert set(ours) == set(theirs) == set(times)
    for t in times:
        assert float(np.abs(ours[t] - theirs[t]).mean()) < 0.5, f"frames differ at {t} s"
    seen = {round(s.t, 1): s.classroom for s in large_pictures(live_dir / "lesson.mp4", step=1)}
    assert seen[31.0] == "rural-1" and seen[61.0] == "rural-2" and seen[45.0] == "master"

    # the same sound, in sync across the chunk boundaries
    ours_a, rate = audio_of(live_dir / "lesson.mp4")
    theirs_a, _ = audio_of(after_dir / "lesson.mp4")
    assert abs(ours_a.shape[0] - theirs_a.shape[0]) <= 1024
    n = min(ours_a.shape[0], theirs_a.shape[0])
    assert float(np.abs(ours_a[:n] - theirs_a[:n]).max()) < 1e-3
    rural2_on = onset(ours_a[int(55 * rate):int(63 * rate)], rate, 880)
    assert rural2_on is not None and abs(55 + rural2_on - 59.7) <= 0.1, rural2_on
    window = int(0.01 * rate)  # rural-1's tone runs through the 30 s boundary without a gap
    probe = np.exp(-2j * np.pi * 660 * np.arange(window) / rate)
    around = ours_a[int(29.5 * rate):int(30.5 * rate)]
    power = np.abs(around[: around.shape[0] // window * window].reshape(-1, window) @ probe)
    assert power.min() > 0.5 * float(np.median(power)), power.min()

    # the analysis was made from the chunks: the recording page has it at once
    analysis = json.loads((live_dir / "analysis.json").read_text())
    assert {**analysis, "recording": "-"} == {**json.loads((after_dir / "analysis.json").read_text()), "recording": "-"}
    whole = analyze_archive(after_dir)  # the analysis of the whole capture in one pass, as before
    for ours_c, whole_c in zip(analysis["classrooms"], whole["classrooms"], strict=True):
        assert abs(ours_c["speaking_s"] - whole_c["speaking_s"]) <= 0.1, (ours_c, whole_c)
        assert len(ours_c["segments"]) == len(whole_c["segments"]), (ours_c, whole_c)
    assert analysis["st"]["sequence"] == whole["st"]["sequence"]
    assert analysis["turns"]["count"] == whole["turns"]["count"] >= 2
    assert analysis["hands"] == whole["hands"] and analysis["floor_changes"] == whole["floor_changes"]
    assert analysis["hands"]["raised"] == 1 and analysis["hands"]["answered"] == 1


def test_kill_9_mid_lesson_keeps_the_chunks_built(parts: CaptureParts, tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    directory = root / "synth-killed"
    live = LiveCapture(directory, parts)
    live.advance(66.0)
    worker = subprocess.Popen([sys.executable, "-m", "recorder", "chunks", "--root", str(root), "--fps", str(FPS),
                               "--poll", "0.2", "--priority", "normal"], stderr=subprocess.PIPE)
    ledger_path = directory / DIRNAME / "ledger.json"
    video0 = directory / DIRNAME / "video-0000.mp4"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if ledger_path.exists() and "0" in json.loads(ledger_path.read_text()).get("video", {}):
                break
            assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
            time.sleep(0.2)
        else:
            raise AssertionError("the chunk worker built no video chunk in 90 s")
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
    built = video0.stat().st_mtime_ns
    live.finish()
    manifest = build_archive(directory, OPTIONS)
    assert manifest["build"]["chunks_reused"]["video"] >= 1 and manifest["build"]["chunks_reused"]["audio"] >= 2
    assert video0.stat().st_mtime_ns == built  # reused, not rendered again
    assert verify(directory).ok
    seen = {round(s.t, 1): s.classroom for s in large_pictures(directory / "lesson.mp4", step=1)}
    assert seen[31.0] == "rural-1" and seen[10.0] == "master"


def test_the_chunk_worker_runs_at_idle_priority(tmp_path: Path) -> None:
    """SCHED_IDLE (only CPU time nothing else wants) and nice 19, on itself and its threads."""
    worker = subprocess.Popen([sys.executable, "-m", "recorder", "chunks", "--root", str(tmp_path), "--poll", "0.2"])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and os.sched_getscheduler(worker.pid) != os.SCHED_IDLE:
            time.sleep(0.1)
        time.sleep(1.0)
        for tid in os.listdir(f"/proc/{worker.pid}/task"):
            assert os.sched_getscheduler(int(tid)) == os.SCHED_IDLE, tid
            assert os.getpriority(os.PRIO_PROCESS, int(tid)) == 19, tid
        assert worker.poll() is None
    finally:
        worker.terminate()
        worker.wait(10)
    assert worker.returncode == 0


def test_lessons_recorded_at_once_share_the_worker_in_turn(parts: CaptureParts, tmp_path: Path) -> None:
    """One step per recording per round: a long backlog in one lesson does not starve another."""
    root = tmp_path / "recordings"
    lives = [LiveCapture(root / name, parts) for name in ("a-lesson", "b-lesson")]
    for live in lives:
        live.advance(66.0)  # each has two chunks' sound and one chunk's pictures due
    worker = ChunkWorker(root, OPTIONS)
    progress = []
    for _round in range(3):
        assert worker.run_round() == 2
        progress.append([sum(len(v) for v in json.loads((live.capture.parent / DIRNAME / "ledger.json")
                                                         .read_text()).values()) for live in lives])
    assert progress == [[1, 1], [2, 2], [3, 3]], progress
    for live in lives:
        status = read_status(live.capture.parent)
        assert status is not None and status["built_s"] == 30 and 30 <= status["behind_s"] <= 40, status
    lives[0].finish()  # an ended lesson is the final build's; the worker leaves it
    assert worker.run_round() == 0 and set(worker.recordings) == {root / "b-lesson"}
    lives[1].finish()
