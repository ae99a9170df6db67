"""Hands, the floor and mute requests across real classrooms; reconnection after a server restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from harness import ClassroomLauncher, ServerProcess, start_server, wait_until

from classroom_client.session import ClassroomClient, ClientConfig
from classroom_client.sources import SourceSpec


async def until(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_hand_queue_floor_and_mute(server: ServerProcess, classrooms: ClassroomLauncher) -> None:
    r1 = classrooms.start("rural-1", "rural", "--duration", "45", "--raise-hand-at", "2")
    r2 = classrooms.start("rural-2", "rural", "--duration", "45", "--raise-hand-at", "4")

    async def master_side() -> None:
        master = ClassroomClient(ClientConfig(server=server.url, token=server.token(classroom="master", role="master"),
                                              sources=SourceSpec(width=320, height=240)))
        await master.start()
        try:
            deadline = time.monotonic() + 30
            while [h["classroom"] for h in master.hands] != ["rural-1", "rural-2"]:
                assert time.monotonic() < deadline, f"hand queue never filled: {master.hands}"
                await asyncio.sleep(0.2)
            assert master.hands[0]["raised_at"] <= master.hands[1]["raised_at"]  # in order of raising

            # before the floor: rural-2 does not see rural-1
            assert not r2.remote("rural-1").get("frames_decoded")
            await master.give_floor("rural-1")
            wait_until(lambda: r2.remote("rural-1").get("frames_verified", 0) > 45, 10,
                       message="rural-2 sees the floor holder")
            assert r2.remote("rural-1")["first_frame_s"] <= 1.0
            assert r2.stats()["floor"] == "rural-1" and r1.stats()["floor"] == "rural-1"
            assert r2.remote("rural-1")["audio_peak_hz"] == 660.0  # and hears it
            await until(lambda: [h["classroom"] for h in master.hands] == ["rural-2"], 3)  # answered: off the queue

            # the floor moves to rural-2: rural-1 now sees rural-2 on the same slot
            await master.give_floor("rural-2")
            wait_until(lambda: r1.remote("rural-2").get("frames_verified", 0) > 45, 10,
                       message="rural-1 sees the new floor holder")
            frames_r1_at_r2 = r2.remote("rural-1")["frames_decoded"]
            await asyncio.sleep(1.5)
            assert r2.remote("rural-1")["frames_decoded"] <= frames_r1_at_r2 + 3  # old holder is gone

            await master.take_floor()
            await asyncio.sleep(1.5)
            taken = r1.remote("rural-2")["frames_decoded"]
            await asyncio.sleep(1.5)
            assert r1.remote("rural-2")["frames_decoded"] <= taken + 1
            assert r1.stats()["floor"] is None

            await master.call("request_mute", {"classroom": "rural-2"})
            wait_until(lambda: any(e["event"] == "mute_requested" and e["data"]["classroom"] == "rural-2"
                                   for e in r2.stats()["events"]), 5, message="rural-2 asked to mute")
        finally:
            await master.close()

    asyncio.run(master_side())

    async def rural_cannot_give_floor() -> None:
        token = server.token(classroom="rural-3", role="rural")
        intruder = ClassroomClient(ClientConfig(server=server.url, token=token,
                                                sources=SourceSpec(video="none", audio="none")))
        await intruder.start()
        try:
            await asyncio.wait_for(intruder.joined.wait(), 10)
            reply = await intruder.sio.call("give_floor", {"classroom": "rural-3"})
            assert not reply["ok"] and "only the master classroom" in reply["error"]["message"]
        finally:
            await intruder.close()

    asyncio.run(rural_cannot_give_floor())


def test_classrooms_reconnect_after_the_server_restarts(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "var")
    launcher = ClassroomLauncher(srv, tmp_path)
    try:
        master = launcher.start("master", "master", "--duration", "60")
        rural = launcher.start("rural-1", "rural", "--duration", "60")
        wait_until(lambda: rural.remote("master").get("frames_verified", 0) > 30, 20, message="lesson running")
        srv.proc.kill()  # the server dies without goodbye
        srv.proc.wait()
        time.sleep(2)
        before = rural.remote("master")["frames_decoded"]
        restarted = start_server(tmp_path / "var", port=srv.port)
        launcher.server = restarted
        try:
            wait_until(lambda: rural.stats().get("sessions", 0) >= 2 and master.stats().get("sessions", 0) >= 2,
                       20, message="both classrooms rejoined")
            wait_until(lambda: rural.remote("master").get("frames_decoded", 0) > before + 60, 15,
                       message="media flowing again")
            wait_until(lambda: master.remote("rural-1").get("video_fps", 0) >= 20, 10, message="master sees rural")
        finally:
            launcher.stop_all()
            restarted.stop()
    finally:
        launcher.stop_all()
        srv.stop()
