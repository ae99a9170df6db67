"""The lesson HTTP API on a real server: admin-only creation, validation, live state."""

from __future__ import annotations

from harness import ClassroomLauncher, ServerProcess, wait_until

from sfu.store import AttendanceLog, make_engine, sqlite_url


def test_admin_creates_lesson_and_others_cannot(server: ServerProcess) -> None:
    admin = server.admin_token()
    body = {"id": "math-4", "title": "四年级数学", "subject": "数学", "grade": "4",
            "master": {"id": "m1", "name": "城区 401"}, "rurals": [{"id": "p1", "name": "教学点 A"},
                                                                {"id": "p2", "name": "教学点 B"}],
            "planned_start": "2026-11-24T09:00:00", "planned_end": "2026-11-24T09:40:00"}
    status, created = server.api("/api/lessons", method="POST", body=body, token=admin)
    assert status == 201 and created["id"] == "math-4" and len(created["rurals"]) == 2

    status, err = server.api("/api/lessons", method="POST", body={**body, "id": "x", "rurals": []}, token=admin)
    assert status == 400 and "rurals" in err["error"]
    status, err = server.api("/api/lessons", method="POST", body=body, token=admin)
    assert status == 400 and "already exists" in err["error"]

    rural = server.token(lesson="math-4", classroom="p1", role="rural")
    status, err = server.api("/api/lessons", method="POST", body={**body, "id": "y"}, token=rural)
    assert status == 403 and "admin token required" in err["error"]
    status, err = server.api("/api/lessons", method="POST", body={**body, "id": "y"})
    assert status == 401
    status, err = server.api("/api/lessons", method="POST", body={**body, "id": "y"}, token="forged.token.x")
    assert status == 401 and "malformed" in err["error"]

    status, listed = server.api("/api/lessons", token=admin)
    assert {lesson["id"] for lesson in listed["lessons"]} == {"demo", "math-4"}
    status, own = server.api("/api/lessons", token=rural)
    assert [lesson["id"] for lesson in own["lessons"]] == ["math-4"]
    status, _ = server.api("/api/lessons/demo", token=rural)
    assert status == 403
    status, tokens = server.api("/api/lessons/math-4/tokens", method="POST", token=admin)
    assert status == 200 and set(tokens["tokens"]) == {"m1", "p1", "p2", "observer"}
    status, tokens = server.api("/api/lessons/math-4/tokens?ttl=600", method="POST", token=admin)
    assert status == 200 and set(tokens["tokens"]) == {"m1", "p1", "p2", "observer"}
    for bad in ("soon", "-5", "0", "nan", "inf", "1e300"):
        status, err = server.api(f"/api/lessons/math-4/tokens?ttl={bad}", method="POST", token=admin)
        assert status == 400 and "ttl" in err["error"] and bad in err["error"], (bad, status, err)


def test_lesson_shows_connected_classrooms(server: ServerProcess, classrooms: ClassroomLauncher) -> None:
    classrooms.start("master", "master", "--duration", "15", "--video", "none", "--audio", "none")
    classrooms.start("rural-2", "rural", "--duration", "15", "--video", "none", "--audio", "none")
    classrooms.start("watcher", "observer", "--duration", "15")
    admin = server.admin_token()

    def connected() -> list[str]:
        return sorted(c["classroom"] for c in server.api("/api/lessons/demo", token=admin)[1]["connected"])

    wait_until(lambda: connected() == ["master", "rural-2"], 15, message="two classrooms connected")
    status, health = server.api("/healthz")
    assert status == 200 and health["live_lessons"] == 1

    # attendance is kept durably: who was there, from when to when
    classrooms.stop_all()
    wait_until(lambda: connected() == [], 10, message="everyone gone")
    log = AttendanceLog(make_engine(sqlite_url(server.data_dir)))
    rows = log.rows(lesson_id="demo")
    assert sorted((r["classroom"], r["role"]) for r in rows if r["role"] != "observer") == [
        ("master", "master"), ("rural-2", "rural")]
    assert all(r["left_at"] is not None and r["left_at"] >= r["joined_at"] for r in rows)
