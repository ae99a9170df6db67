"""Lessons as the console makes and shows them: classrooms picked from the directory, and the
live state of each lesson (who is connected now, whether it is being recorded)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sfu.lessons import BROADCAST, KINDS, TWINNING, Classroom, Lesson, LessonError
from sfu.room import RoomDirectory
from twinclass.http_input import InputError, local_naive
from web.admin.directory import Place

EDITABLE = ("title", "kind", "subject", "grade", "master", "rurals", "planned_start", "planned_end", "record")


class Recordings(Protocol):
    """What the console reads of the recorder: the lessons being recorded now."""

    live: dict[str, Any]


@dataclass
class LessonForm:
    """A create/edit body, checked field by field (InputError names the field)."""

    values: dict[str, Any]

    def text(self, key: str, *, required: bool = False) -> str | None:
        if key not in self.values:
            if required:
                raise InputError(key, "is required")
            return None
        value = self.values[key]
        if not isinstance(value, str) or (required and not value.strip()):
            raise InputError(key, "must be a non-empty string" if required else "must be a string")
        return value.strip()

    def kind(self, default: str) -> str:
        value = self.values.get("kind", default)
        if value not in KINDS:
            raise InputError("kind", f"must be one of {', '.join(KINDS)}")
        return str(value)

    def when(self, key: str) -> datetime | None:
        value = self.values.get(key)
        return None if value in (None, "") else local_naive(value, key)


def classroom_of(place: Place) -> Classroom:
    return Classroom(place.id, place.name, place.school_name)


Picked = tuple[Classroom, list[Classroom], dict[str, str]]  # master, rurals, {classroom: county}


def pick_classrooms(body: dict[str, Any], places: dict[str, Place], kind: str = TWINNING) -> Picked:
    """The master and rural classrooms a body names by directory id, and their counties (a
    broadcast may name no rural classroom: its listening classrooms join by their own links)."""
    master_id = body.get("master")
    if not isinstance(master_id, str) or master_id not in places:
        raise InputError("master", f"{master_id!r} is not a classroom of the directory")
    if places[master_id].role != "master":
        raise InputError("master", f"{master_id!r} is in a rural school: choose a master classroom")
    rural_ids = body.get("rurals")
    if not isinstance(rural_ids, list) or (not rural_ids and kind != BROADCAST):
        raise InputError("rurals", "choose one or more rural classrooms")
    for i, rid in enumerate(rural_ids):
        if not isinstance(rid, str) or rid not in places:
            raise InputError(f"rurals[{i}]", f"{rid!r} is not a classroom of the directory")
        if places[rid].role != "rural":
            raise InputError(f"rurals[{i}]", f"{rid!r} is a master classroom")
    chosen = [master_id, *rural_ids]
    counties = {cid: places[cid].county for cid in chosen if places[cid].county}
    return classroom_of(places[master_id]), [classroom_of(places[r]) for r in rural_ids], counties


def new_lesson(body: Any, places: dict[str, Place], lesson_id: str) -> Lesson:
    if not isinstance(body, dict):
        raise InputError("body", "must be an object")
    unknown = sorted(set(body) - {"id", *EDITABLE})
    if unknown:
        raise InputError(unknown[0], f"unknown field (a lesson has {', '.join(('id', *EDITABLE))})")
    form = LessonForm(body)
    kind = form.kind(TWINNING)
    master, rurals, counties = pick_classrooms(body, places, kind)
    record = body.get("record", True)
    if not isinstance(record, bool):
        raise InputError("record", "must be true or false")
    lesson = Lesson(id=form.text("id") or lesson_id, title=form.text("title", required=True) or "",
                    subject=form.text("subject") or "", grade=form.text("grade") or "", master=master, rurals=rurals,
                    planned_start=form.when("planned_start"), planned_end=form.when("planned_end"), record=record,
                    extra={"counties": counties, "created_by": "admin console"}, kind=kind)
    _checked(lesson)
    return lesson


def edited_lesson(lesson: Lesson, body: Any, places: dict[str, Place], *, live: bool) -> Lesson:
    """The lesson with a PATCH body's fields changed; its classrooms only while it is not live."""
    if not isinstance(body, dict) or not body:
        raise InputError("body", f"an object with any of {', '.join(EDITABLE)}")
    unknown = sorted(set(body) - set(EDITABLE))
    if unknown:
        raise InputError(unknown[0], f"cannot be changed (only {', '.join(EDITABLE)})")
    form = LessonForm(body)
    changed = Lesson(**{**lesson.__dict__, "rurals": list(lesson.rurals), "extra": dict(lesson.extra)})
    for key in ("title", "subject", "grade"):
        value = form.text(key, required=key == "title" and key in body)
        if value is not None:
            setattr(changed, key, value)
    for key in ("planned_start", "planned_end"):
        if key in body:
            at = form.when(key)
            if at != getattr(lesson, key):
                changed.extra.pop("ended_at", None)  # new times: an ended lesson may be joined again
            setattr(changed, key, at)
    if "record" in body:
        if not isinstance(body["record"], bool):
            raise InputError("record", "must be true or false")
        changed.record = body["record"]
    if "kind" in body:
        if live and body["kind"] != lesson.kind:
            raise InputError("kind", "the lesson is live: its kind changes after it ends")
        changed.kind = form.kind(lesson.kind)
    if "master" in body or "rurals" in body or "kind" in body:
        if live and ("master" in body or "rurals" in body):
            raise InputError("rurals" if "rurals" in body else "master",
                             "the lesson is live: its classrooms change after it ends")
        merged = {"master": lesson.master.id, "rurals": [r.id for r in lesson.rurals], **body}
        changed.master, changed.rurals, counties = pick_classrooms(merged, places, changed.kind)
        changed.extra["counties"] = counties
    _checked(changed)
    return changed


def changes(before: Lesson, after: Lesson) -> dict[str, Any]:
    """What an edit changed, field by field ({field: {from, to}}; classrooms by id), for the audit log."""
    def view(lesson: Lesson) -> dict[str, Any]:
        data = lesson.to_json()
        data["master"] = lesson.master.id
        data["rurals"] = [r.id for r in lesson.rurals]
        return {k: data[k] for k in EDITABLE}

    old, new = view(before), view(after)
    return {k: {"from": old[k], "to": new[k]} for k in EDITABLE if old[k] != new[k]}


def ended_lesson(lesson: Lesson, now: datetime) -> Lesson:
    """The lesson marked ended now (joins are refused); a planned end still to come becomes now."""
    changed = Lesson(**{**lesson.__dict__, "rurals": list(lesson.rurals), "extra": dict(lesson.extra)})
    changed.extra["ended_at"] = now.isoformat(timespec="seconds")
    start, end = lesson.planned_start, lesson.planned_end
    if start is not None and start < now and (end is None or end > now):
        minute = now.replace(second=0, microsecond=0)  # as the console's form shows and sends it back
        changed.planned_end = minute if minute > start else now
    return changed


def _checked(lesson: Lesson) -> None:
    try:
        lesson.validate()
    except LessonError as exc:
        field, _, reason = str(exc).partition(": ")
        raise InputError(field if reason else "lesson", reason or str(exc)) from None


def live_state(lesson: Lesson, rooms: RoomDirectory, recordings: Recordings | None,
               elsewhere: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A lesson's JSON with `connected` (classroom ids and names online now), `live` and `recording`.
    `elsewhere`: the classrooms another node reports for a lesson it hosts (cluster presence); the
    recording flag is then that node's to know (null)."""
    data = lesson.to_json()
    room = rooms.get(lesson.id)
    local = room is not None or elsewhere is None
    connected = [p.to_json() for p in room.connected_classrooms()] if room is not None else (elsewhere or [])
    data["connected"] = connected
    data["live"] = bool(connected)
    data["listening"] = len(room.listeners()) if room is not None else 0  # a broadcast's listening classrooms
    data["ended_at"] = lesson.extra.get("ended_at")
    data["recording"] = bool(recordings is not None and lesson.id in recordings.live) if local else None
    return data
