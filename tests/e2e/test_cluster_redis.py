"""Two server nodes sharing lessons through a real Redis: a lesson's classrooms meet on one node."""

from __future__ import annotations

from pathlib import Path

from harness import ClassroomLauncher, RedisProcess, free_port, start_server, wait_until

from sfu.store import AttendanceLog, make_engine, sqlite_url


def test_classroom_reaching_the_other_node_is_sent_to_the_lessons_node(tmp_path: Path,
                                                                        redis_server: RedisProcess) -> None:
    data = tmp_path / "var"  # both nodes share the lesson store and the token secret
    ports = [free_port(), free_port()]
    quick_end = {"TWINCLASS_RECORDER_IDLE_S": "1"}  # the recorder leaves 1 s after the last classroom
    nodes = [start_server(data, "--redis-url", redis_server.url, "--node-url", f"http://127.0.0.1:{p}", port=p,
                          env=quick_end) for p in ports]
    a, b = nodes
    launcher_a, launcher_b = ClassroomLauncher(a, tmp_path), ClassroomLauncher(b, tmp_path)
    try:
        master = launcher_a.start("master", "master", "--duration", "40", name="master")
        wait_until(lambda: master.stats().get("sessions", 0) >= 1, 15, message="master on node A")
        rural = launcher_b.start("rural-1", "rural", "--duration", "40", name="rural")  # connects to node B
        wait_until(lambda: rural.remote("master").get("frames_verified", 0) > 30
                   and master.remote("rural-1").get("frames_verified", 0) > 30, 25, message="they meet")
        stats = rural.stats()
        assert stats["redirects"] == 1 and stats["server"] == a.url
        # node B can tell who is in the lesson although it is live on node A
        admin = b.admin_token()
        wait_until(lambda: sorted(c["classroom"] for c in b.api("/api/lessons/demo", token=admin)[1]["connected"])
                   == ["master", "rural-1"], 10, message="presence visible on node B")
        # everyone leaves: the lesson is released, and the next classroom may start it on node B
        launcher_a.stop_all()
        launcher_b.stop_all()
        wait_until(lambda: b.api("/api/lessons/demo", token=admin)[1]["connected"] == [], 15, message="nobody left")
        wait_until(lambda: "node" not in a.api("/api/lessons/demo", token=admin)[1], 20, message="A closed it")
        again = launcher_b.start("rural-2", "rural", "--duration", "20", name="rural-2")
        wait_until(lambda: again.stats().get("sessions", 0) >= 1, 15, message="rural-2 joined on B")
        assert again.stats()["redirects"] == 0
        assert [c["classroom"] for c in b.api("/api/lessons/demo", token=admin)[1]["connected"]] == ["rural-2"]
        # a third node starting (and stopping) closes only its own attendance rows: rural-2's, on B, stays open
        log = AttendanceLog(make_engine(sqlite_url(data)))
        assert [(r["classroom"], r["node"]) for r in log.rows() if r["left_at"] is None] == [("rural-2", b.url)]
        port = free_port()
        with start_server(data, "--redis-url", redis_server.url, "--node-url", f"http://127.0.0.1:{port}",
                          port=port):
            pass
        assert [(r["classroom"], r["node"]) for r in log.rows() if r["left_at"] is None] == [("rural-2", b.url)]
    finally:
        launcher_a.stop_all()
        launcher_b.stop_all()
        for node in nodes:
            node.stop()
