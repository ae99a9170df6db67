"""The header policy (issue 10, items 1 and 5): every kind of response of a real server carries
Referrer-Policy, nosniff, a Content-Security-Policy and frame protection; a deployment behind a
portal and TLS configures them; and the pages run under the policy in Chromium with no violation."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import CHROMIUM, FLAGS, launch_chromium
from harness import ROOT, ServerProcess, mint_token, start_server
from playwright.sync_api import Browser, Page

from twinclass.http_policy import HeaderPolicy

EXAMPLE = ROOT / "scheduler" / "examples" / "small.json"


def fetch(url: str, *, method: str = "GET", token: str | None = None,
          data: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, method=method, data=data)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read()


def csp_directives(headers: dict[str, str]) -> dict[str, list[str]]:
    policy = headers.get("Content-Security-Policy", "")
    return {d.split()[0]: d.split()[1:] for d in (p.strip() for p in policy.split(";")) if d}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with start_server(tmp_path_factory.mktemp("headers") / "var", env={"TWINCLASS_RECORDER": "0"}) as srv:
        yield srv


def test_every_kind_of_response_carries_the_policy(server: ServerProcess) -> None:
    admin = mint_token(server, role="admin")
    rural = mint_token(server, role="rural", classroom="rural-1")
    responses = {
        "landing page": fetch(f"{server.url}/"),
        "lesson page": fetch(f"{server.url}/lesson/demo?token={rural}"),
        "study page": fetch(f"{server.url}/recordings?token={admin}"),
        "static file": fetch(f"{server.url}/static/js/main.js"),
        "vendored library": fetch(f"{server.url}/vendor/socket.io/socket.io.esm.min.js"),
        "API JSON": fetch(f"{server.url}/api/lessons", token=admin),
        "health": fetch(f"{server.url}/healthz"),
        "404": fetch(f"{server.url}/no/such/page"),
        "404 lesson page": fetch(f"{server.url}/lesson/nope"),
        "401": fetch(f"{server.url}/api/lessons"),
        "400": fetch(f"{server.url}/api/recordings?offset=-1", token=admin),
        "405": fetch(f"{server.url}/api/lessons", method="DELETE", token=admin),
    }
    expected = {"404": 404, "404 lesson page": 404, "401": 401, "400": 400, "405": 405}
    for kind, (status, headers, _body) in responses.items():
        assert status == expected.get(kind, 200), (kind, status)
        assert headers.get("Referrer-Policy") == "no-referrer", kind
        assert headers.get("X-Content-Type-Options") == "nosniff", kind
        assert headers.get("X-Frame-Options") == "DENY", kind
        assert "Strict-Transport-Security" not in headers, kind  # plain http here
        csp = csp_directives(headers)
        assert csp.get("default-src") == ["'self'"], (kind, csp)
        assert csp.get("script-src") == ["'self'"], (kind, csp)  # no inline script, no eval
        assert csp.get("frame-ancestors") == ["'none'"], (kind, csp)
        assert csp.get("object-src") == ["'none'"], (kind, csp)
        assert {"'self'", f"ws://127.0.0.1:{server.port}"} <= set(csp.get("connect-src", [])), (kind, csp)


def test_pages_may_connect_to_the_clusters_other_nodes() -> None:
    """connect-src names every member of the cluster (a viewer's page fails over to one when its
    node dies), http(s) for socket.io's polling and ws(s); what CSP cannot name is left out."""
    members = ["http://10.0.0.2:8080", "https://node3.school.cn", "http://[fd00::2]:8080", "http://a b/",
               "ftp://10.0.0.9", "http://127.0.0.1:8080"]
    connect = HeaderPolicy(cluster=lambda: members).csp("127.0.0.1:8080").split("connect-src ")[1].split(";")[0]
    assert connect.split() == ["'self'", "ws://127.0.0.1:8080", "wss://127.0.0.1:8080", "http://10.0.0.2:8080",
                               "ws://10.0.0.2:8080", "https://node3.school.cn", "wss://node3.school.cn",
                               "http://127.0.0.1:8080"], connect
    assert "connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080;" in HeaderPolicy().csp("127.0.0.1:8080")


def test_a_portal_may_embed_the_pages_and_tls_gets_hsts(tmp_path: Path) -> None:
    portal = "https://portal.example.edu.cn"
    with start_server(tmp_path / "var", "--frame-ancestors", f"'self' {portal}",
                      "--node-url", "https://twinclass.example.edu.cn", env={"TWINCLASS_RECORDER": "0"}) as srv:
        status, headers, _ = fetch(f"{srv.url}/patrol")
    assert status == 200
    assert csp_directives(headers)["frame-ancestors"] == ["'self'", portal]
    assert "X-Frame-Options" not in headers  # it would forbid what frame-ancestors allows
    assert re.fullmatch(r"max-age=\d{7,}", headers.get("Strict-Transport-Security", "")), headers


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (the tests need a real browser)")
    with launch_chromium(FLAGS) as browser:
        yield browser


WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
"""


def _open(browser: Browser, url: str, log: list[str]) -> Page:
    context = browser.new_context(locale="zh-CN")
    context.add_init_script(WATCH_CSP)
    page = context.new_page()
    page.on("console", lambda m: log.append(f"[{m.type}] {m.text}"))
    page.on("pageerror", lambda e: log.append(f"[pageerror] {e}"))
    page.goto(url)
    return page


def test_the_pages_run_under_the_policy_in_chromium(server: ServerProcess, chromium: Browser) -> None:
    admin = mint_token(server, role="admin")
    observer = mint_token(server, role="observer", classroom="observer")
    # a printable timetable page (its inline <style> is allowed by hash)
    status, _h, body = fetch(f"{server.url}/api/schedule/solve?time_limit=20&workers=1", method="POST",
                             token=admin, data=EXAMPLE.read_bytes())
    assert status == 201, body[:500]
    timetable = json.loads(body)
    assert timetable["assignments"], "the example timetable schedules lessons"
    classroom = timetable["assignments"][0]["classroom"]

    checks = {
        "lesson": (f"/lesson/demo?token={observer}",
                   "document.getElementById('boot').hidden && document.getElementById('lesson-title').textContent"),
        "library": (f"/recordings?token={admin}&lang=en", "document.body.innerText.length > 20"),
        "patrol": (f"/patrol?token={admin}", "document.body.innerText.length > 20"),
        "reports": (f"/reports?token={admin}", "document.body.innerText.length > 20"),
        "timetable": (f"/api/timetable/{timetable['id']}/classroom/{classroom}?format=html&token={admin}",
                      "getComputedStyle(document.querySelector('table')).borderCollapse === 'collapse'"),
    }
    problems = []
    for name, (path, ready) in checks.items():
        log: list[str] = []
        page = _open(chromium, server.url + path, log)
        try:
            page.wait_for_function(f"() => ({ready})", timeout=30000)  # a string would be eval()ed: CSP forbids it
            page.wait_for_load_state("networkidle")
            violations = page.evaluate("window.__cspViolations")
        finally:
            page.context.close()
        refused = [line for line in log if "Content Security Policy" in line or "Refused to" in line]
        if violations or refused:
            problems.append(f"{name}: {violations} {refused}")
    assert not problems, "\n".join(problems)
