"""Login with the province's identity provider: a real OpenID Connect provider (npm oidc-provider,
tests/idp/provider.mjs), a real `twinclass serve --oidc-issuer …`, and Chromium logging in through
the provider's login form. Every role sees what it should; forged, expired, replayed and foreign
logins are refused; logout ends the session on the server.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import sqlite3
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from browser import SCREENSHOTS
from harness import ServerProcess, free_port, mint_token, start_server, wait_for
from identity_provider import CLIENT_ID, PASSWORDS, Provider, start_provider
from lesson_page import LessonPage, LessonPages
from playwright.sync_api import Browser, BrowserContext, Page

from recorder.catalog import Recording, RecordingCatalog
from sfu.store import make_engine
from twinclass.oidc_client import OidcClient, OidcError, OidcSettings

T = TypeVar("T")
LESSON_A = {"id": "lesson-a", "title": "城区实验小学 · 数学", "subject": "数学", "grade": "3",
            "master": {"id": "master-a", "name": "实验小学 301", "school": "实验小学"},
            "rurals": [{"id": "rural-a", "name": "山口教学点", "school": "山口教学点"}]}
LESSON_B = {"id": "lesson-b", "title": "第二小学 · 英语", "subject": "英语", "grade": "4",
            "master": {"id": "master-b", "name": "第二小学 402", "school": "第二小学"},
            "rurals": [{"id": "rural-b", "name": "河西教学点", "school": "河西教学点"}]}


@pytest.fixture(scope="module")
def login_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Provider]]:
    base = tmp_path_factory.mktemp("oidc")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    second = f"http://127.0.0.1:{free_port()}"  # a second server of the same client (test_local_logout)
    SERVER[:] = [url, second]
    with start_provider(base / "idp", f"{url}/auth/callback", f"{url}/", f"{second}/auth/callback") as provider:
        server = start_server(base / "data", "--no-demo", "--oidc-issuer", provider.issuer,
                              "--oidc-client-id", CLIENT_ID, "--oidc-client-secret-file", str(provider.secret_file),
                              "--trusted-proxy", "127.0.0.1/32",  # as if behind a proxy on this machine
                              port=port, env={"TWINCLASS_RECORDER": "0"})  # the catalog rows below only
        with server:
            admin = mint_token(server, role="admin")
            for lesson in (LESSON_A, LESSON_B):
                status, body = server.api("/api/lessons", method="POST", body=lesson, token=admin)
                assert status == 201, body
            catalog = RecordingCatalog(make_engine(f"sqlite:///{server.data_dir / 'twinclass.db'}"))
            for lesson in (LESSON_A, LESSON_B):
                now = datetime.now(UTC).replace(tzinfo=None)
                catalog.save(Recording(id=f"rec-{lesson['id']}", lesson_id=str(lesson["id"]), started_at=now,
                                       directory=f"rec-{lesson['id']}",
                                       status="failed", title=str(lesson["title"]), subject=str(lesson["subject"])))
            yield server, provider


Served = tuple[ServerProcess, Provider]
Browsers = Callable[[], tuple[BrowserContext, Page]]


@pytest.fixture
def browsers(chromium: Browser) -> Iterator[Browsers]:
    """Opens browsers of their own (like other computers: own cookies, here and at the provider)."""
    opened: list[BrowserContext] = []

    def new() -> tuple[BrowserContext, Page]:
        context = chromium.new_context(viewport={"width": 1280, "height": 760})
        opened.append(context)
        return context, context.new_page()

    yield new
    for context in opened:
        context.close()


def fill_login_form(page: Page, user: str, password: str | None = None) -> None:
    """The provider's form, as a person fills it in."""
    page.fill("#username", user)
    page.fill("#password", PASSWORDS[user] if password is None else password)
    page.click("#submit")


def log_in(page: Page, server: ServerProcess, user: str, path: str = "/") -> list[str]:
    """Through /login and the provider's form, as a person would; returns the callback URLs seen."""
    callbacks: list[str] = []
    page.on("request", lambda r: callbacks.append(r.url) if r.url.startswith(f"{server.url}/auth/callback") else None)
    page.goto(f"{server.url}/login?next={path}")
    fill_login_form(page, user)
    page.wait_for_url(lambda u: "/auth/callback" not in u and u.startswith(server.url), timeout=15000)
    return callbacks


SERVER: list[str] = []  # the login server's URL, and a second one's (set by the fixture)


def api(page: Page, path: str, **kwargs: Any) -> tuple[int, Any]:
    """The JSON API of the lesson server from inside the browser: the login's cookie and nothing else."""
    resp = page.request.get(SERVER[0] + path, **kwargs)
    try:
        return resp.status, resp.json()
    except Exception:
        return resp.status, resp.text()


def test_teacher_opens_their_lesson_without_a_token(login_server: Served,
                                                    pages: LessonPages, browsers: Browsers) -> None:
    server, _provider = login_server
    context, page = browsers()
    page.goto(f"{server.url}/lesson/lesson-a")  # no token in the link: to the login, then back
    fill_login_form(page, "teacher")
    page.wait_for_url(f"{server.url}/lesson/lesson-a", timeout=15000)
    teacher = LessonPage(context, page, "teacher")
    pages.opened.append(teacher)
    teacher.wait_connected(timeout=25)
    assert teacher.page.locator("#my-role").inner_text() in ("主讲教室", "Master classroom")
    status, me = api(page, "/api/session")
    assert status == 200 and me["role"] == "master" and me["roles"] == ["teacher"] and me["classroom"] == "master-a"
    status, body = api(page, "/api/lessons")
    assert status == 200 and [lesson["id"] for lesson in body["lessons"]] == ["lesson-a"]
    assert api(page, "/api/lessons/lesson-b")[0] == 403
    assert api(page, "/api/session/join-token?lesson=lesson-b")[0] == 403
    assert api(page, "/api/session/join-token?lesson=lesson-a", headers={"Sec-Fetch-Site": "cross-site"})[0] == 403
    status, minted = api(page, "/api/session/join-token?lesson=lesson-a")
    assert status == 200 and minted["ttl_s"] == 300
    assert api(page, "/api/session/join-token")[1]["error"].startswith("lesson")  # 400 naming the field
    # and the lesson of another master classroom is not theirs to open
    other = context.new_page()
    response = other.goto(f"{server.url}/lesson/lesson-b")
    assert response is not None and response.status == 403
    assert "Not your lesson" in other.inner_text("h1")
    # the landing page lists their lessons (only theirs), to open from there
    other.goto(server.url)
    assert other.locator("#my-lessons a").all_inner_texts() == [LESSON_A["title"]]
    # the server sees the master classroom connected, joined with the login's identity
    status, live = server.api("/api/lessons/lesson-a", token=mint_token(server, role="admin"))
    assert status == 200 and [c["classroom"] for c in live["connected"]] == ["master-a"], live


def test_observer_sees_recordings_and_patrol(login_server: Served, browsers: Browsers) -> None:
    server, _provider = login_server
    _context, page = browsers()
    log_in(page, server, "observer", "/recordings")
    page.wait_for_selector("#recordings li", timeout=10000)
    listed = page.inner_text("#recordings")
    assert LESSON_A["title"] in listed and LESSON_B["title"] in listed  # every school's lessons
    assert page.locator("#error").is_hidden()
    assert page.locator("#link-patrol").is_visible()
    page.goto(f"{server.url}/patrol")
    wait_for(lambda: page.inner_text("#patrol-summary").strip(), 10, "the patrol wall's summary")
    assert page.locator("#error").is_hidden()
    status, body = api(page, "/api/patrol")
    assert status == 200, body
    status, me = api(page, "/api/session")
    assert me["role"] == "observer" and me["roles"] == ["researcher"]  # from the `groups` claim
    assert api(page, "/api/lessons/lesson-a")[0] == 403  # watching is not managing
    assert api(page, "/api/stats")[0] == 403
    # writing from our own page works with the login (the browser says Sec-Fetch-Site: same-origin) ...
    posted = page.evaluate("""async () => {
      const r = await fetch('/api/recordings/rec-lesson-b/comments', {method: 'POST',
        headers: {'Content-Type': 'application/json'}, body: JSON.stringify({t: 0, body: '很好 Well taught'})});
      return [r.status, await r.json()];
    }""")
    assert posted[0] == 201 and posted[1]["author"]["name"] == "赵教研员 Researcher", posted
    # ... but not from another site's page, whose request the browser marks cross-site
    resp = page.request.post(f"{server.url}/api/recordings/rec-lesson-b/comments", data={"t": 0, "body": "x"},
                             headers={"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"})
    assert resp.status == 401
    # the study pages say who is logged in, and log out
    page.goto(f"{server.url}/recordings?lang=en")
    page.wait_for_selector("#who", timeout=10000)
    assert "赵教研员" in page.inner_text("#who") and page.inner_text("#logout") in ("Log out", "退出登录")
    page.screenshot(path=str(SCREENSHOTS / "login-observer-recordings.png"))
    page.click("#logout")
    page.wait_for_url(lambda u: not u.startswith(f"{server.url}/recordings"), timeout=10000)
    assert api(page, "/api/session")[0] == 401


def test_bureau_admin_lists_every_lesson_and_logs_out(login_server: Served, browsers: Browsers) -> None:
    server, provider = login_server
    context, page = browsers()
    log_in(page, server, "bureau")
    assert "王局长" in page.inner_text("#who") and page.locator("#logout").is_visible()
    assert sorted(page.locator("#my-lessons a").all_inner_texts()) == sorted([LESSON_A["title"], LESSON_B["title"]])
    page.screenshot(path=str(SCREENSHOTS / "login-landing-page.png"))
    status, body = api(page, "/api/lessons")
    assert status == 200 and sorted(lesson["id"] for lesson in body["lessons"]) == ["lesson-a", "lesson-b"]
    assert api(page, "/api/stats")[0] == 200
    assert sorted(r["lesson"] for r in api(page, "/api/recordings")[1]["recordings"]) == ["lesson-a", "lesson-b"]
    cookie = next(c["value"] for c in context.cookies() if c["name"] == "twinclass_session")
    attrs = next(c for c in context.cookies() if c["name"] == "twinclass_session")
    assert attrs["httpOnly"] and attrs["sameSite"] == "Lax" and attrs["path"] == "/"
    assert not attrs["secure"]  # plain http: a Secure cookie would never come back over it
    page.click("#logout")  # to the provider's own logout, after ours
    page.wait_for_url(lambda u: u.startswith(provider.issuer), timeout=10000)
    assert api(page, "/api/session")[0] == 401
    # the cookie's old value no longer works: the session is gone on the server
    replay = context.request.get(f"{server.url}/api/lessons", headers={"Cookie": f"twinclass_session={cookie}"})
    assert replay.status == 401


def test_school_admin_reads_only_their_school(login_server: Served, browsers: Browsers) -> None:
    server, _provider = login_server
    _context, page = browsers()
    log_in(page, server, "schooladmin")
    assert "实验小学" in page.inner_text("#who")
    status, body = api(page, "/api/lessons")
    assert status == 200 and [lesson["id"] for lesson in body["lessons"]] == ["lesson-a"]
    assert api(page, "/api/lessons/lesson-a")[0] == 200
    assert api(page, "/api/lessons/lesson-b")[0] == 403
    status, body = api(page, "/api/recordings")
    assert status == 200 and [r["lesson"] for r in body["recordings"]] == ["lesson-a"]
    assert api(page, "/api/recordings/rec-lesson-b")[0] == 403
    assert api(page, "/api/recordings?lesson=lesson-b")[1]["recordings"] == []
    status, body = api(page, "/api/study/recordings")
    assert status == 200 and [r["lesson"] for r in body["recordings"]] == ["lesson-a"], body
    # a school admin is not a bureau admin: no new lessons, no tokens for any lesson, no metrics
    resp = page.request.post(f"{server.url}/api/lessons", data={"id": "x"}, headers={"Origin": server.url})
    assert resp.status == 403
    assert api(page, "/api/stats")[0] == 403


def test_a_person_without_a_role_gets_no_session(login_server: Served, browsers: Browsers) -> None:
    server, _provider = login_server
    context, page = browsers()
    page.goto(f"{server.url}/login")
    with page.expect_response(lambda r: r.url.startswith(f"{server.url}/auth/callback")) as callback:
        fill_login_form(page, "nobody")
    assert callback.value.status == 403
    assert "no role" in page.inner_text("#no-role")
    assert not [c for c in context.cookies() if c["name"] == "twinclass_session"]
    assert api(page, "/api/session")[0] == 401
    # a wrong password never gets past the provider's form (a new browser: no session at the provider)
    _context, page = browsers()
    page.goto(f"{server.url}/login")
    fill_login_form(page, "bureau", "guess")
    assert "Wrong user name or password" in page.inner_text("#error")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end on a thread of its own (Playwright's sync API holds this thread's loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _session_row_hash(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def test_forged_expired_replayed_and_foreign_logins_are_refused(
        login_server: Served, browsers: Browsers) -> None:
    server, provider = login_server
    context, page = browsers()
    callbacks = log_in(page, server, "teacher")
    assert api(page, "/api/session")[0] == 200
    # a replayed callback (the same code and state again) is refused, in this browser or another
    assert len(callbacks) == 1
    again = page.request.get(callbacks[0], max_redirects=0)
    assert again.status == 400 and "state" in again.text()
    _other_context, other = browsers()
    other.goto(callbacks[0])
    assert "state" in other.inner_text("#login-error")
    # a wrong state; a `next` that leaves this server
    assert page.request.get(f"{server.url}/auth/callback?state=forged&code=x").status == 400
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        resp = page.request.get(f"{server.url}/login?next={target}", max_redirects=0)
        assert resp.status == 400 and "next" in resp.json()["error"], target
    # a logout another site's page asks for (cross-site POST) is refused, the session lives on
    resp = page.request.post(f"{server.url}/logout", headers={"Origin": "http://evil.example"}, max_redirects=0)
    assert resp.status == 403 and api(page, "/api/session")[0] == 200
    # a forged session cookie
    forged = context.request.get(f"{server.url}/api/session",
                                 headers={"Cookie": f"twinclass_session={secrets.token_urlsafe(32)}"})
    assert forged.status == 401
    # an expired session: its absolute expiry passed (the server's clock is the database's row)
    cookie = next(c["value"] for c in context.cookies() if c["name"] == "twinclass_session")
    with sqlite3.connect(server.data_dir / "twinclass.db") as db:
        n = db.execute("UPDATE web_sessions SET expires_at = ? WHERE id_hash = ?",
                       (time.time() - 1, _session_row_hash(cookie))).rowcount
    assert n == 1
    assert api(page, "/api/session")[0] == 401
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url))
    page.goto(f"{server.url}/lesson/lesson-a")  # sent to log in again (the provider still knows them: SSO)
    page.wait_for_url(f"{server.url}/lesson/lesson-a")
    assert any(u.startswith(f"{server.url}/login?next=") for u in seen), seen
    assert any(u.startswith(f"{provider.issuer}/auth") for u in seen), seen
    renewed = next(c["value"] for c in context.cookies() if c["name"] == "twinclass_session")
    assert renewed != cookie and api(page, "/api/session")[0] == 200
    # logging in again replaces the session: the previous id stops working at once
    page.goto(f"{server.url}/login")
    page.wait_for_url(f"{server.url}/", timeout=15000)
    newest = next(c["value"] for c in context.cookies() if c["name"] == "twinclass_session")
    assert newest != renewed and api(page, "/api/session")[0] == 200
    stale = context.request.get(f"{server.url}/api/session", headers={"Cookie": f"twinclass_session={renewed}"})
    assert stale.status == 401


def test_id_tokens_from_another_issuer_or_for_another_login_are_refused(
        login_server: Served, tmp_path: Path) -> None:
    server, provider = login_server
    redirect = f"{server.url}/auth/callback"
    client = OidcClient(OidcSettings(provider.issuer, CLIENT_ID, provider.secret_file.read_text().strip()))
    verifier = secrets.token_urlsafe(48)
    with start_provider(tmp_path / "idp2", redirect, f"{server.url}/") as foreign:
        code = foreign.login_code(redirect, "bureau", nonce="n-1", verifier=verifier)
        foreign_tokens = foreign.tokens(code, redirect, verifier)
    with pytest.raises(OidcError, match="not valid"):  # another issuer, signed with its own key
        _run(client.validate_id_token(foreign_tokens, "n-1"))
    code = provider.login_code(redirect, "bureau", nonce="n-2", verifier=verifier)
    own = provider.tokens(code, redirect, verifier)
    with pytest.raises(OidcError, match="not valid"):  # our provider's, but for another login (nonce)
        _run(client.validate_id_token(own, "n-other"))
    claims = _run(client.validate_id_token(own, "n-2"))
    assert claims["iss"] == provider.issuer and claims["aud"] == CLIENT_ID and claims["roles"] == ["bureau-admin"]
    # the provider itself refuses a code twice
    with pytest.raises(Exception, match="400"):
        provider.tokens(code, redirect, verifier)


def test_the_cookie_is_secure_behind_an_https_proxy(login_server: Served, browsers: Browsers) -> None:
    server, _provider = login_server
    context, page = browsers()
    context.set_extra_http_headers({"X-Forwarded-Proto": "https"})  # what a trusted TLS proxy adds
    log_in(page, server, "observer")
    cookie = next(c for c in context.cookies() if c["name"] == "twinclass_session")
    assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert api(page, "/api/session")[0] == 200


def test_local_logout_ends_only_our_session(login_server: Served, browsers: Browsers, tmp_path: Path) -> None:
    _server, provider = login_server
    port = int(SERVER[1].rsplit(":", 1)[1])
    with start_server(tmp_path / "data", "--no-demo", "--oidc-issuer", provider.issuer, "--oidc-client-id", CLIENT_ID,
                      "--oidc-client-secret-file", str(provider.secret_file), "--oidc-local-logout", port=port,
                      env={"TWINCLASS_RECORDER": "0"}) as local:
        _context, page = browsers()
        log_in(page, local, "observer")
        page.click("#logout")
        page.wait_for_selector("#login", timeout=10000)  # our landing page again, logged out ...
        assert page.url == f"{local.url}/"  # ... not the provider's logout
        assert page.request.get(f"{local.url}/api/session").status == 401


def test_no_credential_reaches_the_log(login_server: Served) -> None:
    """After every login above: the client secret, codes, session ids and join tokens stay out of the log."""
    server, provider = login_server
    log = server.log.read_text()
    assert "/auth/callback?" in log  # the callbacks were logged ...
    assert provider.secret_file.read_text().strip() not in log
    assert "code=[redacted]" in log and not re.search(r"\bcode=(?!\[redacted\])", log)  # ... without their codes
    assert "eyJ" not in log and "twinclass_session=" not in log


def test_without_login_a_link_without_token_still_says_so(server: ServerProcess, browsers: Browsers) -> None:
    """A server without --oidc-issuer: nothing changes; the page without a token explains it."""
    _context, page = browsers()
    response = page.goto(f"{server.url}/lesson/demo")
    assert response is not None and response.status == 200 and page.url == f"{server.url}/lesson/demo"
    page.wait_for_selector("#fatal[data-reason='fatal.no_token']", state="visible", timeout=15000)
    assert page.request.get(f"{server.url}/login").status == 404
