"""Where a lesson's classrooms are (school, county) and who teaches it.

Lessons carry classroom names and schools; counties and teacher names come from:

1. the lesson's ``extra`` (lessons created by hand or by another system):
   ``county`` (every classroom), ``counties`` ({classroom id: county}), ``teacher_name``;
2. the timetable that created the lesson (``extra.timetable`` and ``extra.teacher``, as
   `scheduler.apply` writes them): its directory of classrooms, schools and teachers, read from
   ``<data dir>/timetables/<id>.json`` (cached until the file changes);
3. otherwise the master classroom's name stands for the teacher and the county is unknown ("").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfu.lessons import Lesson

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class Place:
    classroom: str
    name: str
    role: str  # "master" | "rural"
    school: str
    county: str

    def to_json(self) -> dict[str, str]:
        return dict(self.__dict__)


class Directory:
    def __init__(self, data_dir: Path) -> None:
        self.timetables = data_dir / "timetables"
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    def _timetable(self, timetable_id: object) -> dict[str, Any]:
        if not isinstance(timetable_id, str) or not _ID_RE.match(timetable_id):
            return {}
        path = self.timetables / f"{timetable_id}.json"
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return {}
        cached = self._cache.get(timetable_id)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        try:
            directory = dict(json.loads(path.read_text(encoding="utf-8")).get("directory") or {})
        except (OSError, ValueError, AttributeError):
            directory = {}
        self._cache[timetable_id] = (mtime, directory)
        return directory

    def places(self, lesson: Lesson) -> list[Place]:
        extra = lesson.extra or {}
        tt = self._timetable(extra.get("timetable"))
        counties = extra.get("counties") if isinstance(extra.get("counties"), dict) else {}
        teacher = (tt.get("teachers") or {}).get(str(extra.get("teacher", ""))) or {}
        out = []
        for room in lesson.classrooms:
            role = "master" if room.id == lesson.master.id else "rural"
            listed = (tt.get("classrooms") or {}).get(room.id) or {}
            county = (counties or {}).get(room.id) or extra.get("county") or listed.get("county")
            if not county and role == "master":
                county = teacher.get("county")
            school = room.school or listed.get("school_name") or (teacher.get("school_name") if role == "master"
                                                                  else "")
            out.append(Place(room.id, room.name, role, str(school or ""), str(county or "")))
        return out

    def teacher(self, lesson: Lesson) -> str:
        extra = lesson.extra or {}
        if isinstance(extra.get("teacher_name"), str) and extra["teacher_name"]:
            return str(extra["teacher_name"])
        tt = self._timetable(extra.get("timetable"))
        listed = (tt.get("teachers") or {}).get(str(extra.get("teacher", ""))) or {}
        return str(listed.get("name") or lesson.master.name)

    def describe(self, lesson: Lesson) -> dict[str, Any]:
        """What the library, the report and the patrol wall show about a lesson."""
        places = self.places(lesson)
        master = places[0]
        return {
            "teacher": self.teacher(lesson),
            "master_school": master.school,
            "schools": sorted({p.school for p in places if p.school}),
            "counties": sorted({p.county for p in places if p.county}),
            "classrooms": [p.to_json() for p in places],
        }
