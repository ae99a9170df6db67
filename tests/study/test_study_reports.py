"""Usage reports: lessons scheduled vs held by real classroom processes, minutes attended, recordings,
comments and evaluations — as JSON, as the CSV an admin downloads for a county, and on the page."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from harness import ClassroomLauncher, ServerProcess, start_server, wait_until
from study_pages import Pages, mint

from sfu.store import AttendanceLog, make_engine, sqlite_url


@pytest.fixture
def recording_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerProcess]:
    """The recorder records each lesson (a catalog row per lesson held) but builds nothing."""
    monkeypatch.setenv("TWINCLASS_RECORDER_AUTOBUILD", "0")
    monkeypatch.setenv("TWINCLASS_RECORDER_IDLE_S", "3")
    monkeypatch.setenv("TWINCLASS_RECORDER_PLANNED_POLL_S", "3600")
    with start_server(tmp_path / "var") as srv:
        yield srv


def lesson(lid: str, subject: str, day: date, hour: int, master: str, rurals: list[tuple[str, str]],
           county: str) -> dict[str, object]:
    start = datetime.combine(day, datetime.min.time()) + timedelta(hours=hour)
    return {
        "id": lid, "title": f"{subject} · {lid}", "subject": subject, "grade": "4",
        "master": {"id": master, "name": f"{master} 老师", "school": "城关实验小学"},
        "rurals": [{"id": r, "name": name, "school": name} for r, name in rurals],
        "planned_start": start.isoformat(), "planned_end": (start + timedelta(minutes=40)).isoformat(),
        "extra": {"county": county},
    }


def test_usage_csv_for_a_county_matches_the_lessons_held(recording_server: ServerProcess, tmp_path: Path,
                                                          pages: Pages) -> None:
    server = recording_server
    admin = server.admin_token()
    today = date.today()
    qingshan = [("ra", "山口教学点"), ("rb", "河西村小")]
    for body in (
        lesson("tt-en-1", "英语", today, 8, "m1", qingshan, "青山县"),  # held by ra, not rb
        lesson("tt-mu-1", "音乐", today, 9, "m2", qingshan[:1], "青山县"),  # not held
        lesson("tt-en-2", "英语", today, 10, "m3", [("rc", "石桥教学点")], "绿水县"),  # held
        lesson("tt-en-0", "英语", today - timedelta(days=1), 8, "m1", qingshan[:1], "青山县"),  # yesterday
    ):
        status, created = server.api("/api/lessons", method="POST", body=body, token=admin)
        assert status == 201, created

    launcher = ClassroomLauncher(server, tmp_path)
    try:
        procs = [launcher.start(c, role, "--video", "none", "--duration", "8", lesson=lid)
                 for lid, c, role in (("tt-en-1", "m1", "master"), ("tt-en-1", "ra", "rural"),
                                      ("tt-en-2", "rc", "rural"))]  # held: the rural classroom came
        for p in procs:
            assert p.wait(60) == 0, p.log.read_text()[-2000:]
    finally:
        launcher.stop_all()
    log = AttendanceLog(make_engine(sqlite_url(server.data_dir)))
    wait_until(lambda: all(r["left_at"] for r in log.rows()), 15, message="every session closed")
    ra_minutes = sum((r["left_at"] - r["joined_at"]).total_seconds() for r in log.rows(lesson_id="tt-en-1")
                     if r["classroom"] == "ra") / 60
    assert 0.05 < ra_minutes < 0.2

    # the held lesson's recording gets a comment and an evaluation (a classroom that reconnects after
    # the recorder's idle time starts a second part: count what the recorder made)
    status, body = server.api("/api/recordings?lesson=tt-en-1", token=admin)
    rec = body["recordings"][-1]
    n_en1 = len(body["recordings"])
    n_en2 = len(server.api("/api/recordings?lesson=tt-en-2", token=admin)[1]["recordings"])
    assert n_en1 >= 1 and n_en2 >= 1
    observer = mint(server, role="observer", name="教研员")
    assert server.api(f"/api/recordings/{rec['id']}/comments", method="POST", body={"t": 2, "body": "好"},
                      token=observer)[0] == 201
    dims = server.api("/api/study/rubric", token=observer)[1]["dimensions"]
    assert server.api(f"/api/recordings/{rec['id']}/evaluations/mine", method="PUT", token=observer,
                      body={"scores": {d["key"]: 80 for d in dims}})[0] == 200

    # reports are for administrators only
    assert server.api("/api/reports/usage", token=observer)[0] == 403

    # per county
    day = today.isoformat()
    status, by_county = server.api(f"/api/reports/usage?from={day}&to={day}&group=county", token=admin)
    assert status == 200
    counties = {r["county"]: (r["scheduled"], r["held"], r["rate_percent"], r["recordings"]) for r in by_county["rows"]}
    assert counties == {"青山县": (3, 1, 33.3, n_en1), "绿水县": (1, 1, 100.0, n_en2)}
    status, by_subject = server.api(f"/api/reports/usage?from={day}&to={day}&group=subject", token=admin)
    assert {r["subject"]: (r["scheduled"], r["held"]) for r in by_subject["rows"]} == {"英语": (3, 2), "音乐": (1, 0)}
    yesterday = today - timedelta(days=1)
    status, two_days = server.api(f"/api/reports/usage?from={yesterday}&to={day}&county={quote('青山县')}", token=admin)
    assert {r["classroom"]: r["scheduled"] for r in two_days["rows"]} == {"ra": 3, "rb": 1}

    # the page, and the CSV the admin downloads for 青山县
    page = pages.open(f"{server.url}/reports?token={admin}&county=青山县&from={day}&to={day}", "admin")
    page.locator("#usage-table tr[data-key='ra']").wait_for()
    assert "50" in page.inner_text("#usage-table tr[data-key='ra'] [data-col=rate_percent]")
    assert page.locator("#chart-rate svg rect.bar").count() == 2
    with page.expect_download() as download:
        page.click("#download-csv")
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    rows = {r["classroom"]: r for r in csv.DictReader(io.StringIO(text))}
    assert set(rows) == {"ra", "rb", "合计 total"}
    ra, rb, total = rows["ra"], rows["rb"], rows["合计 total"]
    assert (ra["classroom_name"], ra["county"]) == ("山口教学点", "青山县")
    assert (ra["scheduled"], ra["held"], ra["rate_percent"]) == ("2", "1", "50.0")
    assert abs(float(ra["minutes"]) - ra_minutes) < 0.01
    assert (ra["recordings"], ra["comments"], ra["evaluations"]) == (str(n_en1), "1", "1")
    assert (rb["scheduled"], rb["held"], rb["rate_percent"], rb["minutes"], rb["recordings"]) == ("1", "0", "0.0",
                                                                                                  "0.0", "0")
    assert (total["scheduled"], total["held"], total["rate_percent"]) == ("3", "1", "33.3")
    pages.screenshot(page, "reports")
