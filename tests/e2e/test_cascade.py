"""A broadcast lesson across nodes (sfu.cascade): the master publishes on the lesson's origin node,
listening classrooms that reach another node stay there; that node takes the master's tracks once
from the origin over one relay link and fans them out. Real `serve` processes, a private Redis,
real classroom terminals decoding the test pattern."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from cluster_nodes import cluster, lesson_stats
from harness import ClassroomProcess, RedisProcess, wait_for

from classroom_client.session import ClassroomClient, ClientConfig
from classroom_client.sources import SourceSpec

FPS = 10
STARTUP_S = 90  # a loaded machine takes its time to start a terminal


def verified(terminal: ClassroomProcess) -> int:
    return int(terminal.remote("m1").get("frames_verified", 0))


def sees_master(terminal: ClassroomProcess, more_than: int = 20, timeout: float = STARTUP_S) -> None:
    wait_for(lambda: verified(terminal) > more_than, timeout, f"{terminal.name} decodes the master")


def test_listeners_on_an_edge_take_the_master_through_one_relay_link(tmp_path: Path,
                                                                     redis_server: RedisProcess) -> None:
    with cluster(tmp_path, redis_server, 2, "L1,L2,L3") as c:
        (a, b), tokens, admin, (on_a, on_b) = c.nodes, c.tokens, c.admin, c.terminals
        master = on_a.start("m1", "master", "--fps", str(FPS), token=tokens["m1"], lesson="mingshi")
        wait_for(lambda: master.stats().get("sessions", 0) >= 1, STARTUP_S, "the master joined on A")
        local = on_a.start("L3", "listener", "--fps", str(FPS), token=tokens["L3"], lesson="mingshi")
        l1 = on_b.start("L1", "listener", "--fps", str(FPS), token=tokens["L1"], lesson="mingshi")
        sees_master(l1)
        sees_master(local)
        # L1 stayed on B (no redirect); B takes the lesson from A over one relay link
        assert l1.stats()["redirects"] == 0 and l1.stats()["server"] == b.url
        assert lesson_stats(a, admin)["relays"] == [b.url]
        edge = lesson_stats(b, admin)["edge"]
        assert edge["origin"] == a.url and edge["ready"] and edge["packets_in"] > 0, edge
        assert "m1/camera" not in lesson_stats(b, admin)["tracks"]  # nothing is published on the edge

        # a listener joining B late gets a keyframe: B asks up the relay link (PLI), A passes it to the master
        relay_slot = f"relay:{b.url}<-m1:camera"
        asked = lesson_stats(a, admin)["slots"][relay_slot]["keyframe_requests"]
        requests_before = lesson_stats(a, admin)["tracks"]["m1/camera"]["keyframe_requests"]
        l2 = on_b.start("L2", "listener", "--fps", str(FPS), token=tokens["L2"], lesson="mingshi")
        sees_master(l2)
        assert l2.stats()["redirects"] == 0
        assert lesson_stats(b, admin)["edge"]["keyframe_requests"] > 0
        assert lesson_stats(a, admin)["slots"][relay_slot]["keyframe_requests"] > asked
        assert lesson_stats(a, admin)["tracks"]["m1/camera"]["keyframe_requests"] > requests_before
        # still one link for B, however many listeners it has
        assert lesson_stats(a, admin)["relays"] == [b.url]
        assert lesson_stats(b, admin)["participants"] == 2

        # the cascade's added latency: the same master frames, one listener on A, two through B
        counts = {t.name: verified(t) for t in (local, l1, l2)}
        wait_for(lambda: all(verified(t) > counts[t.name] + 20 for t in (local, l1, l2)), 30, "side by side")
        direct = local.remote("m1")["latency_ms_p50"]
        through = [t.remote("m1")["latency_ms_p50"] for t in (l1, l2)]
        print(f"latency p50: direct {direct} ms, through the edge {through} ms")
        assert all(t <= direct + 60 for t in through), (direct, through)

        # the last viewer leaves B: B drops its link, A no longer sends to it
        l1.stop()
        l2.stop()
        wait_for(lambda: "mingshi" not in b.api("/api/stats", token=admin)[1]["lessons"], 30, "B closed its room")
        wait_for(lambda: lesson_stats(a, admin)["relays"] == [], 30, "A has no relay left")
        assert verified(local) > 0 and master.stats().get("sessions") == 1


def test_listeners_of_a_dead_edge_resume_on_another_node_within_3_s(tmp_path: Path,
                                                                   redis_server: RedisProcess) -> None:
    # A, the origin, is full (its one place: the master's receiving connection): viewers go to B or C
    with cluster(tmp_path, redis_server, 3, "L1,L2", ["--node-capacity", "1"]) as nodes:
        (a, b, c), tokens, admin = nodes.nodes, nodes.tokens, nodes.admin
        on_a, on_c = nodes.terminals[0], nodes.terminals[2]
        master = on_a.start("m1", "master", "--fps", str(FPS), token=tokens["m1"], lesson="mingshi")
        wait_for(lambda: master.stats().get("sessions", 0) >= 1, STARTUP_S, "the master joined on A")
        listeners = [on_c.start(name, "listener", "--fps", str(FPS), token=tokens[name], lesson="mingshi")
                     for name in ("L1", "L2")]
        for listener in listeners:
            sees_master(listener)
            assert listener.stats()["server"] == c.url
        assert lesson_stats(a, admin)["relays"] == [c.url]
        wait_for(lambda: len(a.api("/api/cluster/nodes", token=admin)[1]["nodes"]) == 3, 10, "three nodes report")

        before = {t.name: (verified(t), t.remote("m1")["counter_gaps"]) for t in listeners}
        killed_at = time.monotonic()
        os.kill(c.pid, signal.SIGKILL)
        c.proc.wait(10)
        resumed: dict[str, float] = {}

        def all_resumed() -> bool:
            for t in listeners:
                if t.name not in resumed and verified(t) > before[t.name][0]:
                    resumed[t.name] = time.monotonic() - killed_at
            return len(resumed) == len(listeners)

        wait_for(all_resumed, 30, "the listeners resume", interval=0.05)
        for t in listeners:
            stats = t.stats()
            assert stats["server"] == b.url and stats["failovers"] >= 1, stats  # A is full: placed on B
        wait_for(lambda: all(verified(t) > before[t.name][0] + 10 for t in listeners), 20, "frames flow again")
        # the picture's gap, from the sender's frame counter: frames it sent that never arrived
        gaps_s = {t.name: (t.remote("m1")["counter_gaps"] - before[t.name][1]) / FPS for t in listeners}
        freezes = {t.name: t.remote("m1")["max_freeze_ms"] for t in listeners}
        print(f"resumed (stats file seen) after {resumed} s; picture gap {gaps_s} s; longest freeze {freezes} ms")
        assert all(gap <= 3.0 for gap in gaps_s.values()), gaps_s
        assert lesson_stats(a, admin)["relays"] == [b.url]  # C's link went with it, B's is the only one


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait without blocking the loop: the master terminal runs in this one."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out: {what}"
        await asyncio.sleep(0.1)


def test_edge_listeners_follow_the_floor_raise_hands_and_move_to_the_origin_when_brought_in(
        tmp_path: Path, redis_server: RedisProcess) -> None:
    async def master_side() -> None:
        master = ClassroomClient(ClientConfig(server=a.url, token=tokens["m1"],
                                              sources=SourceSpec(width=320, height=240, fps=FPS)))
        await master.start()
        try:
            await until(lambda: verified(l1) > 20 and verified(l2) > 20, STARTUP_S, "L1 and L2 on B see the master")
            assert l1.stats()["server"] == l2.stats()["server"] == b.url
            # hands raised on B are in the master's queue on A (with their names); B's listeners see the queue
            await until(lambda: sorted(h["classroom"] for h in master.hands) == ["L1", "L2"], 20, "hands reached A")
            assert {h["name"] for h in a.api("/api/lessons/mingshi", token=admin)[1]["hands"]} == {"L1", "L2"}
            await until(lambda: sorted(l1.stats().get("hands", [])) == ["L1", "L2"], 10, "the queue reached B")
            # the floor goes to the rural classroom: the listeners on the edge see and hear it
            await until(lambda: master.reception.remote("r1").frames_verified > 10, STARTUP_S, "r1 publishes")
            await master.give_floor("r1")
            await until(lambda: l1.remote("r1").get("frames_verified", 0) > 20, 20, "L1 sees the floor holder")
            assert l1.stats()["floor"] == "r1"
            assert l1.remote("r1")["audio_peak_hz"] == master.reception.remote("r1").to_json()["audio_peak_hz"] > 0
            await master.take_floor()
            await until(lambda: l1.stats().get("floor") is None, 10, "the floor back with the master on L1")
            seen = l1.remote("r1")["frames_decoded"]
            await asyncio.sleep(2.5)
            assert l1.remote("r1")["frames_decoded"] <= seen + 5  # the floor slot went quiet
            # L2 leaves B: its hand goes down on A
            l2.stop()
            await until(lambda: [h["classroom"] for h in master.hands] == ["L1"], 20, "L2's hand lowered")
            # L1 is brought in: it moves to A, publishes there, the master sees it; B's link goes
            await master.bring_in("L1")
            await until(lambda: master.reception.remote("L1").frames_verified > 20, 40, "the master sees L1")
            assert l1.stats()["server"] == a.url and l1.stats()["redirects"] == 1
            assert {"L1/camera", "L1/mic"} <= set(lesson_stats(a, admin)["tracks"])
            await until(lambda: lesson_stats(a, admin)["relays"] == [], 20, "B dropped its link")
            still = verified(l1)
            await until(lambda: verified(l1) > still + 10, 20, "L1 still sees the master, from A")
        finally:
            await master.close()

    with cluster(tmp_path, redis_server, 2, "L1,L2") as c:
        (a, b), tokens, admin, (on_a, on_b) = c.nodes, c.tokens, c.admin, c.terminals
        rural = on_a.start("r1", "rural", "--fps", str(FPS), token=tokens["r1"], lesson="mingshi")
        wait_for(lambda: rural.stats().get("sessions", 0) >= 1, STARTUP_S, "r1 joined on A")
        l1, l2 = (on_b.start(name, "listener", "--fps", str(FPS), "--raise-hand-at", "3", token=tokens[name],
                             lesson="mingshi") for name in ("L1", "L2"))
        asyncio.run(master_side())
