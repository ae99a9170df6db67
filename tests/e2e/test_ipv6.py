"""IPv6 (issue 11, item 4): `serve --host ::1` and a lesson over `http://[::1]:PORT` with real media both
ways on IPv6 ICE candidates; `--host` lists and `::` answer on both families. Also the terminal's
token kept out of `ps` (a hardening leftover): `--token-file` and `$TWINCLASS_TOKEN` join like `--token`."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest
from harness import ClassroomLauncher, free_port, has_ipv6_loopback, mint_token, start_server, wait_until

pytestmark = pytest.mark.skipif(not has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")


def _healthz(url: str) -> int:
    with urllib.request.urlopen(url + "/healthz", timeout=5) as resp:
        return int(resp.status)


def _family_refuses(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        return s.connect_ex((host, port)) != 0


def test_a_lesson_over_ipv6_loopback_with_media_both_ways(tmp_path: Path) -> None:
    with start_server(tmp_path / "var", "--host", "::1", host="::1") as server, \
            ClassroomLauncher(server, tmp_path) as classrooms:
        assert server.url.startswith("http://[::1]:")
        assert _family_refuses("127.0.0.1", server.port), "--host ::1 alone must not listen on IPv4"
        assert f"http://[::1]:{server.port}/lesson/demo?token=" in server.log.read_text()  # the printed links
        tokens = {c: mint_token(server, role=role, classroom=c) for c, role in (("master", "master"),
                                                                                  ("rural-1", "rural"))}
        # (--duration is a backstop: leaving the block stops them, however slowly a loaded machine starts them)
        master = classrooms.start("master", "master", "--duration", "40", token_via="file", token=tokens["master"])
        rural = classrooms.start("rural-1", "rural", "--duration", "40", token_via="env", token=tokens["rural-1"])
        wait_until(lambda: master.remote("rural-1").get("frames_verified", 0) > 45
                   and rural.remote("master").get("frames_verified", 0) > 45, 20, message="frames both ways")
        m, r = master.remote("rural-1"), rural.remote("master")
        assert m["decode_errors"] == 0 and r["decode_errors"] == 0
        assert m["audio_packets"] > 50 and r["audio_packets"] > 50
        assert m["audio_peak_hz"] == 660.0 and r["audio_peak_hz"] == 440.0  # each heard the other's tone
        # every connection's ICE pair is IPv6, as each end sees it
        for terminal in (master, rural):
            ice = terminal.stats()["ice"]
            for direction in ("publish", "subscribe"):
                pair = ice[direction]
                assert pair is not None, (terminal.name, direction)
                assert pair["local"]["address"] == "::1" and pair["remote"]["address"] == "::1", pair
        status, stats = server.api("/api/stats", token=mint_token(server, role="admin"))
        assert status == 200
        server_ice = stats["lessons"]["demo"]["ice"]
        assert set(server_ice) >= {"master", "rural-1", "recorder"}  # the recorder subscribes over ICE too
        for classroom, pairs in server_ice.items():
            for direction in (("subscribe",) if classroom == "recorder" else ("publish", "subscribe")):
                pair = pairs[direction]
                assert pair is not None and pair["local"]["address"] == "::1", (classroom, direction, pair)
                assert pair["remote"]["address"] == "::1", (classroom, direction, pair)
        # the token never was on the terminals' command lines (what `ps` shows every local user)
        for terminal, classroom in ((master, "master"), (rural, "rural-1")):
            assert terminal.proc.poll() is None, f"{classroom} left early"
            cmdline = Path(f"/proc/{terminal.proc.pid}/cmdline").read_bytes()
            assert b"\0--token\0" not in cmdline and tokens[classroom].encode() not in cmdline
            assert terminal.stats()["classroom"] == classroom


@pytest.mark.parametrize("hosts", [["--host", "127.0.0.1", "--host", "::1"], ["--host", "::"]],
                         ids=["list", "dual-stack"])
def test_a_server_listens_on_both_families(tmp_path: Path, hosts: list[str]) -> None:
    port = free_port()
    with start_server(tmp_path / "var", "--no-demo", *hosts, port=port, host="::1") as server:
        assert _healthz(f"http://[::1]:{port}") == 200
        assert _healthz(f"http://127.0.0.1:{port}") == 200
        # CSP cannot name an IPv6 literal (Chromium rejects `ws://[::1]:PORT`): 'self' allows the page's socket.io
        with urllib.request.urlopen(f"http://[::1]:{port}/", timeout=5) as resp:
            csp = resp.headers["Content-Security-Policy"]
        assert "connect-src 'self';" in csp and "[" not in csp, csp
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
            assert f"ws://127.0.0.1:{port}" in resp.headers["Content-Security-Policy"]
        status, _lessons = server.api("/api/lessons", token=mint_token(server, role="admin"))
        assert status == 200
