"""`twinclass classroom --duration S` leaves on time whatever its link does, with its stats written."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from harness import ROOT, TWINCLASS, ServerProcess, free_port, mint_token, start_server, terminate, wait_for

DURATION = 3.0
SLACK = 8.0  # process start-up (imports take seconds on a loaded machine) and leaving


def classroom(server_url: str, token: str, stats: Path, log: Path, duration: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [TWINCLASS, "classroom", "--server", server_url, "--token", token, "--stats-json", str(stats),
         "--size", "320x240", "--duration", str(duration)],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=str(ROOT),
    )


def wait_exit(proc: subprocess.Popen[bytes], started: float, limit: float) -> float:
    try:
        proc.wait(timeout=max(0.1, limit - (time.monotonic() - started)))
    finally:
        terminate(proc)
    return time.monotonic() - started


def test_a_terminal_whose_server_never_answers_leaves_on_time(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    stats = tmp_path / "stats.json"
    started = time.monotonic()
    proc = classroom(f"http://127.0.0.1:{port}", "not-a-token", stats, tmp_path / "c.log", DURATION)
    took = wait_exit(proc, started, DURATION + SLACK)
    print(f"exited after {took:.1f}s (duration {DURATION}s)")
    assert proc.returncode == 0, (tmp_path / "c.log").read_text()[-2000:]
    assert took < DURATION + SLACK
    data = json.loads(stats.read_text())
    assert data["sessions"] == 0 and data["remotes"] == {} and data["server_link"] is None


def test_a_terminal_whose_server_is_killed_mid_run_leaves_on_time(tmp_path: Path) -> None:
    server: ServerProcess = start_server(tmp_path / "var")
    stats = tmp_path / "stats.json"
    duration = 8.0
    try:
        token = mint_token(server, role="rural", classroom="rural-1")
        started = time.monotonic()
        proc = classroom(server.url, token, stats, tmp_path / "c.log", duration)
        wait_for(lambda: stats.exists() and json.loads(stats.read_text()).get("sessions", 0) >= 1, 20, "joined")
        joined_at = time.monotonic() - started
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
        took = wait_exit(proc, started, duration + SLACK)
    finally:
        server.stop()
    print(f"joined after {joined_at:.1f}s, exited after {took:.1f}s (duration {duration}s)")
    assert proc.returncode == 0, (tmp_path / "c.log").read_text()[-2000:]
    assert took < duration + SLACK
    data = json.loads(stats.read_text())
    assert data["sessions"] >= 1 and time.time() - data["updated_at"] < SLACK
