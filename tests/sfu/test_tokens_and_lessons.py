"""Join tokens, the lesson model and the lesson store (SQLite), without a server."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest

from sfu.lessons import Classroom, Lesson, LessonError, Role
from sfu.store import LessonStore, make_engine, sqlite_url
from sfu.tokens import TokenError, TokenIssuer, load_or_create_secret

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def test_minted_token_round_trips_with_documented_claims() -> None:
    issuer = TokenIssuer(SECRET)
    token = issuer.mint(lesson="L1", classroom="r1", name="山口教学点", role="rural", ttl_s=60)
    raw = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert set(raw) == {"lesson", "classroom", "name", "role", "exp", "sub"}  # every minted token: its own sub
    claims = issuer.verify(token)
    assert (claims.lesson, claims.classroom, claims.name, claims.role) == ("L1", "r1", "山口教学点", Role.RURAL)
    assert claims.exp > time.time()
    again = issuer.verify(issuer.mint(lesson="L1", classroom="r1", name="山口教学点", role="rural", ttl_s=60))
    assert claims.sub and again.sub and claims.sub != again.sub
    assert issuer.verify(issuer.mint_admin()).sub != issuer.verify(issuer.mint_admin()).sub
    # sub="" mints a token without one, as other systems may
    bare = issuer.mint(lesson="L1", classroom="r1", name="x", role="rural", ttl_s=60, sub="")
    assert "sub" not in jwt.decode(bare, SECRET, algorithms=["HS256"]) and issuer.verify(bare).sub == ""


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"lesson": "L", "classroom": "c", "name": "n", "role": "rural", "exp": 1}, "token expired"),
        ({"lesson": "L", "classroom": "c", "name": "n", "role": "rural"}, "lacks the claim 'exp'"),
        ({"lesson": "L", "classroom": "c", "name": "n", "role": "boss", "exp": 2**31}, "role 'boss' is unknown"),
        ({"lesson": "", "classroom": "c", "name": "n", "role": "rural", "exp": 2**31}, "lacks the claim 'lesson'"),
        ({"lesson": "L", "classroom": "", "name": "n", "role": "master", "exp": 2**31}, "lacks the claim 'classroom'"),
        ({"lesson": "L", "classroom": "c", "name": "n", "role": "system", "exp": 2**31}, "system role"),
        ({"lesson": 5, "classroom": "c", "name": "n", "role": "rural", "exp": 2**31}, "must be a string"),
    ],
)
def test_bad_claims_are_refused_with_a_reason(payload: dict, reason: str) -> None:
    issuer = TokenIssuer(SECRET)
    with pytest.raises(TokenError, match=reason):
        issuer.verify(jwt.encode(payload, SECRET, algorithm="HS256"))


def test_forged_and_malformed_tokens_are_refused() -> None:
    issuer = TokenIssuer(SECRET)
    other = TokenIssuer("another-secret-that-is-long-enough-for-hs256")
    forged = other.mint(lesson="L", classroom="c", name="n", role="rural")
    with pytest.raises(TokenError, match="signature invalid"):
        issuer.verify(forged)
    with pytest.raises(TokenError, match="malformed"):
        issuer.verify("abc.def.ghi")
    with pytest.raises(TokenError, match="missing"):
        issuer.verify(None)
    unsigned = jwt.encode({"lesson": "L", "classroom": "c", "role": "rural", "exp": 2**31}, None, algorithm="none")
    with pytest.raises(TokenError):
        issuer.verify(unsigned)


def test_secret_is_created_once_and_private(tmp_path: Path) -> None:
    first = load_or_create_secret(tmp_path)
    assert load_or_create_secret(tmp_path) == first
    assert (tmp_path / "token-secret").stat().st_mode & 0o777 == 0o600


def _lesson(**kw: object) -> dict:
    base = {"id": "eng-1", "title": "英语", "subject": "英语", "grade": "3",
            "master": {"id": "m", "name": "主讲"}, "rurals": [{"id": "r1", "name": "教学点"}]}
    base.update(kw)
    return base


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"rurals": []}, "rurals"),
        ({"rurals": [{"id": f"r{i}"} for i in range(9)]}, "rurals"),
        ({"title": " "}, "title"),
        ({"id": "bad id!"}, "id"),
        ({"master": {"id": "r1"}}, "classrooms: ids must be unique"),
        ({"planned_start": "2026-13-01T10:00"}, "planned_start"),
        ({"planned_start": "2026-11-24T10:00", "planned_end": "2026-11-24T09:00"}, "planned_end"),
        ({"rural_see_each_other": "yes"}, "rural_see_each_other"),
        ({"master": 3}, "master"),
    ],
)
def test_bad_lesson_json_names_the_field(change: dict, field: str) -> None:
    with pytest.raises(LessonError, match=field):
        Lesson.from_json(_lesson(**change))


def test_store_persists_lessons(tmp_path: Path) -> None:
    store = LessonStore(make_engine(sqlite_url(tmp_path)))
    lesson = Lesson.from_json(_lesson(planned_start="2026-11-24T09:00:00", planned_end="2026-11-24T09:40:00",
                                      rural_see_each_other=True))
    store.create(lesson)
    with pytest.raises(LessonError, match="already exists"):
        store.create(lesson)
    again = LessonStore(make_engine(sqlite_url(tmp_path))).get("eng-1")  # a fresh engine: read from disk
    assert again is not None
    assert again.master == Classroom("m", "主讲", "") and again.rurals[0].id == "r1"
    assert again.rural_see_each_other and again.planned_end is not None
    assert again.role_of("m") == Role.MASTER and again.role_of("r1") == Role.RURAL and again.role_of("x") is None
    assert [lesson.id for lesson in store.list()] == ["eng-1"]


def test_planned_times_with_an_offset_are_converted_to_local_time(tmp_path: Path) -> None:
    store = LessonStore(make_engine(sqlite_url(tmp_path)))
    store.create(Lesson.from_json(_lesson(planned_start="2026-11-24T09:00:00+08:00",
                                          planned_end="2026-11-24T09:40:00+08:00")))
    got = store.get("eng-1")
    assert got is not None and got.planned_start is not None and got.planned_start.tzinfo is None
    expected = datetime(2026, 11, 24, 1, 0, tzinfo=UTC).astimezone().replace(tzinfo=None)
    assert got.planned_start == expected


def test_token_command_checks_the_lesson_in_the_configured_database(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`twinclass token` reads lessons where `serve` does: --database-url, else $TWINCLASS_DATABASE_URL,
    else the data dir's SQLite file."""
    from twinclass import cli as twinclass_cli

    monkeypatch.delenv("TWINCLASS_DATABASE_URL", raising=False)
    monkeypatch.delenv("TWINCLASS_SECRET", raising=False)
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    LessonStore(make_engine(sqlite_url(data_dir)))  # the data dir has a store, without the lesson
    other = f"sqlite:///{tmp_path / 'other.db'}"
    LessonStore(make_engine(other)).create(Lesson.from_json(_lesson()))
    argv = ["token", "--data-dir", str(data_dir), "--lesson", "eng-1", "--classroom", "r1", "--role", "rural"]

    assert twinclass_cli.main([*argv, "--database-url", other]) == 0
    claims = TokenIssuer(load_or_create_secret(data_dir)).verify(capsys.readouterr().out.strip())
    assert (claims.lesson, claims.classroom, claims.name, claims.role) == ("eng-1", "r1", "教学点", Role.RURAL)
    with pytest.raises(SystemExit, match="'r1' is rural, not master"):
        twinclass_cli.main([*argv[:-1], "master", "--database-url", other])
    with pytest.raises(SystemExit, match="lesson 'eng-1' not found"):  # the data dir's own store
        twinclass_cli.main(argv)

    monkeypatch.setenv("TWINCLASS_DATABASE_URL", other)
    assert twinclass_cli.main(argv) == 0
    assert TokenIssuer(load_or_create_secret(data_dir)).verify(capsys.readouterr().out.strip()).classroom == "r1"
    with pytest.raises(SystemExit, match="lesson 'eng-9' not found in sqlite:///"):
        twinclass_cli.main([*argv[:4], "eng-9", *argv[5:]])
