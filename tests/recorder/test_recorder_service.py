"""Recording by the timetable: a lesson's planned start opens its recording even before anyone joins."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from harness import ClassroomLauncher, start_server, wait_until


def test_planned_start_records_and_an_empty_lesson_leaves_nothing(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWINCLASS_RECORDER_PLANNED_POLL_S", "0.5")
    server = start_server(tmp_path / "var", "--no-demo")
    try:
        admin = server.admin_token()
        now = datetime.now()
        code, _ = server.api("/api/lessons", method="POST", token=admin, body={
            "id": "timetabled", "title": "按课表 Timetabled", "subject": "科学", "grade": "5",
            "master": "m", "rurals": ["r"],
            "planned_start": (now - timedelta(minutes=1)).isoformat(timespec="seconds"),
            "planned_end": (now + timedelta(seconds=6)).isoformat(timespec="seconds"),
        })
        assert code == 201

        def recordings() -> list[dict]:
            code, body = server.api("/api/recordings?lesson=timetabled", token=admin)
            assert code == 200
            return list(body["recordings"])

        wait_until(lambda: [r["status"] for r in recordings()] == ["recording"], 10,
                   message="the planned start opened a recording")
        code, live = server.api("/api/lessons/timetabled", token=admin)
        assert code == 200 and live["connected"] == []  # the recorder is invisible
        # nobody came before the planned end: the empty recording is dropped, not archived
        wait_until(lambda: recordings() == [], 15, message="the empty recording was discarded")
        assert not any((server.data_dir / "recordings").iterdir())
        code, _ = server.api("/api/recordings/nope", token=admin)
        assert code == 404
        code, _ = server.api("/api/recordings", token=None)
        assert code == 401
    finally:
        server.stop()


def test_patching_record_stops_and_restarts_the_recording_of_a_live_lesson(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWINCLASS_RECORDER_AUTOBUILD", "0")
    with start_server(tmp_path / "var") as server, ClassroomLauncher(server, tmp_path) as launcher:
        admin = server.admin_token()

        def statuses() -> list[str]:
            code, body = server.api("/api/recordings?lesson=demo", token=admin)
            assert code == 200
            return sorted(r["status"] for r in body["recordings"])

        # who may change a lesson, and what
        rural = server.token(classroom="rural-1", role="rural")
        assert server.api("/api/lessons/demo", method="PATCH", body={"record": False}, token=rural)[0] == 403
        assert server.api("/api/lessons/nope", method="PATCH", body={"record": False}, token=admin)[0] == 404
        for bad in ({"record": "no"}, {"rurals": []}, {"planned_start": "soon"}, {},
                    {"planned_start": "2026-12-01T10:00:00", "planned_end": "2026-12-01T09:00:00"}):
            code, err = server.api("/api/lessons/demo", method="PATCH", body=bad, token=admin)
            assert code == 400 and err["error"], bad

        launcher.start("master", "master", "--video", "none", "--duration", "60")
        wait_until(lambda: statuses() == ["recording"], 30, message="the lesson is being recorded")

        # recording turned off while the master is connected: the recording ends now
        code, lesson = server.api("/api/lessons/demo", method="PATCH", body={"record": False, "title": "不录的课"},
                                  token=admin)
        assert code == 200 and lesson["record"] is False and lesson["title"] == "不录的课"
        assert [c["classroom"] for c in lesson["connected"]] == ["master"]
        wait_until(lambda: statuses() == ["captured"], 15, message="the recording stopped")
        code, stored = server.api("/api/lessons/demo", token=admin)
        assert stored["record"] is False and stored["title"] == "不录的课"

        # ...and on again: a new part starts at once
        code, lesson = server.api("/api/lessons/demo", method="PATCH", body={"record": True}, token=admin)
        assert code == 200 and lesson["record"] is True
        wait_until(lambda: statuses() == ["captured", "recording"], 15, message="a second part started")
