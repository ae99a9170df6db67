"""Tokens never reach the server's log (issue 10, item 1): a real `twinclass serve` process logs
its access lines with the token rewritten to [redacted], the path still readable."""

from __future__ import annotations

import logging
import urllib.request
from pathlib import Path

from harness import mint_token, start_server, wait_for

from twinclass.log_redaction import REDACTED, CredentialFilter


def _get(url: str, headers: dict[str, str] | None = None) -> int:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_tokens_in_links_and_headers_are_redacted_in_the_server_log(tmp_path: Path) -> None:
    with start_server(tmp_path / "var", env={"TWINCLASS_RECORDER": "0"}) as server:
        admin = mint_token(server, role="admin")
        rural = mint_token(server, role="rural", classroom="rural-1")
        observer = mint_token(server, role="observer", lesson="*", classroom="observer")
        secret = (server.data_dir / "token-secret").read_text().strip()
        visits = [
            (f"/api/lessons?token={admin}", {}),
            (f"/lesson/demo?token={rural}", {}),
            (f"/recordings?token={observer}&lang=en", {}),
            (f"/patrol?lang=en&token={observer}", {"Referer": f"{server.url}/reports?token={admin}"}),
            ("/api/lessons", {"Authorization": f"Bearer {admin}", "User-Agent": f"curl Bearer {rural}"}),
        ]
        for path, headers in visits:
            assert _get(server.url + path, headers) == 200, path

        def logged() -> str | None:
            text = server.log.read_text(errors="replace")
            return text if "GET /patrol?lang=en&token=" in text and text.count("GET /api/lessons") >= 2 else None

        log = wait_for(logged, 15, "the access log lines of the visits")
    for token in (admin, rural, observer):
        assert token not in log
        assert token.rsplit(".", 1)[1] not in log, "a token's signature reached the log"
        assert token.split(".")[1] not in log, "a token's claims reached the log"
    assert secret not in log
    # the request lines are still there, with the path readable
    assert f"GET /api/lessons?token={REDACTED} HTTP/1.1" in log
    assert f"GET /lesson/demo?token={REDACTED} HTTP/1.1" in log
    assert f"GET /recordings?token={REDACTED}&lang=en HTTP/1.1" in log


def test_the_filter_rewrites_messages_arguments_extras_and_tracebacks() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYWRtaW4ifQ.c2lnbmF0dXJlLXBhcnQ"
    f = CredentialFilter(["s3cret-value-123"])
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "GET %s secret=%s", (f"/a?token={jwt}", "x"), None)
    record.first_request_line = "GET /a?access_token=abc HTTP/1.1"
    record.request_header = {"Authorization": f"Bearer {jwt}"}
    try:
        raise ValueError("key s3cret-value-123 and token%3Dabc")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    assert f.filter(record)
    assert record.getMessage() == f"GET /a?token={REDACTED} secret={REDACTED}"
    assert record.first_request_line == f"GET /a?access_token={REDACTED} HTTP/1.1"
    assert record.request_header == {"Authorization": f"Bearer {REDACTED}"}
    assert record.exc_text is not None and "s3cret" not in record.exc_text and "token%3Dabc" not in record.exc_text
    plain = logging.LogRecord("x", logging.INFO, __file__, 1, "lesson demo started (4 classrooms)", None, None)
    assert f.filter(plain) and plain.getMessage() == "lesson demo started (4 classrooms)"
