"""Which server node hosts which live lesson, and who is connected there.

A lesson's media must meet on one node (the forwarding plane is per process). With one node
the `LocalRegistry` answers "here" for everything. With several nodes behind one address,
`RedisRegistry` lets the first node a lesson's classroom reaches claim it (a key with a TTL
that the owner keeps refreshing); a classroom reaching another node is told to go to the
owner, and every node can show who is connected to any lesson.

Nodes also register their load (`NodeLoad`: CPU, subscribers, bitrate out, capacity) under a key
that expires unless refreshed, so a node that dies drops out within `LOAD_TTL_S`. A listening
classroom or an observer is placed by `choose_node`: the node it reached while that has room,
else the least-loaded live node with room; an edge node then takes the lesson's media from its
origin over one relay link (`sfu.cascade`).

The cluster's members (every node seen in the last `MEMBER_TTL_S`, live or not) are a sorted set
beside the load keys. A page served by one member may open socket.io to any other (its Origin is
allowed there, and its Content-Security-Policy lets it connect): a viewer's page whose node died
goes on with another node, the page itself still from the dead node's origin.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

logger = logging.getLogger(__name__)

LOAD_TTL_S = 3.0  # a node's load report expires this long after its last refresh (it died)
LOAD_REFRESH_S = 1.0
MEMBER_TTL_S = 24 * 3600.0  # a node not seen for this long is no longer a member (its pages' Origin is refused)
DEFAULT_CAPACITY = 400  # subscribers a node takes before listeners go elsewhere


@dataclass
class NodeLoad:
    """What a node reports of itself, once a second."""

    url: str
    cpu: float = 0.0  # this process's CPU use, 1.0 = one core
    subscribers: int = 0  # receiving connections (relay links to edges included)
    bitrate_out: float = 0.0  # bits per second sent on them
    capacity: int = DEFAULT_CAPACITY  # subscribers it takes at most

    @property
    def has_room(self) -> bool:
        return self.subscribers < self.capacity

    @property
    def load(self) -> float:
        return self.subscribers / max(1, self.capacity)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeLoad:
        return cls(url=str(data["url"]), cpu=float(data.get("cpu", 0.0)), subscribers=int(data.get("subscribers", 0)),
                   bitrate_out=float(data.get("bitrate_out", 0.0)),
                   capacity=int(data.get("capacity", DEFAULT_CAPACITY)))


def choose_node(nodes: list[NodeLoad], here: str) -> str:
    """Where a viewer (listening classroom, observer) goes: here while here has room, else the
    least-loaded node with room (by subscribers against capacity, then CPU); here if none has."""
    mine = next((n for n in nodes if n.url == here), None)
    if mine is None or mine.has_room:
        return here
    roomy = [n for n in nodes if n.has_room]
    if not roomy:
        return here
    return min(roomy, key=lambda n: (n.load, n.cpu, n.url)).url


LoadSampler = Callable[[], NodeLoad]


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

    async def nodes(self) -> list[NodeLoad]:
        """The live nodes with their last load report (this one included once it has reported)."""
        ...

    def report_load(self, sample: LoadSampler) -> None:
        """Report this node's load every LOAD_REFRESH_S from now on."""
        ...

    def members(self) -> tuple[str, ...]:
        """The URLs of the cluster's nodes seen lately, this one included (no I/O: the last reading)."""
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

    async def nodes(self) -> list[NodeLoad]:
        return []

    def report_load(self, sample: LoadSampler) -> None:
        return None

    def members(self) -> tuple[str, ...]:
        return ()

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
        self._reporter: asyncio.Task[None] | None = None
        self._members: tuple[str, ...] = ()

    def _node_key(self, url: str) -> str:
        return f"{self._prefix}:node:{url}"

    def _members_key(self) -> str:
        return f"{self._prefix}:members"

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

    def report_load(self, sample: LoadSampler) -> None:
        if self._reporter is None:
            self._reporter = asyncio.ensure_future(self._report(sample))

    async def _report(self, sample: LoadSampler) -> None:
        while True:
            try:
                load = sample()
                await self._redis.set(self._node_key(self.node_url), json.dumps(asdict(load)),
                                      px=int(LOAD_TTL_S * 1000))
                await self._read_members()
            except Exception:  # Redis away for a moment: the key expires, other nodes stop placing here
                logger.warning("could not report this node's load")
            await asyncio.sleep(LOAD_REFRESH_S)

    async def _read_members(self) -> None:
        now = time.time()
        key = self._members_key()
        await self._redis.zadd(key, {self.node_url: now})
        await self._redis.zremrangebyscore(key, "-inf", now - MEMBER_TTL_S)
        self._members = tuple(sorted(str(url) for url in await self._redis.zrange(key, 0, -1)))

    def members(self) -> tuple[str, ...]:
        return self._members

    async def nodes(self) -> list[NodeLoad]:
        keys = [k async for k in self._redis.scan_iter(match=self._node_key("*"), count=200)]
        if not keys:
            return []
        out = []
        for raw in await self._redis.mget(keys):
            if raw:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    out.append(NodeLoad.from_json(json.loads(raw)))
        return sorted(out, key=lambda n: n.url)

    async def close(self) -> None:
        for task in (self._refresher, self._reporter):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        with contextlib.suppress(Exception):
            await self._redis.delete(self._node_key(self.node_url))
        for lesson_id in list(self._owned):
            with contextlib.suppress(Exception):
                await self.release(lesson_id)
        await self._redis.aclose()
