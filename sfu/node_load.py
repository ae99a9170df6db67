"""This node's load, as it reports it to the cluster (`sfu.cluster.NodeLoad`)."""

from __future__ import annotations

import time
from dataclasses import replace

from sfu.cluster import DEFAULT_CAPACITY, NodeLoad
from sfu.room import RoomDirectory


class NodeLoadSampler:
    """CPU, subscribers and bitrate out since the last sample (call it about once a second)."""

    def __init__(self, rooms: RoomDirectory, url: str, capacity: int = DEFAULT_CAPACITY) -> None:
        self.rooms = rooms
        self.url = url
        self.capacity = capacity
        self._at = time.monotonic()
        self._cpu_at = time.process_time()
        self._octets = self._octets_sent()
        self.last = NodeLoad(url=url, capacity=capacity)

    def _octets_sent(self) -> int:
        total = 0
        for room in tuple(self.rooms.rooms.values()):
            for p in tuple(room.participants.values()):
                if p.subscriber is not None:
                    total += sum(s.port.octets_sent for s in p.subscriber.slots.values() if s.port is not None)
        return total

    def subscribers(self) -> int:
        return sum(1 for room in tuple(self.rooms.rooms.values())
                   for p in tuple(room.participants.values()) if p.subscriber is not None)

    def __call__(self) -> NodeLoad:
        now, cpu, octets = time.monotonic(), time.process_time(), self._octets_sent()
        elapsed = max(1e-3, now - self._at)
        load = NodeLoad(url=self.url, cpu=round((cpu - self._cpu_at) / elapsed, 3), subscribers=self.subscribers(),
                        bitrate_out=round(max(0, octets - self._octets) * 8 / elapsed), capacity=self.capacity)
        self._at, self._cpu_at, self._octets = now, cpu, octets
        self.last = load
        return load

    def now(self) -> NodeLoad:
        """The last sample with the subscribers counted now (placement must not trust a second-old count)."""
        return replace(self.last, subscribers=self.subscribers())
