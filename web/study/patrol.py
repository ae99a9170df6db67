"""The patrol wall (巡课): every live lesson on this node, and every lesson the timetable says
should be live now but is not.

A lesson is *live* when at least one of its classrooms is connected (a room the recorder opened
at the planned start with nobody in it is not). A lesson is *due* when
``planned_start <= now < planned_end`` (naive planned times are the server's local time, as
the timetable writes them). Due and not live: a warning tile. The due lessons are selected in
SQL by their planned times, off the event loop.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from sfu.lessons import Lesson
from sfu.room import LessonRoom, RoomDirectory
from sfu.store import LessonStore
from web.study.directory import Directory


def _local(dt: datetime) -> datetime:
    """An aware local time (naive values are taken as local already)."""
    return dt.astimezone()


def is_due(lesson: Lesson, now: datetime) -> bool:
    if lesson.planned_start is None or lesson.planned_end is None:
        return False
    return _local(lesson.planned_start) <= now < _local(lesson.planned_end)


def live_tile(room: LessonRoom, directory: Directory) -> dict[str, Any]:
    lesson = room.lesson
    connected = {p.classroom: p for p in room.connected_classrooms()}
    places = {p.classroom: p for p in directory.places(lesson)}
    classrooms = []
    for c in lesson.classrooms:
        p = connected.get(c.id)
        place = places.get(c.id)
        classrooms.append({
            "id": c.id, "name": c.name, "school": c.school, "county": place.county if place else "",
            "role": "master" if c.id == lesson.master.id else "rural",
            "connected": p is not None, "publishing": sorted(p.published) if p else [],
        })
    hands = room.hands_json()
    return {
        "lesson": lesson.id, "title": lesson.title, "subject": lesson.subject, "grade": lesson.grade,
        "teacher": directory.teacher(lesson),
        "started_at": datetime.fromtimestamp(room.started_at).astimezone().isoformat(),
        "planned_start": lesson.planned_start.isoformat() if lesson.planned_start else None,
        "planned_end": lesson.planned_end.isoformat() if lesson.planned_end else None,
        "classrooms": classrooms,
        "connected": sum(c["connected"] for c in classrooms),
        "expected": len(classrooms),
        "floor": room.floor,
        "hands": len(hands),
        "courseware": room.courseware,
    }


def missing_tile(lesson: Lesson, now: datetime, directory: Directory) -> dict[str, Any]:
    assert lesson.planned_start is not None
    late = (now - _local(lesson.planned_start)).total_seconds() / 60
    places = directory.places(lesson)
    return {
        "lesson": lesson.id, "title": lesson.title, "subject": lesson.subject, "grade": lesson.grade,
        "teacher": directory.teacher(lesson),
        "planned_start": lesson.planned_start.isoformat(),
        "planned_end": lesson.planned_end.isoformat() if lesson.planned_end else None,
        "minutes_late": round(late, 1),
        "classrooms": [{"id": p.classroom, "name": p.name, "school": p.school, "county": p.county,
                        "role": p.role, "connected": False} for p in places],
    }


def missing_tiles(store: LessonStore, directory: Directory, now: datetime, live: set[str]) -> list[dict[str, Any]]:
    """Tiles for the lessons due now and not live (one SQL query on the planned times; blocking)."""
    return [missing_tile(lesson, now, directory) for lesson in store.planned_at(now)
            if lesson.id not in live and is_due(lesson, now)]


async def patrol(store: LessonStore, rooms: RoomDirectory, directory: Directory,
                 now: datetime | None = None, county: str = "") -> dict[str, Any]:
    now = (now or datetime.now()).astimezone()
    live = []
    live_ids = set()
    for lesson_id, room in sorted(rooms.rooms.items()):
        if not room.connected_classrooms():
            continue
        live_ids.add(lesson_id)
        live.append(live_tile(room, directory))
    missing = await asyncio.to_thread(missing_tiles, store, directory, now, live_ids)
    if county:
        live = [t for t in live if any(c["county"] == county for c in t["classrooms"])]
        missing = [t for t in missing if any(c["county"] == county for c in t["classrooms"])]
    missing.sort(key=lambda t: t["planned_start"])
    return {"now": now.isoformat(), "live": live, "missing": missing}
