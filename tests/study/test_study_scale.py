"""More than a page of everything: usage reports count recordings beyond the 500 newest, and a
timetable lesson created before 500 others still starts recording at its planned time."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from harness import start_server, wait_until
from study_pages import mint

from recorder.catalog import recordings_table
from sfu.store import attendance_table, lessons_table, make_engine, sqlite_url

N_NEW = 520  # more than any page: the 500 newest lessons and recordings
N_OLD = 12


def _lesson_row(lid: str, start: datetime, created: datetime) -> dict[str, object]:
    return {"id": lid, "title": lid, "subject": "英语", "grade": "3",
            "master": json.dumps({"id": "m1", "name": "城关小学", "school": "城关小学"}),
            "rurals": json.dumps([{"id": "r1", "name": "山口教学点", "school": "山口教学点"}]),
            "planned_start": start, "planned_end": start + timedelta(minutes=40), "rural_see_each_other": False,
            "record": True, "created_at": created, "extra": json.dumps({"county": "青山县"})}


def _recording_row(rid: str, lid: str, started: datetime) -> dict[str, object]:
    return {"id": rid, "lesson_id": lid, "title": lid, "subject": "英语", "grade": "3",
            "classrooms": json.dumps(["m1", "r1"]), "started_at": started, "ended_at": started + timedelta(minutes=40),
            "duration_s": 2400.0, "status": "ready", "interrupted": False, "directory": rid, "size_bytes": 0,
            "error": None, "updated_at": started}


def test_reports_and_planned_starts_reach_past_the_newest_500(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWINCLASS_RECORDER_AUTOBUILD", "0")
    monkeypatch.setenv("TWINCLASS_RECORDER_PLANNED_POLL_S", "1")
    monkeypatch.setenv("TWINCLASS_ANALYSIS", "0")
    data_dir = tmp_path / "var"
    with start_server(data_dir) as server:
        admin = server.admin_token()
        engine = make_engine(sqlite_url(data_dir))
        now = datetime.now().replace(microsecond=0)
        old_day = (now - timedelta(days=60)).date()
        created = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=90)
        lessons, attendance, recordings = [], [], []
        # the timetable lesson that is on now was created first: older than 520 others
        lessons.append(_lesson_row("tt-now", now - timedelta(minutes=5), created))
        for i in range(N_OLD):  # two months ago, held, recorded
            start = datetime.combine(old_day, datetime.min.time()) + timedelta(hours=8, minutes=i)
            lid = f"old-{i:02d}"
            lessons.append(_lesson_row(lid, start, created + timedelta(seconds=i + 1)))
            joined = start.astimezone(UTC).replace(tzinfo=None)
            attendance.append({"lesson_id": lid, "classroom": "r1", "role": "rural", "name": "山口教学点",
                               "joined_at": joined, "left_at": joined + timedelta(minutes=30), "reason": "left"})
            recordings.append(_recording_row(f"{lid}-rec", lid, joined))
        tomorrow = date.today() + timedelta(days=1)
        for i in range(N_NEW):  # newer lessons, planned tomorrow, each with a recent recording
            lid = f"new-{i:03d}"
            start = datetime.combine(tomorrow, datetime.min.time()) + timedelta(minutes=i)
            lessons.append(_lesson_row(lid, start, created + timedelta(days=1, seconds=i)))
            recordings.append(_recording_row(f"{lid}-rec", lid, datetime.now(UTC).replace(tzinfo=None)
                                             - timedelta(hours=1, seconds=i)))
        with engine.begin() as conn:
            conn.execute(sa.insert(lessons_table), lessons)
            conn.execute(sa.insert(attendance_table), attendance)
            conn.execute(sa.insert(recordings_table), recordings)
        observer = mint(server, role="observer", name="教研员")
        status, c = server.api("/api/recordings/old-03-rec/comments", method="POST", body={"t": 60, "body": "好"},
                               token=observer)
        assert status == 201, c

        # the usage report two months back counts that day's recordings and comments
        day = old_day.isoformat()
        status, report = server.api(f"/api/reports/usage?from={day}&to={day}&group=county", token=admin)
        assert status == 200, report
        total = report["total"]
        assert (total["scheduled"], total["held"], total["recordings"], total["comments"]) == (N_OLD, N_OLD, N_OLD, 1)
        assert abs(total["minutes"] - 30 * N_OLD) < 0.01
        status, report = server.api(f"/api/reports/usage?from={tomorrow}&to={tomorrow}", token=admin)
        assert (report["total"]["scheduled"], report["total"]["held"]) == (N_NEW, 0)

        # the timetable lesson due now starts recording at its planned time (the recorder opens its room)
        def recording_now() -> bool:
            status, body = server.api("/api/recordings?lesson=tt-now", token=admin)
            return status == 200 and bool(body["recordings"])

        wait_until(recording_now, 20, message="the recorder to start tt-now at its planned time")
        status, wall = server.api("/api/patrol", token=admin)
        assert [t["lesson"] for t in wall["missing"]] == ["tt-now"], "due now, nobody there"

        # listings page through everything, newest first, however far back
        seen: list[str] = []
        while True:
            status, page = server.api(f"/api/recordings?limit=200&offset={len(seen)}", token=admin)
            assert status == 200 and page["limit"] == 200, page
            seen += [r["id"] for r in page["recordings"]]
            if not page["more"]:
                break
        assert len(seen) == len(set(seen)) == 1 + N_OLD + N_NEW and seen[0].startswith("tt-now-")  # being recorded
        assert seen[-N_OLD:] == [f"old-{i:02d}-rec" for i in reversed(range(N_OLD))]
        assert server.api("/api/recordings?limit=0", token=admin)[0] == 400

        def study(**query: str | int) -> tuple[list[str], bool]:
            status, body = server.api(f"/api/study/recordings?{urlencode(query)}", token=observer)
            assert status == 200, body
            return [r["id"] for r in body["recordings"]], body["more"]

        # filters on the lessons' places (county, school) page the same way
        first, more = study(county="青山县", school="山口", limit=300)
        rest, no_more = study(county="青山县", school="山口", limit=300, offset=300)
        assert more and not no_more and first + rest == seen
        old = [f"old-{i:02d}-rec" for i in reversed(range(N_OLD))]
        assert study(teacher="城关", **{"from": day, "to": day}) == (old, False)
        assert study(county="绿水县") == ([], False)
