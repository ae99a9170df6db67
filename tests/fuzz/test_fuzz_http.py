"""Every HTTP route (read from the server's router) with generated path parameters, query strings and
bodies, with and without tokens: never a 5xx or a hang, errors as JSON/HTML/text; the lesson plays on."""

from __future__ import annotations

from fuzz_http import HttpCase, HttpTarget, Raw, http_cases, routes
from fuzz_suite import SEED, Rig, fuzz_settings
from hypothesis import example, given, seed

TABLE = routes()


def test_every_route_is_listed() -> None:
    """The table comes from the router: the routes this suite knows of are all in it."""
    for known in (("GET", "/api/lessons"), ("PATCH", "/api/lessons/{lesson_id}"), ("POST", "/api/schedule/solve"),
                  ("GET", "/static/{path}"), ("GET", "/api/recordings")):
        assert known in TABLE, TABLE
    assert len(TABLE) >= 35, TABLE


def test_http_routes_never_answer_5xx(rig: Rig) -> None:
    target = HttpTarget(rig.server, rig.loop, TABLE)
    started, baseline = rig.begin()

    @seed(SEED)
    @fuzz_settings(200)
    @given(http_cases(TABLE))
    # the reproductions of issue 10 (item 4), kept as regression cases
    @example(HttpCase("GET", "/api/recordings", {}, (("offset", "9223372036854775808"),), auth="admin"))
    @example(HttpCase("GET", "/api/study/recordings", {}, (("to", "9999-12-31T23:59:59-05:00"),), auth="admin"))
    @example(HttpCase("GET", "/api/reports/usage", {}, (("date", "9999-12-31"),), auth="admin"))
    @example(HttpCase("GET", "/static/{path}", {"path": "js/main.js%00.png"}, (), raw_params=True))
    @example(HttpCase("POST", "/api/schedule/solve", {}, (), Raw("[" * 100_000 + "]" * 100_000), auth="admin"))
    @example(HttpCase("POST", "/api/lessons", {}, (), {"id": "x1", "title": "t", "subject": "s", "grade": "3",
                                                       "master": {"id": "m", "name": "M"}, "rurals": [], "extra": 5},
                      auth="admin"))
    def fuzz(case: HttpCase) -> None:
        target.check(case)

    try:
        fuzz()
    finally:
        target.close()
    print(f"http statuses: {dict(sorted(target.statuses.items()))}")
    rig.finish(started, baseline)
