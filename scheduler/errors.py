"""Typed errors of the scheduler: bad input names the file, row and field."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InputIssue:
    """One problem in the input: where it is (file, row, field) and what is wrong."""

    file: str
    row: str  # a CSV line number ("3") or a JSON path ("classrooms[2]")
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: row {self.row}, field '{self.field}': {self.message}"

    def to_json(self) -> dict[str, str]:
        return {"file": self.file, "row": self.row, "field": self.field, "message": self.message}


class SchedulerError(Exception):
    """Base class for scheduler errors shown to the user."""


class InputError(SchedulerError):
    """The input cannot be used; `issues` lists every problem found (nothing is solved)."""

    def __init__(self, issues: list[InputIssue]) -> None:
        self.issues = issues
        lines = "\n".join(str(i) for i in issues)
        super().__init__(f"{len(issues)} problem(s) in the input:\n{lines}")


class TimetableError(SchedulerError):
    """A timetable file that cannot be read (not a violation: those are reported by `check`)."""
