"""The term timetable in the admin console: the example CSV set uploaded in Chromium, solved with
its progress shown, the unmet needs with their reasons, a re-check, and a week applied as lessons."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from admin_console import console_pages
from harness import ROOT, ServerProcess, mint_token, start_server
from playwright.sync_api import Browser, expect

EXAMPLE = ROOT / "scheduler" / "examples" / "csv"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with start_server(tmp_path / "var", env={"TWINCLASS_RECORDER": "0"}) as srv:
        yield srv


def test_timetable_solved_checked_and_applied_from_the_console(
        server: ServerProcess, chromium: Browser, request: pytest.FixtureRequest) -> None:
    admin = mint_token(server, role="admin", name="排课员")
    with console_pages(chromium, request.node.name) as pages:
        page = pages.open(f"{server.url}/admin/timetable?token={admin}", "timetable")
        expect(page.locator("h1")).to_have_text("学期课表")

        # a broken bell row: named with its file, row and field; nothing is solved
        bells = (EXAMPLE / "bells.csv").read_text(encoding="utf-8").replace("08:50,09:30", "08:50,9h30", 1)
        broken = [{"name": p.name, "mimeType": "text/csv", "buffer": p.read_bytes()}
                  for p in sorted(EXAMPLE.glob("*.csv")) if p.name != "bells.csv"]
        page.set_input_files("#tt-files", [*broken, {"name": "bells.csv", "mimeType": "text/csv",
                                                     "buffer": bells.encode()}])
        page.fill("#tt-limit", "3")
        page.click("#btn-solve")
        expect(page.locator("#error")).to_contain_text("bells.csv: row 3, field 'end'")
        expect(page.locator("#tt-table")).to_contain_text("还没有课表")

        page.set_input_files("#tt-files", sorted(str(p) for p in EXAMPLE.glob("*.csv")))
        page.click("#btn-solve")
        expect(page.locator("#job-state")).to_have_attribute("data-status", "done", timeout=30_000)
        expect(page.locator("#job-log")).to_contain_text("candidate pairs")  # the solver's own progress lines
        expect(page.locator("#tt-summary")).to_contain_text("覆盖")

        # the unmet needs, each with its reason
        unmet = page.locator("#unmet-table tbody tr")
        expect(unmet).to_have_count(2)
        expect(page.locator("#unmet-table tr[data-classroom=shanling-g12][data-subject=美术]")).to_contain_text(
            "没有该年级该学科的主讲课")
        expect(page.locator("#unmet-table tr[data-classroom=hexi-g4]")).to_contain_text("主讲课时间不在本班空闲节次内")

        page.click("#btn-check")
        expect(page.locator("#check-result")).to_have_text("检查通过：没有冲突。")

        # apply the first week of the term: the same lessons `twinclass schedule apply` makes
        page.fill("#tt-week", "2025-09-03")
        page.click("#btn-apply")
        expect(page.locator("#notice")).to_contain_text("已应用 2025-09-01 这一周")
        applied = page.locator("#applied-table tbody tr[data-lesson]")
        expect(applied.first.locator("[data-state]")).to_have_attribute("data-state", "created")
        expect(applied.first).to_contain_text("已创建")
        ids = [r.get_attribute("data-lesson") for r in applied.all()]
        assert ids and all(str(i).startswith("tt-2025090") for i in ids), ids
        pages.screenshot(page, "timetable")

        status, lesson = server.api(f"/api/lessons/{ids[0]}", token=admin)
        assert status == 200 and lesson["planned_start"].startswith("2025-09-0"), lesson
        # applying again creates nothing new
        tt_id = page.locator("#tt-id").inner_text()
        status, again = server.api(f"/api/admin/timetable/{tt_id}/apply", method="POST", body={"week": "2025-09-01"},
                                   token=admin)
        assert status == 200 and {item["state"] for item in again["lessons"]} == {"already exists"}, again

    status, audit = server.api("/api/admin/audit", token=admin)
    assert [e["action"] for e in audit["entries"]] == ["timetable.apply", "timetable.apply", "timetable.solve"]
    assert audit["entries"][0]["name"] == "排课员"
    assert server.api("/api/admin/timetable/nope/check", token=admin)[0] == 404
    assert server.api(f"/api/admin/timetable/{tt_id}/apply", method="POST", body={"week": "soon"},
               token=admin)[0] == 400
