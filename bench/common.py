"""Helpers shared by the benchmarks (imported as `bench.common`: each script puts the repository root
on sys.path first). Everything binds to 127.0.0.1; processes are `twinclass` commands of this venv."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU time a process has used so far, in seconds (from /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(parts[11]) / tick, int(parts[12]) / tick


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (from /proc)."""
    return sum(cpu_times(pid))


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


def serve(data_dir: Path, port: int, log: IO[bytes] | None = None,
          extra: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """`twinclass serve` on 127.0.0.1:PORT with its own data dir (and its demo lesson: master, rural-1..3),
    in its own process, output to `log` (else discarded), without the recorder: it would be a hidden extra
    subscriber inside the measured process. Wait for it with `wait_http(f"http://127.0.0.1:{port}/healthz")`."""
    return subprocess.Popen([str(BIN / "twinclass"), "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--data-dir", str(data_dir), *extra],
                            cwd=str(ROOT), stdout=log or subprocess.DEVNULL,
                            stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
                            env={**os.environ, "TWINCLASS_RECORDER": "0"})


def exit_on_sigterm() -> None:
    """A bench stopped with SIGTERM (`kill PID`) leaves by SystemExit, so its `finally` stops the
    servers and clients it started instead of leaving them running."""
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(128 + signal.SIGTERM))


def stop(procs: list[subprocess.Popen[bytes]], timeout: float = 10) -> None:
    """SIGTERM each process still running (all first, so they wind down together), wait up to `timeout`
    seconds for each, SIGKILL the ones that did not leave. Only these PIDs are signalled."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)


def scrape(url: str) -> dict[str, float]:
    """The unlabelled samples of a Prometheus /metrics page, and labelled ones as name{k=v}."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = s.name + ("{" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) + "}" if s.labels else "")
            out[key] = s.value
    return out


def add_decoder_worker_options(parser: Any) -> None:
    """The hidden options with which a bench runs itself as a process of `decoding_observers`."""
    parser.add_argument("--decoders-worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--tokens", default="", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)


def decoder_worker_command(script: str, url: str, tokens: list[str], seconds: float, out: Path) -> list[str]:
    """The command line that runs `script` (a bench with `add_decoder_worker_options`) as a decoders' process."""
    return [sys.executable, script, "--decoders-worker", url, "--tokens", ",".join(tokens),
            "--seconds", str(seconds), "--out", str(out)]


def run_decoder_worker(args: Any) -> bool:
    """Run the decoders' process if the options ask for one (then True: the bench has nothing else to do)."""
    if not args.decoders_worker:
        return False
    import asyncio

    asyncio.run(decoding_observers(args.decoders_worker, args.tokens.split(","), args.seconds, Path(args.out)))
    return True


async def decoding_observers(url: str, tokens: list[str], seconds: float, out: Path) -> None:
    """Full `twinclass classroom` observers (every frame decoded, its pattern read) for `seconds`, or until
    SIGTERM; then writes to `out` a JSON list of what each saw of the master (fps, latency, verified frames,
    decode errors) and leaves."""
    import asyncio
    import contextlib

    from classroom_client.session import ClassroomClient, ClientConfig

    clients = [ClassroomClient(ClientConfig(server=url, token=t, publish=False)) for t in tokens]
    done = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, done.set)
    for c in clients:
        await c.start()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), seconds)
    # each one's view of the master, and the node it ended up on (after any redirect)
    results = [{**(m.to_json() if (m := c.remotes.get("master")) else {}), "server": c.config.server}
               for c in clients]
    out.write_text(json.dumps(results))
    for c in clients:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(c.close(), 5)


def read_json(path: Path) -> Any:
    """The JSON in `path`, or None when it is absent or unreadable (e.g. not written yet)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def api_post(url: str, admin_token: str, body: Any = None) -> Any:
    """POST `body` as JSON to the server's API at `url` (e.g. .../api/lessons) with an admin token (GET when
    `body` is None); the reply's JSON (urllib raises HTTPError on a 4xx/5xx)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {admin_token}"})
    with urllib.request.urlopen(request, timeout=20) as resp:
        return json.loads(resp.read() or b"null")


def redis_server(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A private `redis-server` on a free loopback port (the test harness's, nothing saved); its process
    and URL, once it answers."""
    sys.path.insert(0, str(ROOT / "tests"))
    from harness import start_redis

    redis = start_redis(workdir)
    return redis.proc, redis.url
