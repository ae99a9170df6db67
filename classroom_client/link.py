"""A user-space link impairment for the classroom terminal (`twinclass classroom --link SPEC`).

Rural classrooms sit on shared ADSL/4G lines; this imposes such a line on both directions of a
terminal's media connections, where `tc netem` is not available. SPEC is comma-separated
`key=value` fields (empty or `none`: a clean link), e.g. `loss=3%,delay=75ms,jitter=15ms,rate=1mbit`:

- `loss=P%`       independent (Bernoulli) loss of each datagram.
- `burst=P%`      bursty loss, Gilbert–Elliott (simple Gilbert): a good state losing nothing and a
                  bad state losing everything; P is the mean loss, `burstlen=N` (packets, default 4)
                  the mean length of a loss run. Per packet: bad→good with r = 1/N, good→bad with
                  p = P·r/(1-P). With `loss=` too, both apply independently.
- `delay=Tms`     ONE-way delay (75ms each way is 150 ms RTT); `s` also accepted.
- `jitter=Tms`    the one-way delay wanders in delay±jitter: a new target drawn uniformly every
                  4·jitter, linearly approached (slope ≤ 0.5), so packets never overtake each other
                  (a FIFO line, not netem's reordering jitter); the mean stays `delay`.
- `rate=R`        bottleneck rate, `kbit`/`mbit` (`kbps`/`mbps` are the same: bits, not tc's bytes);
                  counted on datagram bytes (IP/UDP headers not included).
- `queue=Q`       the bottleneck's buffer, `ms` (at `rate`) or bytes (`b`/`kb`/`mb`, powers of 1000);
                  default 200ms, at least 3 full packets. A full buffer tail-drops. Needs `rate=`.
- `blackout=A+D`  nothing passes for D from A after the link started (`20s+10s`); several with
                  `;` (`20s+10s;60s+5s`) or repeated `blackout=` fields.

Each direction (`LinkDirection`) applies blackout, then loss, then the rate-limited queue, then
delay and jitter. Times come from a `Scheduler`: the asyncio loop (`loop.time`, `loop.call_at`)
in a terminal, `VirtualClock` in tests. `Link` pairs an uplink (what the terminal sends) and a
downlink (what it receives) and attaches to RTCPeerConnections through
`sfu.media.aiortc_adapter.wrap_ice_datagrams`. The server never imports this module.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import itertools
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiortc import RTCPeerConnection

from sfu.media.aiortc_adapter import wrap_ice_datagrams

FIELDS = ("loss", "burst", "burstlen", "delay", "jitter", "rate", "queue", "blackout")
MTU = 1500
DEFAULT_QUEUE_MS = 200.0
MIN_QUEUE_BYTES = 3 * MTU

_NUMBER = re.compile(r"^([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z%]*)$")
_TIME_MS = {"ms": 1.0, "s": 1000.0}
_RATE = {"bit": 1.0, "kbit": 1e3, "mbit": 1e6, "bps": 1.0, "kbps": 1e3, "mbps": 1e6}
_BYTES = {"b": 1.0, "kb": 1e3, "mb": 1e6}


def _quantity(key: str, value: str, units: dict[str, float], what: str) -> float:
    m = _NUMBER.match(value.strip().lower())
    if m is None or m.group(2) not in units:
        raise ValueError(f"{key}: {value!r} is not {what} ({' '.join(u for u in units)})")
    return float(m.group(1)) * units[m.group(2)]


def _blackouts(key: str, value: str) -> list[tuple[float, float]]:
    windows = []
    for part in value.split(";"):
        at, plus, dur = part.partition("+")
        if not plus:
            raise ValueError(f"{key}: {part!r} is not AT+DURATION (e.g. 20s+10s)")
        windows.append((_quantity(key, at, _TIME_MS, "a time") / 1000, _quantity(key, dur, _TIME_MS, "a time") / 1000))
    return windows


def _g(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class LinkSpec:
    """One direction's impairment, the same both ways (see the module docstring for SPEC)."""

    loss: float = 0.0  # percent, Bernoulli
    burst: float = 0.0  # percent, mean loss of the Gilbert–Elliott model
    burstlen: float = 4.0  # packets, mean loss-run length of the Gilbert–Elliott model
    delay: float = 0.0  # ms, one way
    jitter: float = 0.0  # ms
    rate: float | None = None  # bit/s; None: unlimited
    queue_ms: float | None = None  # bottleneck buffer as a time at `rate`...
    queue_bytes: float | None = None  # ...or in bytes (neither: DEFAULT_QUEUE_MS)
    blackouts: tuple[tuple[float, float], ...] = field(default=())  # (start s, duration s) from link start

    def __post_init__(self) -> None:
        if not 0 <= self.loss <= 100:
            raise ValueError(f"loss: {self.loss:g}% is not between 0% and 100%")
        if not 0 <= self.burst < 100:
            raise ValueError(f"burst: {self.burst:g}% is not between 0% and 100% (excluded)")
        if self.burstlen < 1:
            raise ValueError(f"burstlen: {self.burstlen:g} packets is less than 1")
        if self.delay < 0:
            raise ValueError(f"delay: {self.delay:g}ms is negative")
        if not 0 <= self.jitter <= self.delay:
            raise ValueError(f"jitter: {self.jitter:g}ms must be between 0 and delay ({self.delay:g}ms)")
        if self.rate is not None and self.rate <= 0:
            raise ValueError(f"rate: {self.rate:g} bit/s is not positive")
        if (self.queue_ms is not None or self.queue_bytes is not None) and self.rate is None:
            raise ValueError("queue: a bottleneck buffer needs rate=")
        if (self.queue_ms or 0) < 0 or (self.queue_bytes or 0) < 0:
            raise ValueError("queue: negative size")
        for start, duration in self.blackouts:
            if start < 0 or duration <= 0:
                raise ValueError(f"blackout: {start:g}s+{duration:g}s needs a start >= 0 and a duration > 0")

    @classmethod
    def parse(cls, text: str) -> LinkSpec:
        """Parse a SPEC; a `ValueError` names the bad field."""
        text = text.strip()
        if text.lower() in ("", "none"):
            return cls()
        values: dict[str, Any] = {}
        blackouts: list[tuple[float, float]] = []
        for item in (i.strip() for i in text.split(",")):
            if not item:
                continue
            key, eq, value = (s.strip() for s in item.partition("="))
            key = key.lower()
            if key not in FIELDS:
                raise ValueError(f"{key or item!r}: unknown field (known: {', '.join(FIELDS)})")
            if not eq or not value:
                raise ValueError(f"{key}: needs a value ({key}=...)")
            if key == "blackout":
                blackouts.extend(_blackouts(key, value))
                continue
            if key in values or (key == "queue" and ("queue_ms" in values or "queue_bytes" in values)):
                raise ValueError(f"{key}: given twice")
            if key in ("loss", "burst"):
                values[key] = _quantity(key, value, {"%": 1.0}, "a percentage")
            elif key == "burstlen":
                values[key] = _quantity(key, value, {"": 1.0}, "a number of packets")
            elif key in ("delay", "jitter"):
                values[key] = _quantity(key, value, _TIME_MS, "a time")
            elif key == "rate":
                values[key] = _quantity(key, value, _RATE, "a rate")
            elif value.lower().endswith("s"):
                values["queue_ms"] = _quantity(key, value, _TIME_MS, "a time or a size")
            else:
                values["queue_bytes"] = _quantity(key, value, _BYTES, "a time or a size")
        if "burstlen" in values and not values.get("burst"):
            raise ValueError("burstlen: needs burst=")
        return cls(**values, blackouts=tuple(blackouts))

    def __str__(self) -> str:
        parts = []
        if self.loss:
            parts.append(f"loss={_g(self.loss)}%")
        if self.burst:
            parts += [f"burst={_g(self.burst)}%", f"burstlen={_g(self.burstlen)}"]
        if self.delay:
            parts.append(f"delay={_g(self.delay)}ms")
        if self.jitter:
            parts.append(f"jitter={_g(self.jitter)}ms")
        if self.rate is not None:
            unit, div = ("mbit", 1e6) if self.rate % 1e6 == 0 else ("kbit", 1e3) if self.rate % 1e3 == 0 else ("bit", 1)
            parts.append(f"rate={_g(self.rate / div)}{unit}")
        if self.queue_ms is not None:
            parts.append(f"queue={_g(self.queue_ms)}ms")
        if self.queue_bytes is not None:
            parts.append(f"queue={_g(self.queue_bytes)}b")
        if self.blackouts:
            parts.append("blackout=" + ";".join(f"{_g(a)}s+{_g(d)}s" for a, d in self.blackouts))
        return ",".join(parts) or "none"

    def queue_limit(self) -> float:
        """The bottleneck buffer in bytes (infinite without a rate)."""
        if self.rate is None:
            return float("inf")
        if self.queue_bytes is not None:
            limit = self.queue_bytes
        else:
            limit = (self.queue_ms if self.queue_ms is not None else DEFAULT_QUEUE_MS) / 1000 * self.rate / 8
        return max(limit, MIN_QUEUE_BYTES)

    def in_blackout(self, elapsed: float) -> bool:
        return any(start <= elapsed < start + duration for start, duration in self.blackouts)


class Scheduler(Protocol):
    """What a link needs of a clock; an asyncio event loop is one."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], object]) -> object: ...


class VirtualClock:
    """A Scheduler for tests: time moves only when `run_until` runs the callbacks due."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self._due: list[tuple[float, int, Callable[[], object]]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], object]) -> object:
        heapq.heappush(self._due, (when, next(self._order), callback))
        return None

    def run_until(self, when: float) -> None:
        while self._due and self._due[0][0] <= when:
            at, _, callback = heapq.heappop(self._due)
            self.now = max(self.now, at)
            callback()
        self.now = max(self.now, when)


@dataclass
class DirectionStats:
    offered: int = 0
    delivered: int = 0
    dropped_loss: int = 0
    dropped_queue: int = 0
    dropped_blackout: int = 0
    bytes_offered: int = 0
    bytes: int = 0  # delivered
    queue_delay_ms: float = 0.0  # the bottleneck's backlog now, as a time
    max_queue_delay_ms: float = 0.0

    @property
    def in_flight(self) -> int:
        return self.offered - self.delivered - self.dropped_loss - self.dropped_queue - self.dropped_blackout


class LinkDirection:
    """One direction of the line: blackout, loss, a rate-limited tail-drop queue, then delay and jitter."""

    def __init__(self, spec: LinkSpec, scheduler: Scheduler, rng: random.Random, start: float) -> None:
        self.spec = spec
        self.stats = DirectionStats()
        self._scheduler = scheduler
        self._rng = rng
        self._start = start
        self._bad = False  # Gilbert–Elliott state
        self._busy_until = start  # when the bottleneck has sent everything queued
        self._last_arrival = start
        self._wander_t0: float | None = None  # jitter: the current segment's start and unit end points
        self._wander = (0.0, 0.0)

    def offer(self, data: bytes, deliver: Callable[[bytes], None]) -> None:
        """Put a datagram on the line; `deliver(data)` is called when (if) it comes out."""
        now, spec, stats, size = self._scheduler.time(), self.spec, self.stats, len(data)
        stats.offered += 1
        stats.bytes_offered += size
        if spec.in_blackout(now - self._start):
            stats.dropped_blackout += 1
            return
        if self._lost():
            stats.dropped_loss += 1
            return
        depart = now
        if spec.rate is not None:
            backlog = max(0.0, self._busy_until - now) * spec.rate / 8
            if backlog + size > spec.queue_limit():
                stats.dropped_queue += 1
                return
            self._busy_until = max(self._busy_until, now) + size * 8 / spec.rate
            depart = self._busy_until
            stats.max_queue_delay_ms = max(stats.max_queue_delay_ms, (depart - now) * 1000)
        arrival = max(depart + spec.delay / 1000 + self._jitter(depart), self._last_arrival)  # FIFO: no overtaking
        self._last_arrival = arrival
        self._scheduler.call_at(arrival, lambda: self._arrive(data, deliver))

    def _arrive(self, data: bytes, deliver: Callable[[bytes], None]) -> None:
        if self.spec.in_blackout(self._scheduler.time() - self._start):  # nothing passes in the window
            self.stats.dropped_blackout += 1
            return
        self.stats.delivered += 1
        self.stats.bytes += len(data)
        deliver(data)

    def _lost(self) -> bool:
        spec = self.spec
        lost = False
        if spec.burst:
            r = 1.0 / spec.burstlen
            p = spec.burst / 100 * r / (1 - spec.burst / 100)
            lost = self._bad
            self._bad = self._rng.random() >= r if self._bad else self._rng.random() < p
        if spec.loss and self._rng.random() < spec.loss / 100:
            lost = True
        return lost

    def _jitter(self, t: float) -> float:
        """The delay's wander at time t, in seconds (within ±jitter, slope at most 0.5)."""
        jitter = self.spec.jitter / 1000
        if not jitter:
            return 0.0
        period = 4 * jitter
        if self._wander_t0 is None or t - self._wander_t0 > 2 * period:
            self._wander_t0, self._wander = t, (self._rng.uniform(-1, 1), self._rng.uniform(-1, 1))
        while t >= self._wander_t0 + period:
            self._wander_t0 += period
            self._wander = (self._wander[1], self._rng.uniform(-1, 1))
        a, b = self._wander
        frac = min(max((t - self._wander_t0) / period, 0.0), 1.0)
        return jitter * (a + (b - a) * frac)

    def snapshot(self) -> dict[str, Any]:
        self.stats.queue_delay_ms = max(0.0, self._busy_until - self._scheduler.time()) * 1000
        data = dataclasses.asdict(self.stats)
        data["in_flight"] = self.stats.in_flight
        return {k: round(v, 1) if isinstance(v, float) else v for k, v in data.items()}


class Link:
    """A terminal's line: uplink (what it sends) and downlink (what it receives), from one spec.

    One Link serves every peer connection of the terminal (they share the line) for its whole
    life; blackout times count from its creation.
    """

    def __init__(self, spec: LinkSpec, scheduler: Scheduler | None = None, seed: int | None = None) -> None:
        self.spec = spec
        self.scheduler: Scheduler = scheduler if scheduler is not None else asyncio.get_running_loop()
        self.start = self.scheduler.time()
        rng = random.Random(seed)
        self.uplink = LinkDirection(spec, self.scheduler, random.Random(rng.getrandbits(64)), self.start)
        self.downlink = LinkDirection(spec, self.scheduler, random.Random(rng.getrandbits(64)), self.start)

    def reconfigure(self, spec: LinkSpec) -> None:
        """Change the impairment mid-run (queues, counters and the blackout clock carry on)."""
        self.spec = self.uplink.spec = self.downlink.spec = spec

    def attach(self, pc: RTCPeerConnection) -> int:
        """Impair `pc` both ways (once its transports exist, before media flows); see wrap_ice_datagrams."""
        return wrap_ice_datagrams(pc, send=self.uplink.offer, receive=self.downlink.offer)

    def stats(self) -> dict[str, Any]:
        return {"uplink": self.uplink.snapshot(), "downlink": self.downlink.snapshot()}
