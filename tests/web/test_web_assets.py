"""The page's files: both languages complete, every string the code asks for exists, routes safe."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

from harness import ROOT, ServerProcess

STATIC = ROOT / "web" / "static"
DYNAMIC_PREFIXES = ("status.", "role.", "quality.")  # keys built as `status.${state}` etc.


def string_keys(path: Path) -> list[str]:
    return re.findall(r'^\s*"([a-z_]+\.[a-z_0-9]+)":', path.read_text(encoding="utf-8"), re.MULTILINE)


def test_both_languages_have_the_same_strings() -> None:
    zh = string_keys(STATIC / "i18n" / "zh-CN.js")
    en = string_keys(STATIC / "i18n" / "en.js")
    assert len(zh) == len(set(zh)), "duplicate keys in zh-CN.js"
    assert sorted(zh) == sorted(en), set(zh) ^ set(en)


def test_every_string_the_page_uses_exists() -> None:
    keys = set(string_keys(STATIC / "i18n" / "zh-CN.js"))
    used: set[str] = set()
    for js in (STATIC / "js").glob("*.js"):
        text = js.read_text(encoding="utf-8")
        used |= set(re.findall(r'\bt\(\s*"([a-z_]+\.[a-z_0-9]+)"', text))
        used |= set(re.findall(r'"((?:tile|media|notice|fatal|action|side|banner|share|link)\.[a-z_0-9]+)"', text))
    used |= set(re.findall(r'data-i18n(?:-title)?="([^"]+)"', (STATIC / "lesson.html").read_text(encoding="utf-8")))
    missing = sorted(k for k in used if k not in keys)
    assert not missing, missing
    for prefix, names in {"status.": ["connecting", "media", "connected", "unstable", "reconnecting", "closed"],
                          "role.": ["master", "rural", "observer"],
                          "quality.": ["good", "fair", "poor", "none"]}.items():
        assert prefix in DYNAMIC_PREFIXES
        assert all(prefix + n in keys for n in names), prefix


def get(server: ServerProcess, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(server.url + path, timeout=10) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode("utf-8", "replace")


def test_page_and_assets_are_served_from_the_app(server: ServerProcess) -> None:
    status, ctype, body = get(server, "/lesson/demo?token=x")
    assert status == 200 and ctype.startswith("text/html")
    assert '"iceServers": []' in body and "{{" not in body
    assert 'name="referrer" content="no-referrer"' in body
    assert get(server, "/lesson/no-such-lesson")[0] == 404
    status, ctype, _ = get(server, "/static/js/main.js")
    assert status == 200 and "javascript" in ctype
    status, ctype, body = get(server, "/vendor/socket.io/socket.io.esm.min.js")
    assert status == 200 and "javascript" in ctype and "export" in body
    assert get(server, "/vendor/noto-sans-sc/index.css")[0] == 200
    status, _, index = get(server, "/")
    assert status == 200 and "Twinclass" in index


def test_only_what_is_meant_to_be_public_is_served(server: ServerProcess) -> None:
    for path in ("/static/%2e%2e/routes.py", "/static/..%2froutes.py", "/vendor/socket.io/..%2f..%2fpackage.json",
                 "/vendor/socket.io/package.json", "/vendor/left-pad/index.js", "/static/", "/static/nope.js"):
        assert get(server, path)[0] == 404, path
