"""Recording by the timetable: a lesson's planned start opens its recording even before anyone joins."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from harness import start_server, wait_until


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
