"""The login's role rule and its server-side sessions (twinclass/login_roles.py, web_sessions.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from sfu.lessons import Classroom, Lesson, Role
from sfu.scope import covers, is_full_admin, sees_all
from sfu.store import make_engine
from twinclass.login_roles import NoRole, RoleRule
from twinclass.web_sessions import LoginAttempt, SessionStore, sessions_table

LESSON = Lesson(id="l1", title="t", subject="s", grade="3", master=Classroom("m1", "M", "实验小学"),
                rurals=[Classroom("r1", "R", "山口教学点")])


def test_each_role_value_maps_to_its_claims_and_scope() -> None:
    rule = RoleRule()
    bureau = rule.identity({"sub": "u1", "name": "王", "roles": ["bureau-admin", "teacher"]}, exp=10).claims
    assert bureau.role == Role.ADMIN and is_full_admin(bureau) and bureau.sub == "oidc:u1"
    school = rule.identity({"sub": "u2", "roles": "school-admin", "school": "山口教学点"}, exp=10).claims
    assert school.role == Role.ADMIN and not is_full_admin(school) and not sees_all(school)
    assert covers(school, LESSON)  # its rural classroom is of that school
    other = rule.identity({"sub": "u3", "roles": "school-admin", "school": "第二小学"}, exp=10).claims
    assert not covers(other, LESSON)
    teacher = rule.identity({"sub": "u4", "roles": "teacher", "classroom": "m1"}, exp=10).claims
    assert teacher.role == Role.MASTER and covers(teacher, LESSON)
    assert not covers(rule.identity({"sub": "u5", "roles": "teacher", "classroom": "r1"}, exp=10).claims, LESSON)
    observer = rule.identity({"sub": "u6", "groups": "observer, researcher"}, exp=10).claims  # groups: fallback
    assert observer.role == Role.OBSERVER and sees_all(observer)
    custom = RoleRule(claim="twinclass_roles").identity({"sub": "u7", "twinclass_roles": ["researcher"]}, exp=10)
    assert custom.roles == ["researcher"]


@pytest.mark.parametrize("claims, reason", [
    ({"sub": "x", "roles": ["student"]}, "no Twinclass role"),
    ({"sub": "x"}, "values: none"),
    ({"sub": "x", "roles": ["school-admin"]}, "without a 'school' claim"),
    ({"sub": "x", "roles": ["teacher"]}, "without a 'classroom' claim"),
    ({"roles": ["bureau-admin"]}, "no subject"),
])
def test_no_role_is_refused_with_a_reason(claims: dict[str, object], reason: str) -> None:
    with pytest.raises(NoRole, match=reason):
        RoleRule().identity(claims, exp=10)


def test_sessions_expire_absolutely_and_when_idle_and_logins_are_taken_once(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store = SessionStore(engine, absolute_s=100, idle_s=30)
    claims = RoleRule().identity({"sub": "u", "roles": ["observer"]}, exp=0).claims
    sid, expires = store.create(claims, ["observer"], "id-token", now=1000)
    assert expires == 1100
    got = store.get(sid, now=1020)
    assert got is not None and got.claims.role == Role.OBSERVER and got.claims.exp == 1100
    assert store.get(sid, now=1049) is not None  # used at 1020: idle until 1050
    assert store.get(sid, now=1080) is None  # 31 s unused: idle expiry, and deleted
    assert store.get(sid, now=1091) is None
    sid2, _ = store.create(claims, ["observer"], "", now=1000)
    for t in range(1020, 1100, 20):
        assert store.get(sid2, now=t) is not None
    assert store.get(sid2, now=1100) is None  # absolute expiry, however busy
    assert store.get("forged", now=1000) is None
    store.create(claims, ["observer"], "", now=1000)  # nobody comes back to this one
    store.create(claims, ["observer"], "", now=2000)  # a new login sweeps it away
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(sessions_table)).scalar() == 1
    store.begin_login("state-1", "browser-1", LoginAttempt("n", "v", "/x"), now=1000)
    assert store.take_login("state-1", "browser-2", now=1001) is None  # another browser: refused, and spent
    assert store.take_login("state-1", "browser-1", now=1002) is None
    store.begin_login("state-2", "browser-1", LoginAttempt("n", "v", "/x"), now=1000)
    assert store.take_login("state-2", "browser-1", now=1001) == LoginAttempt("n", "v", "/x")
    assert store.take_login("state-2", "browser-1", now=1002) is None  # once
    store.begin_login("state-3", "browser-1", LoginAttempt("n", "v", "/x"), now=1000)
    assert store.take_login("state-3", "browser-1", now=1000 + 601) is None  # 10 minutes to come back
