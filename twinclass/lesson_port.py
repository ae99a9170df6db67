"""The scheduler's LessonPort, implemented on the SFU's lesson store and token issuer."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from scheduler.ports import LessonExists
from sfu.lessons import Lesson
from sfu.lessons import LessonExists as StoredLessonExists
from sfu.store import LessonStore, make_engine
from sfu.tokens import TokenIssuer
from twinclass.storage import database_url, token_secret


class StoreLessonPort:
    """Creates and updates lessons in the lesson store and mints tokens."""

    def __init__(self, store: LessonStore, tokens: TokenIssuer) -> None:
        self.store = store
        self.tokens = tokens

    def create_lesson(self, lesson: dict[str, Any]) -> str:
        try:
            return self.store.create(Lesson.from_json(lesson)).id
        except StoredLessonExists as exc:
            existing = self.store.get(exc.lesson_id)
            raise LessonExists(exc.lesson_id, existing.to_json() if existing else None) from exc

    def update_lesson(self, lesson: dict[str, Any]) -> None:
        self.store.update(Lesson.from_json(lesson))

    def mint_token(self, *, lesson: str, classroom: str, name: str, role: str, ttl_s: float) -> str:
        return self.tokens.mint(lesson=lesson, classroom=classroom, name=name, role=role, ttl_s=ttl_s)


def lesson_port_for(data_dir: Path, url: str | None = None, secret: str | None = None) -> StoreLessonPort:
    """The port over the store and secret `twinclass serve` uses with the same data dir, database
    URL and secret (None: the data dir's SQLite store and secret file, as for `serve`)."""
    store = LessonStore(make_engine(database_url(data_dir, url)))
    return StoreLessonPort(store, TokenIssuer(token_secret(data_dir, secret)))


def lesson_port_from_args(args: argparse.Namespace) -> StoreLessonPort:
    """`schedule apply`'s port, from the options `twinclass.storage.add_store_options` added."""
    return lesson_port_for(args.data_dir, args.database_url, args.secret)
