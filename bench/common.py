"""Helpers shared by the benchmarks (imported as `bench.common`: each script puts the repository root
on sys.path first). Everything binds to 127.0.0.1; processes are `twinclass` commands of this venv."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (from /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def wait_http(url: str, timeout: float = 20, interval: float = 0.1) -> None:
    """Return once `url` answers (any status below 400); TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(interval)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


def token(data_dir: Path, *args: str) -> str:
    """`twinclass token --data-dir DATA_DIR ARGS…` (a join or admin token signed with that dir's secret)."""
    return subprocess.check_output([str(BIN / "twinclass"), "token", "--data-dir", str(data_dir), *args],
                                   text=True).strip()
