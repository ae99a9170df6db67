"""kill -9 of the server mid-lesson: what reached the disk (all but the last ≤ 2 s) becomes an archive."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import av
import pytest
from archive_checks import cli, large_pictures, wait_for_recording
from harness import ClassroomLauncher, start_server, wait_until

from recorder.timeline import load_capture


def test_sigkill_mid_lesson_still_leaves_an_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWINCLASS_RECORDER_IDLE_S", "2")
    data_dir = tmp_path / "var"
    server = start_server(data_dir)
    tokens = {c: server.token(classroom=c, role=r) for c, r in (("master", "master"), ("rural-1", "rural"))}
    admin = server.admin_token()
    launcher = ClassroomLauncher(server, tmp_path)
    try:
        master = launcher.start("master", "master", "--no-receive", token=tokens["master"])
        rural = launcher.start("rural-1", "rural", "--no-receive", token=tokens["rural-1"])
        wait_until(lambda: master.stats().get("sessions") and rural.stats().get("sessions"), 30,
                   message="both classrooms joined")
        time.sleep(9)

        def backlog() -> dict | None:
            code, body = server.api("/api/recordings?lesson=demo", token=admin)
            assert code == 200 and [r["status"] for r in body["recordings"]] == ["recording"]
            return body["recordings"][0]["build"]

        # the chunk worker tells how far behind live the archive is (nothing built yet: < 30 s in)
        wait_until(lambda: (backlog() or {}).get("recorded_s", 0) > 3, 30, message="the build backlog is shown")
        build = backlog()
        assert build is not None and build["built_s"] == 0 and build["behind_live_s"] == build["recorded_s"], build
        t_kill = time.time()
        os.kill(server.pid, signal.SIGKILL)
        server.proc.wait(10)
    finally:
        launcher.stop_all()
        server.stop()

    (rec_dir,) = (data_dir / "recordings").iterdir()
    capture = load_capture(rec_dir)
    assert not capture.complete
    on_disk = {t.key: capture.t0 + t.end for t in capture.tracks}
    assert set(on_disk) == {"master:camera", "master:mic", "rural-1:camera", "rural-1:mic"}
    print("lost at the kill: " + ", ".join(f"{k} {t_kill - last:.2f} s" for k, last in sorted(on_disk.items())))
    for key, last in on_disk.items():
        assert last >= t_kill - 2.0, f"{key}: {t_kill - last:.2f} s before the kill were lost"

    # the server comes back and builds what the crash left
    server = start_server(data_dir)
    try:
        rec = wait_for_recording(server, admin, lesson="demo")
        code, manifest = server.api(f"/api/recordings/{rec['id']}", token=admin)
    finally:
        server.stop()
    assert code == 200 and rec["interrupted"] is True and manifest["complete"] is False
    lost = (t_kill - manifest["started_at"]) - manifest["duration_s"]
    assert 0 <= lost <= 2.0, f"the archive ends {lost:.2f} s before the kill"

    video = rec_dir / "lesson.mp4"
    with av.open(str(video)) as container:
        assert abs(float(container.duration or 0) / 1e6 - manifest["duration_s"]) <= 0.5
    seen = large_pictures(video, step=3)
    last_second = [s.classroom for s in seen if s.t > manifest["duration_s"] - 1.5]
    assert last_second and last_second.count("master") >= 0.9 * len(last_second), last_second

    # the command line rebuilds it, with a progress bar, and the result checks out
    result = cli("archive", "build", str(rec_dir), "--no-catalog")
    assert result.returncode == 0, result.stderr
    assert "100.0%" in result.stderr and "interrupted" in result.stdout
    result = cli("archive", "verify", str(rec_dir))
    assert result.returncode == 0, result.stderr
