"""The lesson page over IPv6: Chromium opens `http://[::1]:PORT/lesson/...`, joins (socket.io to [::1],
its Origin and CSP included), sees and hears a Python master, and is seen by it, on IPv6 ICE."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import ClassroomLauncher, ServerProcess, has_ipv6_loopback, mint_token, start_server, wait_for
from lesson_page import LessonPages, start_classroom

pytestmark = pytest.mark.skipif(not has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")


@pytest.fixture
def server6(tmp_path: Path) -> Iterator[ServerProcess]:
    with start_server(tmp_path / "var", "--host", "::1", host="::1") as srv:
        yield srv


def test_browser_rural_joins_over_ipv6(server6: ServerProcess, tmp_path: Path, pages: LessonPages) -> None:
    with ClassroomLauncher(server6, tmp_path) as classrooms:
        master = start_classroom(classrooms, "master", "master", "--duration", "30")
        rural = pages.open_as(server6, "rural-1", "rural", label="rural-ipv6")
        assert rural.page.url.startswith("http://[::1]:")
        rural.wait_connected(timeout=25)
        rural.wait_video_playing('#stage video[data-slot="master:camera"]', timeout=25)
        rural.wait_hearing("master:mic")
        wait_for(lambda: master.remote("rural-1").get("frames_decoded", 0) > 30, 25,
                 "the Python master decodes the browser's camera")
        status, stats = server6.api("/api/stats", token=mint_token(server6, role="admin"))
        assert status == 200
        pairs = stats["lessons"]["demo"]["ice"]["rural-1"]
        for direction in ("publish", "subscribe"):
            pair = pairs[direction]
            assert pair is not None and pair["local"]["address"] == "::1", (direction, pair)
            assert ":" in pair["remote"]["address"], (direction, pair)  # the browser's end is IPv6 too
        errors = [line for line in rural.console if "Content Security Policy" in line or "[pageerror]" in line]
        assert not errors, errors
