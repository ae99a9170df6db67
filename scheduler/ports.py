"""The small interface through which the scheduler creates lessons; the composition root wires
it to the SFU's lesson store and token issuer (the scheduler never imports `sfu`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

# Renders a timetable view (classroom, teacher or county JSON) as an HTML page. The page templates
# live in the web package; the composition root passes `web.timetable.render` in.
HtmlRenderer = Callable[[dict[str, Any]], str]


class LessonExists(ValueError):
    """`create_lesson`: a lesson with this id is already stored; `existing` is its JSON (None if unknown)."""

    def __init__(self, lesson_id: str, existing: dict[str, Any] | None = None) -> None:
        super().__init__(f"lesson {lesson_id!r} already exists")
        self.lesson_id = lesson_id
        self.existing = existing


class LessonPort(Protocol):
    def create_lesson(self, lesson: dict[str, Any]) -> str:
        """Create a lesson from `sfu.lessons.Lesson.from_json` JSON; return its id.

        Raises LessonExists when the id is taken, ValueError when the lesson cannot be created.
        """
        ...

    def update_lesson(self, lesson: dict[str, Any]) -> None:
        """Replace a stored lesson's definition (classrooms, times) with this JSON, same id.

        Raises ValueError when the store cannot update it.
        """
        ...

    def mint_token(self, *, lesson: str, classroom: str, name: str, role: str, ttl_s: float) -> str:
        """A join token for one classroom of a lesson."""
        ...
