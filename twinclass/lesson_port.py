"""The scheduler's LessonPort, implemented on the SFU's lesson store and token issuer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sfu.lessons import Lesson
from sfu.store import LessonStore, make_engine, sqlite_url
from sfu.tokens import TokenIssuer, load_or_create_secret


class StoreLessonPort:
    """Creates lessons in the lesson store (raises ValueError, e.g. when the id exists) and mints tokens."""

    def __init__(self, store: LessonStore, tokens: TokenIssuer) -> None:
        self._store = store
        self._tokens = tokens

    def create_lesson(self, lesson: dict[str, Any]) -> str:
        return self._store.create(Lesson.from_json(lesson)).id

    def mint_token(self, *, lesson: str, classroom: str, name: str, role: str, ttl_s: float) -> str:
        return self._tokens.mint(lesson=lesson, classroom=classroom, name=name, role=role, ttl_s=ttl_s)


def lesson_port_for(data_dir: Path) -> StoreLessonPort:
    """The port over a data directory's SQLite store and secret (what `twinclass serve` uses)."""
    store = LessonStore(make_engine(sqlite_url(data_dir)))
    return StoreLessonPort(store, TokenIssuer(load_or_create_secret(data_dir)))
