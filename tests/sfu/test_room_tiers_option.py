"""`serve --no-tiers` reaches every subscriber connection: full streams whatever the link (benches)."""

from __future__ import annotations

import pytest

from sfu.lessons import Classroom, Lesson, Role
from sfu.room import Participant, RoomDirectory


def lesson() -> Lesson:
    return Lesson(id="t", title="t", subject="英语", grade="3", master=Classroom("master", "M", "S"),
                  rurals=[Classroom("rural-1", "R1", "S")])


@pytest.mark.parametrize(("tiers", "adaptive"), [(True, True), (False, False)])
async def test_the_tiers_option_decides_whether_a_subscriber_adapts(tiers: bool, adaptive: bool) -> None:
    rooms = RoomDirectory([], tiers=tiers)
    room = rooms.get_or_create(lesson())
    await room.join(Participant(sid="s1", classroom="rural-1", name="R1", role=Role.RURAL))
    await room.subscribe("s1")
    subscriber = room.participants["s1"].subscriber
    assert subscriber is not None and subscriber.adaptive is adaptive
    await rooms.close()
