"""The admin console (/admin): schools and classrooms from CSV, a lesson made from them, its join
links as links and QR codes, the lesson live with a real classroom terminal, edited and ended,
and every action in the audit log; only administrators get in."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from admin_console import (
    BAD_CLASSROOMS_CSV,
    CLASSROOMS_CSV,
    SCHOOLS_CSV,
    console_apis,
    console_pages,
    decode_qr,
    fill_lesson,
    upload,
)
from harness import ClassroomLauncher, ServerProcess, mint_token, start_server
from playwright.sync_api import Browser, expect


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    # recording on (the console shows it), but no archive is built after the lesson (CPU)
    with start_server(tmp_path / "var", env={"TWINCLASS_RECORDER_AUTOBUILD": "0"}) as srv:
        yield srv


def test_console_adds_classrooms_makes_a_lesson_and_shows_it_live(
        server: ServerProcess, chromium: Browser, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    admin = mint_token(server, role="admin", name="教育局管理员")
    with console_pages(chromium, request.node.name) as pages, ClassroomLauncher(server, tmp_path) as launcher:
        page = pages.open(f"{server.url}/admin?token={admin}", "console")
        expect(page.locator("h1")).to_have_text("管理控制台")
        assert "token=" not in page.url  # kept for this tab, out of the address bar and history

        # a bad row: named with its row and field, and nothing of the import is written
        upload(page, SCHOOLS_CSV, BAD_CLASSROOMS_CSV)
        expect(page.locator("#error")).to_contain_text("classrooms.csv: row 3, field 'grades'")
        expect(page.locator("#classrooms-table")).to_contain_text("还没有教室")
        assert server.api("/api/admin/directory", token=admin)[1] == {"schools": [], "classrooms": []}

        upload(page, SCHOOLS_CSV, CLASSROOMS_CSV)
        expect(page.locator("#notice")).to_contain_text("已导入 2 所学校、3 个教室")
        row = page.locator("#classrooms-table tr[data-classroom=hexi-g3]")
        expect(row).to_contain_text("清水县")
        expect(row).to_contain_text("河西村小")
        expect(row).to_contain_text("听讲教室")
        expect(page.locator("#classrooms-table tr[data-classroom=shiyan-301]")).to_contain_text("主讲教室")
        with page.expect_download() as download:  # export: the same file back, rows by id
            page.click("#btn-export-classrooms")
        assert download.value.suggested_filename == "classrooms.csv"
        header, *given = list(csv.reader(io.StringIO(CLASSROOMS_CSV)))
        assert list(csv.reader(io.StringIO(Path(download.value.path()).read_text("utf-8")))) == [header, *sorted(given)]

        form = page.locator("#lesson-form")
        now = datetime.now()
        fill_lesson(page, "三年级英语 同步课堂", "shiyan-301", ["hexi-g3", "hexi-g4"], now - timedelta(minutes=5),
                    now + timedelta(minutes=40))
        expect(page.locator("#notice")).to_contain_text("已创建课程")
        lesson_row = page.locator("#lessons-table tr[data-lesson]").filter(has_text="三年级英语 同步课堂")
        expect(lesson_row).to_have_count(1)
        lesson_id = str(lesson_row.get_attribute("data-lesson"))
        expect(lesson_row.locator("[data-live]")).to_have_text("未开始")

        # the join links, each a link and a QR code with its expiry; a phone reads the rural one
        lesson_row.locator("[data-action=links]").click()
        card = page.locator("#links-list li[data-classroom=hexi-g3]")
        expect(card.locator("a.join")).to_have_attribute("href", re.compile(rf"/lesson/{lesson_id}\?token="))
        expect(card.locator(".expiry")).to_contain_text("有效期至")
        href = str(card.locator("a.join").get_attribute("href"))
        pages.screenshot(page, "links")
        scanned = decode_qr(card.locator("img.qr").screenshot())
        assert scanned == href

        # the scanned link opens the lesson page as that rural classroom; a master terminal joins too
        rural = pages.open(scanned, "rural-screen")
        expect(rural.locator("body")).to_contain_text("三年级英语 同步课堂", timeout=20_000)
        master = launcher.start("shiyan-301", "master", "--fps", "10", "--size", "160x120", lesson=lesson_id,
                                token=mint_token(server, role="master", classroom="shiyan-301", lesson=lesson_id))
        expect(lesson_row.locator("[data-classroom=shiyan-301]")).to_have_attribute("data-state", "connected",
                                                                                  timeout=30_000)
        expect(lesson_row.locator("[data-classroom=hexi-g3]")).to_have_attribute("data-state", "connected")
        expect(lesson_row.locator("[data-classroom=hexi-g4]")).to_have_attribute("data-state", "offline")
        expect(lesson_row.locator("[data-live]")).to_have_text("进行中")
        expect(lesson_row.locator("[data-recording]")).to_have_text("录制中", timeout=10_000)
        pages.screenshot(page, "live")

        # edit: a new title (its classrooms stay while it is live)
        lesson_row.locator("[data-action=edit]").click()
        form.locator("input[name=title]").fill("三年级英语（改）")
        page.click("#btn-save")
        expect(page.locator("#notice")).to_contain_text("已保存")
        lesson_row = page.locator(f"#lessons-table tr[data-lesson={lesson_id}]")
        expect(lesson_row).to_contain_text("三年级英语（改）")

        # end it: the terminal is told and leaves, the rural screen says so, the console shows it over
        lesson_row.locator("[data-action=end]").click()
        expect(page.locator("#notice")).to_contain_text("断开 2 个教室")
        master.wait(timeout=20)  # it stops: it does not reconnect to an ended lesson
        assert "kicked" in master.log.read_text()
        expect(rural.locator("body")).to_contain_text("管理员已结束本节课", timeout=10_000)
        expect(lesson_row.locator("[data-live]")).to_have_text("已结束", timeout=10_000)
        expect(lesson_row.locator("[data-recording]")).to_have_attribute("data-recording", "off")  # stopped at once
        rural.reload()  # an ended lesson refuses joins (until its times are edited)
        expect(rural.locator("body")).to_contain_text("管理员已结束本节课", timeout=10_000)

        page.click("#btn-lang")  # English, the same page
        expect(page.locator("h1")).to_have_text("Admin console")
        expect(lesson_row.locator("[data-live]")).to_have_text("ended")
        expect(page.locator("#classrooms-table tr[data-classroom=hexi-g3]")).to_contain_text("rural classroom")
        pages.screenshot(page, "english")

        # the audit log, newest first, in English too
        audit = pages.open(f"{server.url}/admin/audit?token={admin}&lang=en", "audit", lang="en")
        rows = audit.locator("#audit-table tbody tr")
        expect(rows.first).to_have_attribute("data-action", "lesson.end")
        actions = [r.get_attribute("data-action") for r in rows.all()]
        assert actions == ["lesson.end", "lesson.edit", "lesson.links", "lesson.create", "directory.import"], actions
        expect(rows.first).to_contain_text("教育局管理员")
        expect(rows.first).to_contain_text("ended a lesson")
        expect(rows.first).to_contain_text(lesson_id)
        edit = rows.nth(1).locator("td").last  # what the edit changed, and only that
        expect(edit).to_have_text("title: 三年级英语 同步课堂 → 三年级英语（改）")
        pages.screenshot(audit, "audit")
        for label, lines in pages.logs.items():
            assert not [line for line in lines if "[pageerror]" in line], (label, lines)


def test_console_apis_are_for_administrators_and_bad_input_is_named(server: ServerProcess) -> None:
    admin = mint_token(server, role="admin")
    assert server.api("/api/admin/directory/import", method="POST", token=admin,
               body={"schools": SCHOOLS_CSV, "classrooms": CLASSROOMS_CSV})[0] == 200
    status, body = server.api("/api/admin/lessons", method="POST", token=admin,
                       body={"title": "数学", "master": "shiyan-301", "rurals": ["hexi-g3"]})
    assert status == 201, body
    lesson_id = body["id"]
    others = {role: mint_token(server, role=role, classroom=cls, lesson="demo")
              for role, cls in (("master", "master"), ("rural", "rural-1"), ("observer", "observer"))}
    others["observer-all"] = mint_token(server, role="observer", lesson="*")
    for method, path, payload in console_apis(lesson_id):
        for who, token in others.items():
            status, text = server.api(path, method=method, body=payload, token=token)
            assert status == 403 and "admin token required" in str(text), (who, method, path, status, text)
        assert server.api(path, method=method, body=payload)[0] == 401, (method, path)

    # bad input is a 400 naming the field (never a 500), and writes nothing
    cases = [
        ("/api/admin/directory/import", {"classrooms": BAD_CLASSROOMS_CSV}, "classrooms.csv: row 3, field 'grades'"),
        ("/api/admin/directory/import", {"schools": "id,name,county,kind\nr-x,X,,rural\n"},
         "schools.csv: row 2, field 'county'"),
        ("/api/admin/directory/import", {"classrooms": "id,name,school,grades\nc9,C,nowhere,3\n"},
         "classrooms.csv: row 2, field 'school'"),
        ("/api/admin/directory/import", {"schools": "id,nom\n"}, "schools.csv: row 1, field 'nom'"),
        ("/api/admin/directory/import", {"schools": 3}, "schools: must be the CSV file's text"),
        ("/api/admin/lessons", {"title": "x", "master": "hexi-g3", "rurals": ["hexi-g4"]}, "master:"),
        ("/api/admin/lessons", {"title": "x", "master": "shiyan-301", "rurals": ["nope"]}, "rurals[0]:"),
        ("/api/admin/lessons", {"title": "x", "master": "shiyan-301", "rurals": ["hexi-g3"],
                                "planned_start": "tomorrow"}, "planned_start:"),
        ("/api/admin/lessons", {"title": "", "master": "shiyan-301", "rurals": ["hexi-g3"]}, "title:"),
        ("/api/admin/lessons", {"title": "x", "kind": "lecture", "master": "shiyan-301", "rurals": ["hexi-g3"]},
         "kind:"),
        ("/api/admin/lessons", {"title": "x", "master": "shiyan-301", "rurals": []}, "rurals:"),  # twinning: 1+
    ]
    before = server.api("/api/admin/directory", token=admin)[1]
    for path, payload, named in cases:
        status, text = server.api(path, method="POST", body=payload, token=admin)
        assert status == 400 and named in str(text), (payload, status, text)
    assert server.api("/api/admin/directory", token=admin)[1] == before
    assert server.api(f"/api/admin/lessons/{lesson_id}", method="PATCH", token=admin, body={"id": "z"})[0] == 400
    assert server.api("/api/admin/lessons/nope/links", method="POST", token=admin)[0] == 404

    # a broadcast (名师课堂) may list no rural classroom: listening classrooms join by their own links
    status, body = server.api("/api/admin/lessons", method="POST", token=admin,
                              body={"title": "名师课堂", "kind": "broadcast", "master": "shiyan-301", "rurals": []})
    assert status == 201 and body["kind"] == "broadcast" and body["rurals"] == [] and body["listening"] == 0, body
    status, body = server.api(f"/api/admin/lessons/{body['id']}", method="PATCH", token=admin,
                              body={"kind": "twinning"})
    assert status == 400 and "rurals:" in body["error"], body  # a twinning lesson needs its rural classrooms

    # the rural part is what `twinclass schedule solve` takes as classrooms.csv (master rooms are not in it)
    status, text = server.api("/api/admin/directory/classrooms.csv?kind=rural", token=admin)
    assert [r[0] for r in csv.reader(io.StringIO(text))] == ["id", "hexi-g3", "hexi-g4"]

    # an ended lesson stays ended when its title changes, and opens again with new times
    path = f"/api/admin/lessons/{lesson_id}"
    assert server.api(path + "/end", method="POST", token=admin)[1]["disconnected"] == []
    assert server.api(path, method="PATCH", token=admin, body={"title": "数学（改）"})[1]["ended_at"]
    reopened = server.api(path, method="PATCH", token=admin, body={"planned_end": "2999-01-01T10:00"})[1]
    assert reopened["ended_at"] is None

    # export: the timetable input's format (header, then rows by id)
    for name, given in (("classrooms", CLASSROOMS_CSV), ("schools", SCHOOLS_CSV)):
        status, text = server.api(f"/api/admin/directory/{name}.csv", token=admin)
        assert status == 200
        header, *rows = list(csv.reader(io.StringIO(given)))
        assert list(csv.reader(io.StringIO(text))) == [header, *sorted(rows)]

    # the lesson server's own admin APIs that change lessons are in the audit log too
    lesson = {"id": "api-1", "title": "API", "master": {"id": "m"}, "rurals": [{"id": "r"}]}
    assert server.api("/api/lessons", method="POST", body=lesson, token=admin)[0] == 201
    assert server.api("/api/lessons/api-1", method="PATCH", body={"title": "API 2"}, token=admin)[0] == 200
    assert server.api("/api/lessons/api-1/tokens", method="POST", token=admin)[0] == 200
    status, page = server.api("/api/admin/audit?limit=2", token=admin)
    assert [(e["action"], e["target"]) for e in page["entries"]] == [("api.lesson.tokens", "api-1"),
                                                                      ("api.lesson.edit", "api-1")]
    assert page["entries"][1]["detail"] == {"fields": ["title"]}
    assert page["total"] == 9  # + import, 2 creates, end, 2 edits, api.lesson.create; refusals wrote nothing
    status, older = server.api("/api/admin/audit?limit=2&offset=7", token=admin)
    assert [e["action"] for e in older["entries"]] == ["lesson.create", "directory.import"]
    assert "eyJ" not in str(older) + str(page)  # no token in the log
