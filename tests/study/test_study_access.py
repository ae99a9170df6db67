"""Who may do what, from a token's claims alone: an observer token's `lesson` limits it unless it
is "*", and a token's `sub` (when it has one) is the author of what it writes."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from harness import TWINCLASS

from recorder.catalog import Recording
from recorder.http_api import may_watch
from sfu.lessons import Role
from sfu.tokens import Claims, TokenIssuer, new_subject
from web.study.access import Viewer

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def claims(role: Role, lesson: str, classroom: str = "observer", name: str = "observer", sub: str = "") -> Claims:
    return Claims(lesson=lesson, classroom=classroom, name=name, role=role, exp=int(time.time()) + 60, sub=sub)


def recording(lesson: str) -> Recording:
    from datetime import datetime

    return Recording(id=f"{lesson}-20261201-090000", lesson_id=lesson, started_at=datetime(2026, 12, 1, 1),
                     directory=f"{lesson}-20261201-090000")


def test_an_observer_token_for_one_lesson_reaches_that_lesson_only() -> None:
    link = Viewer(claims(Role.OBSERVER, "eng-3a"))
    assert link.may_watch("eng-3a") and link.may_read_study("eng-3a") and link.may_write_study_on("eng-3a")
    assert not link.may_watch("music-4") and not link.may_read_study("music-4")
    assert not link.may_write_study_on("music-4")
    assert not link.sees_all and not link.may_patrol, "a lesson's observer link does not open the patrol wall"
    assert may_watch(link.claims, recording("eng-3a")) and not may_watch(link.claims, recording("music-4"))


def test_inspectors_with_lesson_star_and_admins_reach_every_lesson() -> None:
    for who in (Viewer(claims(Role.OBSERVER, "*", name="张老师")), Viewer(claims(Role.ADMIN, ""))):
        assert who.sees_all and who.may_patrol
        for lesson in ("eng-3a", "music-4"):
            assert who.may_watch(lesson) and who.may_read_study(lesson) and who.may_write_study_on(lesson)
            assert may_watch(who.claims, recording(lesson))


def test_classroom_tokens_keep_their_own_lesson() -> None:
    master = Viewer(claims(Role.MASTER, "eng-3a", classroom="m1", name="m1"))
    rural = Viewer(claims(Role.RURAL, "eng-3a", classroom="r1", name="r1"))
    assert master.may_read_study("eng-3a") and not master.may_read_study("music-4")
    assert rural.may_watch("eng-3a") and not rural.may_watch("music-4") and not rural.may_read_study("eng-3a")
    assert not master.may_write_study_on("eng-3a") and not master.may_patrol


def test_tokens_minted_alike_are_different_authors_when_they_carry_a_sub() -> None:
    issuer = TokenIssuer(SECRET)
    a = issuer.verify(issuer.mint(lesson="eng-3a", classroom="observer", name="observer", role="observer",
                                  sub=new_subject()))
    b = issuer.verify(issuer.mint(lesson="eng-3a", classroom="observer", name="observer", role="observer",
                                  sub=new_subject()))
    assert a.sub and b.sub and a.sub != b.sub
    assert Viewer(a).author.key != Viewer(b).author.key
    assert Viewer(a).author.name == Viewer(b).author.name == "observer"
    # tokens other systems mint without `sub` still verify, and keep the old identity
    legacy = issuer.verify(issuer.mint(lesson="*", classroom="insp", name="王老师", role="observer", sub=""))
    assert legacy.sub == "" and Viewer(legacy).author.key == "observer:insp:王老师"


def test_twinclass_token_gives_each_observer_token_its_own_author_unless_told(tmp_path: Path) -> None:
    def mint(*extra: str) -> Claims:
        out = subprocess.check_output([TWINCLASS, "token", "--data-dir", str(tmp_path), "--role", "observer",
                                       "--lesson", "*", "--name", "张老师", *extra], text=True).strip()
        issuer = TokenIssuer((tmp_path / "token-secret").read_text().strip())
        return issuer.verify(out)

    first, second = mint(), mint()
    assert first.sub and second.sub and first.sub != second.sub
    assert mint("--sub", "zhang-2026").sub == mint("--sub", "zhang-2026").sub == "zhang-2026"
