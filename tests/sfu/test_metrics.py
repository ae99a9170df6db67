"""`/metrics` of a real `twinclass serve` process during a real lesson (master + rural terminals),
and `--log-format json`: what a Prometheus scraper and a log collector see."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import ClassroomLauncher, ServerProcess, free_port, mint_token, start_server, wait_for
from prometheus_client.parser import text_string_to_metric_families


@pytest.fixture
def metrics_server(tmp_path: Path) -> Iterator[tuple[ServerProcess, int]]:
    port = free_port()
    with start_server(tmp_path / "var", "--metrics-port", str(port), "--log-format", "json") as srv:
        yield srv, port


def fetch(url: str, token: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by (name, sorted labels); parsing fails on anything not the text format."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(scrape: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return scrape[(name, tuple(sorted(labels.items())))]


def test_metrics_during_a_lesson(metrics_server: tuple[ServerProcess, int], tmp_path: Path) -> None:
    server, port = metrics_server
    admin = mint_token(server, role="admin")
    side = f"http://127.0.0.1:{port}/metrics"

    # without a token, or with a classroom's token, the main port says no
    assert fetch(server.url + "/metrics")[0] == 401
    assert fetch(server.url + "/metrics", mint_token(server, role="rural", classroom="rural-1"))[0] == 403

    with ClassroomLauncher(server, tmp_path) as classrooms:
        tokens = [mint_token(server, role="master", classroom="master"),
                  mint_token(server, role="rural", classroom="rural-1")]
        master = classrooms.start("master", "master", "--duration", "60", "--log-format", "json", token=tokens[0])
        rural = classrooms.start("rural-1", "rural", "--duration", "60", token=tokens[1])
        wait_for(lambda: master.remote("rural-1").get("frames_decoded", 0) > 20
                 and rural.remote("master").get("frames_decoded", 0) > 20, 40, "frames both ways")

        status, text = fetch(server.url + "/metrics", admin)
        assert status == 200
        first = samples(text)
        assert value(first, "twinclass_lessons_live") == 1
        assert value(first, "twinclass_classrooms_live", role="master") == 1
        assert value(first, "twinclass_classrooms_live", role="rural") == 1
        assert value(first, "twinclass_observers_live") == 0
        assert value(first, "process_resident_memory_bytes") > 10e6
        assert value(first, "process_open_fds") > 5
        assert value(first, "twinclass_asyncio_tasks") > 0
        assert value(first, "twinclass_process_threads") >= 1
        assert value(first, "twinclass_event_loop_lag_seconds_count") > 0
        assert value(first, "twinclass_plis_sent_total") > 0  # each subscriber's first picture needs a keyframe
        assert value(first, "twinclass_rtp_received_packets_total") > 0
        for token in (admin, *tokens):
            assert token not in text and token.split(".")[2] not in text

        # the separate port: no token needed, the same figures, and they move while the lesson runs
        def grown() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
            code, body = fetch(side)
            assert code == 200
            later = samples(body)
            moved = (value(later, "twinclass_rtp_forwarded_packets_total")
                     > value(first, "twinclass_rtp_forwarded_packets_total") + 100)
            return later if moved else None

        second = wait_for(grown, 20, "forwarded packets to grow between two scrapes")
        fwd_bytes = "twinclass_rtp_forwarded_bytes_total"
        assert value(second, fwd_bytes) > value(first, fwd_bytes)
        assert value(second, "twinclass_classrooms_live", role="rural") == 1
        assert fetch(side, admin)[0] == 200

        rural.stop()
        left = wait_for(lambda: (s := samples(fetch(side)[1]))
                        and value(s, "twinclass_classrooms_live", role="rural") == 0 and s, 20, "the rural to leave")
        # what the rural's connections counted stays in the totals after they closed (a sum over the
        # live connections would drop by what the rural received)
        for name in ("twinclass_rtp_forwarded_packets_total", "twinclass_rtp_received_packets_total"):
            assert value(left, name) >= value(second, name)

    # --log-format json: every line the server wrote to stderr is one JSON object (stdout keeps the links)
    log_lines = [line for line in server.log.read_text().splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in log_lines]
    assert any(r["logger"] == "twinclass.metrics" and "metrics on" in r["message"] for r in records)
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    non_json = [line for line in server.log.read_text().splitlines()
                if not line.startswith("{") and (" INFO " in line or " WARNING " in line or " ERROR " in line)]
    assert non_json == []
    master_log = [json.loads(line) for line in master.log.read_text().splitlines() if line.startswith("{")]
    assert master_log, "the classroom terminal logs JSON too"


def test_json_log_lines_carry_the_exception() -> None:
    import logging

    from twinclass.log_format import JsonFormatter

    logger = logging.getLogger("test.json")
    try:
        raise ValueError("bad input")
    except ValueError:
        record = logger.makeRecord("test.json", logging.ERROR, __file__, 1, "failed on %s", ("x",), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert data["message"] == "failed on x" and data["level"] == "ERROR" and data["logger"] == "test.json"
    assert "ValueError: bad input" in data["exception"] and "Traceback" in data["exception"]
