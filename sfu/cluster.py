"""Which server node hosts which live lesson, and who is connected there.

A lesson's media must meet on one node (the forwarding plane is per process). With one node
the `LocalRegistry` answers "here" for everything. With several nodes behind one address,
`RedisRegistry` lets the first node a lesson's classroom reaches claim it (a key with a TTL
that the owner keeps refreshing); a classroom reaching another node is told to go to the
owner, and every node can show who is connected to any lesson.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, Protocol

logger = logging.getLogger(__name__)


class NodeRegistry(Protocol):
    node_url: str

    async def claim(self, lesson_id: str) -> str:
        """Claim the lesson for this node if nobody holds it; returns the owner's URL."""
        ...

    async def release(self, lesson_id: str) -> None: ...

    async def publish_presence(self, lesson_id: str, classrooms: list[dict[str, Any]]) -> None: ...

    async def presence(self, lesson_id: str) -> list[dict[str, Any]] | None:
        """Classrooms connected to the lesson on whichever node hosts it (None: not live)."""
        ...

    async def close(self) -> None: ...


class LocalRegistry:
    """A single node: every lesson is here."""

    def __init__(self, node_url: str) -> None:
        self.node_url = node_url

    async def claim(self, lesson_id: str) -> str:
        return self.node_url

    async def release(self, lesson_id: str) -> None:
        return None

    async def publish_presence(self, lesson_id: str, classrooms: list[dict[str, Any]]) -> None:
        return None

    async def presence(self, lesson_id: str) -> list[dict[str, Any]] | None:
        return None

    async def close(self) -> None:
        return None


class RedisRegistry:
    """Lesson ownership and presence in Redis, shared by every node."""

    TTL_S = 10

    def __init__(self, redis_url: str, node_url: str, prefix: str = "twinclass") -> None:
        import redis.asyncio as aioredis

        self.node_url = node_url
        self._redis = aioredis.from_url(redis_url, decode_responses=True)
        self._prefix = prefix
        self._owned: set[str] = set()
        self._refresher: asyncio.Task[None] | None = None

    def _owner_key(self, lesson_id: str) -> str:
        return f"{self._prefix}:lesson:{lesson_id}:node"

    def _presence_key(self, lesson_id: str) -> str:
        return f"{self._prefix}:lesson:{lesson_id}:presence"

    async def claim(self, lesson_id: str) -> str:
        key = self._owner_key(lesson_id)
        if await self._redis.set(key, self.node_url, nx=True, ex=self.TTL_S):
            owner = self.node_url
        else:
            owner = str(await self._redis.get(key) or self.node_url)
            if owner == self.node_url:
                await self._redis.expire(key, self.TTL_S)
        if owner == self.node_url:
            self._owned.add(lesson_id)
            if self._refresher is None:
                self._refresher = asyncio.ensure_future(self._refresh())
        return str(owner)

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.TTL_S / 3)
            for lesson_id in list(self._owned):
                try:
                    await self._redis.set(self._owner_key(lesson_id), self.node_url, ex=self.TTL_S)
                    await self._redis.expire(self._presence_key(lesson_id), self.TTL_S)
                except Exception:  # Redis away for a moment: keep serving, retry next round
                    logger.warning("could not refresh the claim on %s", lesson_id)

    async def release(self, lesson_id: str) -> None:
        self._owned.discard(lesson_id)
        key = self._owner_key(lesson_id)
        if await self._redis.get(key) == self.node_url:
            await self._redis.delete(key, self._presence_key(lesson_id))

    async def publish_presence(self, lesson_id: str, classrooms: list[dict[str, Any]]) -> None:
        await self._redis.set(self._presence_key(lesson_id), json.dumps(classrooms, ensure_ascii=False),
                              ex=self.TTL_S)

    async def presence(self, lesson_id: str) -> list[dict[str, Any]] | None:
        raw = await self._redis.get(self._presence_key(lesson_id))
        return list(json.loads(raw)) if raw else None

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        for lesson_id in list(self._owned):
            with contextlib.suppress(Exception):
                await self.release(lesson_id)
        await self._redis.aclose()
