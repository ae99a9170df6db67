"""Test harness (imported as `harness`): a real `twinclass serve` process, real classroom processes.

Everything binds to 127.0.0.1 (or ::1, for the IPv6 tests) on free ports, lives in pytest's tmp dirs
and is stopped by the fixture that started it (by PID).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from sfu.addresses import url_host
from sfu.tokens import TokenIssuer

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TWINCLASS = str(BIN / "twinclass")


def terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM a child we started, SIGKILL it if it does not go within 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class StopsOnExit:
    """`with` stops what was started (by PID), however the block ends."""

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def has_ipv6_loopback() -> bool:
    """Whether this machine can bind ::1 (the IPv6 tests skip, saying so, where it cannot)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess(StopsOnExit):
    """A `twinclass serve` child process on a free loopback port (`with` stops it)."""

    data_dir: Path
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    extra_args: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"  # the address its URL names (IPv6 without brackets)

    @property
    def url(self) -> str:
        return f"http://{url_host(self.host)}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def token(self, *, lesson: str = "demo", classroom: str = "", role: str, ttl: float = 3600) -> str:
        args = [TWINCLASS, "token", "--data-dir", str(self.data_dir), "--role", role, "--ttl", str(ttl)]
        if lesson and role != "admin":
            args += ["--lesson", lesson]
        if classroom:
            args += ["--classroom", classroom]
        return subprocess.check_output(args, text=True).strip()

    def admin_token(self) -> str:
        return self.token(role="admin")

    def api(self, path: str, *, method: str = "GET", body: Any = None, token: str | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            status = exc.code
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"server not ready:\n{self.log.read_text()}")

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(parts[11]) + int(parts[12])) / ticks

    def thread_names(self) -> list[str]:
        names = []
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                names.append((task / "comm").read_text().strip())
            except OSError:
                pass
        return names

    def stop(self) -> None:
        terminate(self.proc)


def start_server(data_dir: Path, *extra: str, port: int | None = None,
                 env: dict[str, str] | None = None, host: str = "127.0.0.1") -> ServerProcess:
    """`host` is the address the harness reaches it on (give `--host` in `extra` to bind others)."""
    port = port or free_port(host)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # as the server makes it (a looser one: a WARNING)
    log = data_dir / f"server-{port}.log"
    proc = subprocess.Popen(
        [TWINCLASS, "serve", "--port", str(port), "--data-dir", str(data_dir), *extra],
        env={**os.environ, **(env or {})},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=str(ROOT),
    )
    server = ServerProcess(data_dir=data_dir, port=port, proc=proc, log=log, extra_args=list(extra), host=host)
    server.wait_ready()
    return server


@dataclass
class ClassroomProcess:
    """A `twinclass classroom` child process writing its stats JSON."""

    name: str
    proc: subprocess.Popen[bytes]
    stats_path: Path
    log: Path

    def stats(self) -> dict[str, Any]:
        if not self.stats_path.exists():
            return {}
        return dict(json.loads(self.stats_path.read_text()))

    def remote(self, classroom: str) -> dict[str, Any]:
        return dict(self.stats().get("remotes", {}).get(classroom, {}))

    def wait(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        terminate(self.proc)


class ClassroomLauncher:
    """Starts `twinclass classroom` processes; `with` (or stop_all) stops every one."""

    def __init__(self, server: ServerProcess, workdir: Path) -> None:
        self.server = server
        self.workdir = workdir
        self.started: list[ClassroomProcess] = []

    def start(self, classroom: str, role: str, *args: str, token: str | None = None, lesson: str = "demo",
              size: str = "320x240", name: str | None = None, token_via: str = "argument") -> ClassroomProcess:
        """`token_via`: how the terminal gets its token: "argument" (--token), "file" (--token-file)
        or "env" ($TWINCLASS_TOKEN)."""
        token = token or self.server.token(lesson=lesson, classroom=classroom, role=role)
        name = name or f"{classroom}-{len(self.started)}"
        stats = self.workdir / f"{name}.json"
        log = self.workdir / f"{name}.log"
        env = dict(os.environ)
        env.pop("TWINCLASS_TOKEN", None)
        if token_via == "file":
            token_file = self.workdir / f"{name}.token"
            token_file.write_text(token + "\n")
            token_args = ["--token-file", str(token_file)]
        elif token_via == "env":
            env["TWINCLASS_TOKEN"] = token
            token_args = []
        else:
            token_args = ["--token", token]
        proc = subprocess.Popen(
            [TWINCLASS, "classroom", "--server", self.server.url, *token_args, "--stats-json", str(stats),
             "--size", size, *args],
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=str(ROOT),
        )
        cp = ClassroomProcess(name=name, proc=proc, stats_path=stats, log=log)
        self.started.append(cp)
        return cp

    def stop_all(self) -> None:
        for cp in self.started:
            cp.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def wait_for(predicate: Any, timeout: float, message: str, interval: float = 0.25) -> Any:
    """Poll `predicate` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def wait_until(predicate: Any, timeout: float, interval: float = 0.2, message: str = "condition") -> None:
    wait_for(predicate, timeout, message, interval)


def mint_token(server: ServerProcess, *, role: str, classroom: str = "", lesson: str = "demo", name: str = "") -> str:
    """A join token signed with the server's secret, in-process (the `twinclass token` command costs
    seconds of start-up per call on a loaded machine; the claims are the same). Observers are named
    "观察员 Observer" and others after their classroom unless `name` is given."""
    issuer = TokenIssuer((server.data_dir / "token-secret").read_text().strip())
    if role == "admin":
        return issuer.mint_admin(name or "admin")
    name = name or ("观察员 Observer" if role == "observer" else classroom)
    return issuer.mint(lesson=lesson, classroom=classroom, name=name, role=role, ttl_s=3600)


async def raw_client(url: str) -> Any:
    """A bare socket.io client (no media), for protocol-level tests."""
    import socketio

    client = socketio.AsyncClient(reconnection=False)
    client.received = []  # type: ignore[attr-defined]

    @client.on("*")
    async def any_event(event: str, data: Any = None) -> None:
        client.received.append((event, data))  # type: ignore[attr-defined]

    await client.connect(url, transports=["websocket"], wait_timeout=10)
    return client


@dataclass
class RedisProcess(StopsOnExit):
    """A private `redis-server` on a free loopback port (never the machine's shared one; `with` stops it)."""

    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        terminate(self.proc)


def start_redis(workdir: Path) -> RedisProcess:
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return RedisProcess(port, proc)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise TimeoutError("redis-server did not start")
