"""Issue 11's whole path, as the bureau would walk it: an administrator logs in through the
province's identity provider (a real npm oidc-provider and its login form), adds a school and
its classrooms from CSV in the console, creates a lesson, scans the rural link's QR code, and sees
the lesson live when a classroom joins; no token is in any address the person opened."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from admin_console import CLASSROOMS_CSV, SCHOOLS_CSV, ConsolePages, console_pages, decode_qr, fill_lesson, upload
from harness import ClassroomLauncher, ServerProcess, free_port, mint_token, start_server
from identity_provider import CLIENT_ID, PASSWORDS, start_provider
from playwright.sync_api import Browser, Page, expect


@pytest.fixture
def login_server(tmp_path: Path) -> Iterator[ServerProcess]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with start_provider(tmp_path / "idp", f"{url}/auth/callback", f"{url}/") as provider, \
            start_server(tmp_path / "var", "--no-demo", "--oidc-issuer", provider.issuer, "--oidc-client-id",
                         CLIENT_ID, "--oidc-client-secret-file", str(provider.secret_file), port=port,
                         env={"TWINCLASS_RECORDER": "0"}) as server:
        yield server


def console_login(pages: ConsolePages, server: ServerProcess, user: str, label: str) -> Page:
    """/admin through /login and the provider's form, as the person would."""
    page = pages.open(f"{server.url}/login?next=/admin", label)
    page.fill("#username", user)
    page.fill("#password", PASSWORDS[user])
    page.click("#submit")
    page.wait_for_url(f"{server.url}/admin", timeout=15_000)
    return page


def test_an_administrator_logs_in_and_runs_a_lesson_from_the_console(
        login_server: ServerProcess, chromium: Browser, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    server = login_server
    with console_pages(chromium, request.node.name) as pages, ClassroomLauncher(server, tmp_path) as launcher:
        page = console_login(pages, server, "bureau", "console")
        expect(page.locator("h1")).to_have_text("管理控制台")
        expect(page.locator("#who")).to_contain_text("王局长")
        expect(page.locator("#scope")).to_be_hidden()

        upload(page, SCHOOLS_CSV, CLASSROOMS_CSV)
        expect(page.locator("#notice")).to_contain_text("已导入 2 所学校、3 个教室")
        now = datetime.now()
        fill_lesson(page, "登录后建的课", "shiyan-301", ["hexi-g3", "hexi-g4"], now - timedelta(minutes=5),
                    now + timedelta(minutes=40))
        expect(page.locator("#notice")).to_contain_text("已创建课程")
        row = page.locator("#lessons-table tr[data-lesson]").filter(has_text="登录后建的课")
        lesson_id = str(row.get_attribute("data-lesson"))

        row.locator("[data-action=links]").click()
        card = page.locator("#links-list li[data-classroom=hexi-g3]")
        expect(card.locator("a.join")).to_have_attribute("href", re.compile(rf"/lesson/{lesson_id}\?token="))
        scanned = decode_qr(card.locator("img.qr").screenshot())
        assert scanned == card.locator("a.join").get_attribute("href") and "token=" in scanned

        # the rural screen opens the scanned link (no login there); the master classroom's terminal joins
        rural = pages.open(scanned, "rural-screen")
        expect(rural.locator("body")).to_contain_text("登录后建的课", timeout=20_000)
        launcher.start("shiyan-301", "master", "--fps", "10", "--size", "160x120", lesson=lesson_id,
                       token=mint_token(server, role="master", classroom="shiyan-301", lesson=lesson_id))
        expect(row.locator("[data-classroom=shiyan-301]")).to_have_attribute("data-state", "connected",
                                                                           timeout=30_000)
        expect(row.locator("[data-classroom=hexi-g3]")).to_have_attribute("data-state", "connected")
        expect(row.locator("[data-live]")).to_have_text("进行中")
        pages.screenshot(page, "login-live")

        # the audit log names the person the provider logged in, not a token
        page.goto(f"{server.url}/admin/audit")  # the same browser: its login
        expect(page.locator("#audit-table tbody tr").first).to_contain_text("王局长")
        for label, lines in pages.logs.items():
            assert not [line for line in lines if "[pageerror]" in line], (label, lines)


TWO_SCHOOLS_CSV = """id,name,county,kind,link_capacity
u-shiyan,实验小学,清水县,urban,2
u-dier,第二小学,清水县,urban,2
r-hexi,河西村小,清水县,rural,2
"""
TWO_SCHOOLS_CLASSROOMS_CSV = """id,name,school,grades
shiyan-301,实验小学 301 教室,u-shiyan,3
dier-402,第二小学 402 教室,u-dier,4
hexi-g3,河西村小 三年级,r-hexi,3
hexi-g4,河西村小 四年级,r-hexi,4
"""


def test_a_school_admin_runs_only_their_schools_day(
        login_server: ServerProcess, chromium: Browser, request: pytest.FixtureRequest) -> None:
    """李校长 (the provider's school admin of 实验小学) opens the console: their school's classrooms
    and lessons only, their classrooms' join links only, and they can end their lesson; the bureau's
    planning (import, lessons, timetable, audit) is neither shown nor allowed."""
    server = login_server
    bureau = mint_token(server, role="admin")
    status, _ = server.api("/api/admin/directory/import", method="POST", token=bureau,
                           body={"schools": TWO_SCHOOLS_CSV, "classrooms": TWO_SCHOOLS_CLASSROOMS_CSV})
    assert status == 200
    now = datetime.now()
    when = {"planned_start": (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M"),
            "planned_end": (now + timedelta(minutes=40)).strftime("%Y-%m-%dT%H:%M")}
    ours = server.api("/api/admin/lessons", method="POST", token=bureau,
                      body={"title": "实验小学的课", "master": "shiyan-301", "rurals": ["hexi-g3"], **when})[1]["id"]
    theirs = server.api("/api/admin/lessons", method="POST", token=bureau,
                        body={"title": "第二小学的课", "master": "dier-402", "rurals": ["hexi-g4"], **when})[1]["id"]

    with console_pages(chromium, request.node.name) as pages:
        page = console_login(pages, server, "schooladmin", "school-admin")
        expect(page.locator("#scope")).to_contain_text("实验小学：本校的教室和课程")
        expect(page.locator("#who")).to_contain_text("李校长")  # who is logged in, beside the logout button
        expect(page.locator("#logout")).to_have_text("退出登录")
        expect(page.locator("#lessons-table tr[data-lesson]")).to_have_count(1)
        row = page.locator(f"#lessons-table tr[data-lesson={ours}]")
        expect(row).to_contain_text("实验小学的课")
        expect(page.locator("#classrooms-table tr[data-classroom]")).to_have_count(1)
        expect(page.locator("#classrooms-table tr[data-classroom=shiyan-301]")).to_be_visible()
        for hidden in ("#import-form", "#lesson-editor", "a[href='/admin/timetable']", "a[href='/admin/audit']"):
            expect(page.locator(hidden)).to_be_hidden()
        expect(row.locator("[data-action=edit]")).to_have_count(0)

        row.locator("[data-action=links]").click()
        expect(page.locator("#links-list li")).to_have_count(1)  # the master classroom's screen, not the rural's
        expect(page.locator("#links-list li[data-classroom=shiyan-301] a.join")).to_have_attribute(
            "href", re.compile(rf"/lesson/{ours}\?token="))
        pages.screenshot(page, "school-admin")

        def call(method: str, path: str, body: object = None) -> tuple[int, str]:
            resp = page.request.fetch(server.url + path, method=method, data=body,
                                      headers={"Origin": server.url, "Content-Type": "application/json"})
            return resp.status, resp.text()

        assert call("GET", f"/api/admin/lessons/{theirs}")[0] == 404
        assert call("POST", f"/api/admin/lessons/{theirs}/links")[0] == 404
        assert call("POST", f"/api/admin/lessons/{theirs}/end")[0] == 404
        status, text = call("POST", "/api/admin/lessons", {"title": "x", "master": "shiyan-301", "rurals": ["hexi-g3"]})
        assert status == 403 and "school admin" in text
        assert call("POST", "/api/admin/directory/import", {"schools": TWO_SCHOOLS_CSV})[0] == 403
        assert call("PATCH", f"/api/admin/lessons/{ours}", {"title": "y"})[0] == 403
        assert call("GET", "/api/admin/audit")[0] == 403
        assert call("GET", "/api/admin/timetable")[0] == 403
        status, text = call("GET", "/api/admin/directory/classrooms.csv")
        assert status == 200 and text.splitlines()[1:] == ["shiyan-301,实验小学 301 教室,u-shiyan,3"], text
        status, text = call("GET", "/api/admin/directory/schools.csv")
        assert status == 200 and [line.split(",")[0] for line in text.splitlines()[1:]] == ["u-shiyan"], text

        status, text = call("POST", f"/api/admin/lessons/{ours}/end")
        assert status == 200, text
        expect(row.locator("[data-live]")).to_have_text("已结束", timeout=10_000)
        entries = server.api("/api/admin/audit", token=bureau)[1]["entries"]
        assert [(e["action"], e["target"]) for e in entries][:2] == [("lesson.end", ours), ("lesson.links", ours)]
        assert "李校长" in entries[0]["name"], entries[0]
        for label, lines in pages.logs.items():
            assert not [line for line in lines if "[pageerror]" in line], (label, lines)
