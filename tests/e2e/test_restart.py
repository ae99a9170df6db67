"""The server stopped at a bad moment: killed (-9) mid-lesson and started again, or asked to stop (SIGTERM).

Nothing is lost or duplicated: every classroom (terminal and page) comes back by itself, the first
part of the recording builds and the rest is a second part; comments, evaluations, attendance rows
and lessons are the same before and after. SIGTERM drains: classrooms are told, the recording is
closed cleanly, the process exits within 10 s even with a build running.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import av
import pytest
from harness import ClassroomLauncher, ClassroomProcess, ServerProcess, mint_token, start_server, wait_for
from lesson_page import LessonPage, LessonPages, restart_server
from synthetic import Classroom, SyntheticLesson, write_capture

from recorder.timeline import load_capture
from sfu.store import AttendanceLog, make_engine, sqlite_url

BACK_WITHIN_S = 5.0
PAGE_VIDEO = '#stage video[data-slot="master:camera"]'


def attendance(server: ServerProcess) -> list[dict[str, Any]]:
    """The demo lesson's attendance rows, read from the server's database."""
    rows = AttendanceLog(make_engine(sqlite_url(server.data_dir))).rows(lesson_id="demo")
    return [dict(r) for r in rows]


def recordings(server: ServerProcess, admin: str, lesson: str = "demo") -> list[dict[str, Any]]:
    code, body = server.api(f"/api/recordings?lesson={lesson}", token=admin)
    assert code == 200, body
    return sorted(body["recordings"], key=lambda r: r["start"])


def connected(server: ServerProcess, admin: str) -> set[str]:
    code, body = server.api("/api/lessons/demo", token=admin)
    return {c["classroom"] for c in body.get("connected", [])} if code == 200 else set()


def frames(cp: ClassroomProcess, remote: str) -> int:
    return int(cp.remote(remote).get("frames_decoded", 0))


def page_frames(page: LessonPage) -> int:
    found = page.videos(PAGE_VIDEO)
    return int(found[0]["frames"] or 0) if found and found[0]["width"] > 0 else 0


def decoded_video_frames(video: Path) -> int:
    with av.open(str(video)) as container:
        return sum(1 for _ in container.decode(video=0))


def wait_ready(server: ServerProcess, admin: str, rec_id: str, timeout: float) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        rec = next((r for r in recordings(server, admin) if r["id"] == rec_id), None)
        assert rec is None or rec["status"] != "failed", rec
        return rec if rec is not None and rec["status"] == "ready" else None

    return dict(wait_for(ready, timeout, f"recording {rec_id} ready", interval=0.5))


def test_kill_9_mid_lesson_then_everything_comes_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       pages: LessonPages) -> None:
    monkeypatch.setenv("TWINCLASS_RECORDER_IDLE_S", "2")
    with start_server(tmp_path / "var") as server, ClassroomLauncher(server, tmp_path) as launcher:
        admin = mint_token(server, role="admin")
        observer = mint_token(server, role="observer", name="李老师（教研员）")
        master = launcher.start("master", "master", token=mint_token(server, role="master", classroom="master"))
        rural = launcher.start("rural-1", "rural", token=mint_token(server, role="rural", classroom="rural-1"))
        page = pages.open_as(server, "rural-2", "rural", label="rural-2")
        page.wait_video_playing(PAGE_VIDEO, timeout=40)
        wait_for(lambda: frames(master, "rural-1") > 30 and frames(master, "rural-2") > 30
                 and frames(rural, "master") > 30, 40, "the three classrooms see each other")

        # the study side writes on the recording while the lesson runs
        (part1,) = recordings(server, admin)
        rec = f"/api/recordings/{part1['id']}"
        code, comment = server.api(f"{rec}/comments", method="POST", token=observer,
                                   body={"t": 2.0, "body": "提问设计很好 good questions"})
        assert code == 201, comment
        _, rubric = server.api("/api/study/rubric", token=observer)
        scores = {d["key"]: {"score": 85, "note": ""} for d in rubric["dimensions"]}
        code, evaluation = server.api(f"{rec}/evaluations/mine", method="PUT", token=observer,
                                      body={"scores": scores, "note": "好课"})
        assert code == 200, evaluation
        before = {
            "lessons": server.api("/api/lessons", token=admin)[1]["lessons"],
            "comments": server.api(f"{rec}/comments", token=observer)[1]["comments"],
            "evaluations": server.api(f"{rec}/evaluations", token=observer)[1]["evaluations"],
        }
        rows_before = attendance(server)
        assert sorted(r["classroom"] for r in rows_before) == ["master", "rural-1", "rural-2"]
        assert all(r["left_at"] is None for r in rows_before)
        time.sleep(4)  # a few seconds of the first part on disk

        os.kill(server.pid, signal.SIGKILL)
        server.proc.wait(10)
        killed = time.time()
        wait_for(lambda: page.connection_state() == "reconnecting", 10, "the page shows it lost the server")
        assert "网络中断" in page.text("#banners")
        # what the terminals had decoded once the last frames in flight were out (stats rewritten since)
        wait_for(lambda: all(cp.stats()["updated_at"] > killed + 1.5 for cp in (master, rural)), 10, "stats")
        at_kill = {"master": frames(rural, "master"), "rural-1": frames(master, "rural-1"),
                   "rural-2": frames(master, "rural-2")}
        page_low = [page_frames(page)]  # the page's counter starts again from 0 on its new connection

        def page_sees_master() -> float | None:
            now = page_frames(page)
            page_low[0] = min(page_low[0], now)
            return time.time() if now > page_low[0] + 5 else None

        restart_server(server, down_s=1.0)  # returns as soon as /healthz answers
        back = time.time()

        def terminal_sees(cp: ClassroomProcess, remote: str, before: int) -> float | None:
            """When the terminal's stats file (rewritten every second) first showed frames again."""
            stats = cp.stats()
            decoded = stats.get("remotes", {}).get(remote, {}).get("frames_decoded", 0)
            return float(stats["updated_at"]) if decoded > before + 5 else None

        checks = {
            "joined": lambda: time.time() if connected(server, admin) >= {"master", "rural-1", "rural-2"} else None,
            "rural-1 sees master": lambda: terminal_sees(rural, "master", at_kill["master"]),
            "master sees rural-1": lambda: terminal_sees(master, "rural-1", at_kill["rural-1"]),
            "master sees the page": lambda: terminal_sees(master, "rural-2", at_kill["rural-2"]),
            "the page sees master": page_sees_master,
        }
        seen: dict[str, float] = {}

        def everyone_back() -> bool:
            for what, check in checks.items():
                if what not in seen and (at := check()) is not None:
                    seen[what] = at - back
            return len(seen) == len(checks)

        wait_for(everyone_back, 30, "every classroom back with frames flowing", interval=0.1)
        took = max(seen.values())
        print(f"every classroom back {took:.2f} s after the server answered /healthz: "
              + ", ".join(f"{what} {t:.2f} s" for what, t in seen.items()))
        assert took <= BACK_WITHIN_S, f"classrooms took {took:.2f} s to come back"
        assert page.connection_state() in ("media", "connected")

        # attendance: the rows open at the kill closed once ("server restarted"), one new row each
        rows_after = attendance(server)
        old = {r["id"]: r for r in rows_after if r["id"] in {b["id"] for b in rows_before}}
        assert len(old) == 3 and all(r["reason"] == "server restarted" and r["left_at"] for r in old.values())
        new = [r for r in rows_after if r["id"] not in old]
        assert sorted(r["classroom"] for r in new) == ["master", "rural-1", "rural-2"], new
        assert all(r["left_at"] is None for r in new)

        time.sleep(4)  # a few seconds of the second part
        launcher.stop_all()
        page.context.close()

        # the first part builds from what the crash left; the rest is a second part that builds too
        parts = wait_for(lambda: (r := recordings(server, admin)) and len(r) == 2 and r, 30, "two parts")
        ready = [wait_ready(server, admin, p["id"], timeout=240) for p in parts]
        assert ready[0]["id"] == part1["id"] and ready[0]["interrupted"] is True
        assert ready[1]["interrupted"] is False and ready[1]["start"] > ready[0]["start"]
        for part in ready:
            assert part["duration_s"] >= 4, part
            video = server.data_dir / "recordings" / part["id"] / "lesson.mp4"
            assert decoded_video_frames(video) >= 30, f"{part['id']}: too few frames"

        after = {
            "lessons": server.api("/api/lessons", token=admin)[1]["lessons"],
            "comments": server.api(f"{rec}/comments", token=observer)[1]["comments"],
            "evaluations": server.api(f"{rec}/evaluations", token=observer)[1]["evaluations"],
        }
        assert [(x["id"], x["title"]) for x in after["lessons"]] == [(x["id"], x["title"]) for x in before["lessons"]]
        assert after["comments"] == before["comments"] and after["evaluations"] == before["evaluations"]
        assert len(attendance(server)) == 6


def test_sigterm_drains_within_10_s(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    # a long lesson left unbuilt: its build is running when SIGTERM comes
    write_capture(data_dir / "recordings" / "synth-long", SyntheticLesson(
        duration=240.0, classrooms=[Classroom("master", 440.0)], fps=2))
    with start_server(data_dir) as server, ClassroomLauncher(server, tmp_path) as launcher:
        admin = mint_token(server, role="admin")
        terminals = [launcher.start("master", "master", token=mint_token(server, role="master", classroom="master")),
                     launcher.start("rural-1", "rural", token=mint_token(server, role="rural", classroom="rural-1"))]
        master, rural = terminals
        wait_for(lambda: frames(master, "rural-1") > 30 and frames(rural, "master") > 30, 40, "lesson running")
        (live,) = recordings(server, admin)
        wait_for(lambda: any(r["id"] == "synth-long" and r["status"] == "building"
                             for r in recordings(server, admin, "synth")), 30, "the long build running")
        time.sleep(2)

        sent = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(15)
        took = time.monotonic() - sent
        print(f"exit {code} {took:.2f} s after SIGTERM")
        assert code == 0 and took <= 10.0, f"exit code {code} after {took:.2f} s"

        # the terminals were told, and each wrote it in its stats
        for cp in terminals:
            told = wait_for(lambda cp=cp: [e for e in cp.stats().get("events", []) if e["event"] == "server_stopping"],
                            5, f"{cp.name} saw server_stopping")
            assert told[0]["data"]["reason"] == "server stopped" and told[0]["data"]["retry_after_s"] > 0

        # the live recording was closed cleanly, nothing cut off
        capture = load_capture(data_dir / "recordings" / live["id"])
        assert capture.complete
        assert {t.key for t in capture.tracks} >= {"master:camera", "master:mic", "rural-1:camera", "rural-1:mic"}
        rows = attendance(server)
        assert sorted(r["classroom"] for r in rows) == ["master", "rural-1"]
        assert all(r["reason"] == "server stopped" for r in rows), rows

        launcher.stop_all()
        restart_server(server, down_s=0.0)
        built = wait_ready(server, admin, live["id"], timeout=120)
        assert built["interrupted"] is False
        assert decoded_video_frames(data_dir / "recordings" / live["id"] / "lesson.mp4") >= 30
        # the abandoned build is redone
        wait_for(lambda: any(r["id"] == "synth-long" and r["status"] in ("building", "ready")
                             for r in recordings(server, admin, "synth")), 60, "the long build started again")
