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
from admin_console import CLASSROOMS_CSV, SCHOOLS_CSV, console_pages, decode_qr, fill_lesson, upload
from harness import ClassroomLauncher, ServerProcess, free_port, mint_token, start_server
from identity_provider import CLIENT_ID, PASSWORDS, start_provider
from playwright.sync_api import Browser, expect


@pytest.fixture
def login_server(tmp_path: Path) -> Iterator[ServerProcess]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with start_provider(tmp_path / "idp", f"{url}/auth/callback", f"{url}/") as provider, \
            start_server(tmp_path / "var", "--no-demo", "--oidc-issuer", provider.issuer, "--oidc-client-id",
                         CLIENT_ID, "--oidc-client-secret-file", str(provider.secret_file), port=port,
                         env={"TWINCLASS_RECORDER": "0"}) as server:
        yield server


def test_an_administrator_logs_in_and_runs_a_lesson_from_the_console(
        login_server: ServerProcess, chromium: Browser, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    server = login_server
    with console_pages(chromium, request.node.name) as pages, ClassroomLauncher(server, tmp_path) as launcher:
        page = pages.open(f"{server.url}/login?next=/admin", "console")
        page.fill("#username", "bureau")
        page.fill("#password", PASSWORDS["bureau"])
        page.click("#submit")
        page.wait_for_url(f"{server.url}/admin", timeout=15_000)
        expect(page.locator("h1")).to_have_text("管理控制台")

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
