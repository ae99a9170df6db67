"""`/metrics`: the lesson server's state in the Prometheus text format, read at scrape time.

Nothing here runs per packet. A custom collector walks the live rooms when it is scraped and
reads the counters the forwarding plane already keeps (`TrackStats`, `NackTracker`, `SenderPort`)
and the recorder's queue and build counts. Those counters live on objects that go away with
their connection, so the collector folds them into process-wide totals (`RunningTotals`): a
total only grows, and what a connection had counted stays in it after the connection closes.
A small task folds every `FOLD_S` and measures the event loop's scheduling delay.

Access: an admin token (Bearer) on the main port, and, with `--metrics-port`, without a token on
127.0.0.1 of that port only (for a local Prometheus or the soak bench).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from sfu.http_api import require_admin
from sfu.lessons import Role
from sfu.room import RoomDirectory
from sfu.tokens import TokenIssuer

logger = logging.getLogger(__name__)

FOLD_S = 2.0  # counters of a connection that closes are kept up to its last fold
LAG_INTERVAL_S = 0.5  # the loop-lag probe sleeps this long and measures how late it wakes
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

INGRESS = ("packets", "bytes", "nacks_sent", "plis_sent")  # per published track (classroom -> server)
EGRESS = ("packets", "bytes", "rtx_sent", "nacks_received")  # per subscriber slot (server -> classroom)


class RunningTotals:
    """Sums of counters kept on short-lived objects, that never go down when an object goes away."""

    def __init__(self, fields: tuple[str, ...]) -> None:
        self.fields = fields
        self.totals: dict[str, int] = dict.fromkeys(fields, 0)
        self._last: weakref.WeakKeyDictionary[Any, tuple[int, ...]] = weakref.WeakKeyDictionary()

    def fold(self, owner: Any, values: tuple[int, ...]) -> None:
        """Add what `owner`'s counters (one per field) gained since the last fold."""
        last = self._last.get(owner)
        for i, name in enumerate(self.fields):
            gained = values[i] - (last[i] if last is not None else 0)
            if gained > 0:
                self.totals[name] += gained
        self._last[owner] = values


class LoopLag:
    """How late the event loop runs a timer: the last delay and a histogram of all of them."""

    def __init__(self, buckets: tuple[float, ...] = LAG_BUCKETS) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # per bucket (not cumulative); the last is +Inf
        self.total = 0.0
        self.last = 0.0

    def observe(self, lag: float) -> None:
        self.last = lag
        self.total += lag
        index = next((i for i, bound in enumerate(self.buckets) if lag <= bound), len(self.buckets))
        self.counts[index] += 1

    def cumulative(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, count in zip((*self.buckets, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
        return out


class ServerCollector(Collector):
    """Lessons, classrooms, forwarding, recorder, signaling and process figures, at scrape time."""

    def __init__(self, rooms: RoomDirectory, recorder: Any = None, signaling: Any = None,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.rooms = rooms
        self.recorder = recorder
        self.signaling = signaling
        self.loop = loop
        self.lag = LoopLag()
        self.ingress = RunningTotals(INGRESS)
        self.egress = RunningTotals(EGRESS)

    def fold(self) -> None:
        """Bring the running totals up to date with every live track and slot."""
        for room in tuple(self.rooms.rooms.values()):
            for p in tuple(room.participants.values()):
                for track in tuple(p.published.values()):
                    s = track.stats
                    self.ingress.fold(track, (s.packets_in, s.bytes_in, track.nack.requested, s.keyframe_requests_sent))
                if p.subscriber is None:
                    continue
                for slot in tuple(p.subscriber.slots.values()):
                    port = slot.port
                    if port is None:
                        continue
                    nacked = port.retransmissions + port.retransmit_misses + port.retransmits_throttled
                    self.egress.fold(port, (port.packets_sent, port.octets_sent, port.retransmissions, nacked))

    def collect(self) -> Iterable[Metric]:
        self.fold()
        yield from self._rooms()
        yield from self._forwarding()
        yield from self._recorder()
        yield from self._signaling()
        yield from self._runtime()

    def _rooms(self) -> Iterator[Metric]:
        rooms = tuple(self.rooms.rooms.values())
        yield GaugeMetricFamily("twinclass_lessons_live", "Lessons live on this node", value=len(rooms))
        by_role = {Role.MASTER: 0, Role.RURAL: 0}
        observers = 0
        for room in rooms:
            for p in tuple(room.participants.values()):
                if p.role in by_role:
                    by_role[p.role] += 1
                elif p.role in (Role.OBSERVER, Role.ADMIN):
                    observers += 1
        classrooms = GaugeMetricFamily("twinclass_classrooms_live", "Classrooms connected, by role", labels=["role"])
        for role, n in by_role.items():
            classrooms.add_metric([str(role)], n)
        yield classrooms
        yield GaugeMetricFamily("twinclass_observers_live", "Observers (and patrolling admins) connected",
                                value=observers)

    def _forwarding(self) -> Iterator[Metric]:
        i, e = self.ingress.totals, self.egress.totals
        yield CounterMetricFamily("twinclass_rtp_received_packets", "RTP packets received from classrooms",
                                  value=i["packets"])
        yield CounterMetricFamily("twinclass_rtp_received_bytes", "RTP payload bytes received from classrooms",
                                  value=i["bytes"])
        yield CounterMetricFamily("twinclass_rtp_forwarded_packets", "RTP packets forwarded to subscribers",
                                  value=e["packets"])
        yield CounterMetricFamily("twinclass_rtp_forwarded_bytes", "RTP payload bytes forwarded to subscribers",
                                  value=e["bytes"])
        yield CounterMetricFamily("twinclass_nacks_received", "Sequence numbers subscribers asked to be resent",
                                  value=e["nacks_received"])
        yield CounterMetricFamily("twinclass_nacks_sent", "Sequence numbers asked of publishers again (NACK)",
                                  value=i["nacks_sent"])
        yield CounterMetricFamily("twinclass_plis_sent", "Keyframe requests (PLI) sent to publishers",
                                  value=i["plis_sent"])
        yield CounterMetricFamily("twinclass_rtx_sent", "Retransmissions sent to subscribers", value=e["rtx_sent"])

    def _recorder(self) -> Iterator[Metric]:
        rec = self.recorder
        if rec is None:
            return
        yield GaugeMetricFamily("twinclass_recordings_live", "Lessons being recorded now",
                                value=len(getattr(rec, "live", {})))
        yield GaugeMetricFamily("twinclass_recorder_queue_length", "Recordings waiting for their archive build",
                                value=int(getattr(rec, "queue_length", 0)))
        builds = CounterMetricFamily("twinclass_archive_builds", "Archive builds finished, by result",
                                     labels=["result"])
        done, failed = int(getattr(rec, "builds_done", 0)), int(getattr(rec, "builds_failed", 0))
        builds.add_metric(["done"], done)
        builds.add_metric(["failed"], failed)
        yield builds
        yield SummaryMetricFamily("twinclass_archive_build_seconds", "Wall seconds of finished archive builds",
                                  count_value=done + failed, sum_value=float(getattr(rec, "build_seconds", 0.0)))

    def _signaling(self) -> Iterator[Metric]:
        counts: Mapping[str, int] = getattr(self.signaling, "error_counts", None) or {}
        errors = CounterMetricFamily("twinclass_signaling_errors", "Errors sent to signaling clients, by code",
                                     labels=["code"])
        for code, n in sorted(counts.items()):
            errors.add_metric([str(code)], n)
        yield errors
        lost: Mapping[str, int] = getattr(self.signaling, "media_lost", None) or {}
        media = CounterMetricFamily("twinclass_media_connections_lost",
                                    "Classrooms' media connections that failed or were closed under a live session",
                                    labels=["target", "state"])
        for key, n in sorted(lost.items()):
            media.add_metric(key.split("/", 1), n)
        yield media

    def _runtime(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("twinclass_event_loop_lag_last_seconds", "How late the last loop-lag probe woke",
                                value=self.lag.last)
        yield HistogramMetricFamily("twinclass_event_loop_lag_seconds", "How late the event loop runs timers",
                                    buckets=self.lag.cumulative(), sum_value=self.lag.total)
        yield GaugeMetricFamily("twinclass_process_threads", "Threads of the server process (native ones too)",
                                value=_thread_count())
        if self.loop is not None:
            yield GaugeMetricFamily("twinclass_asyncio_tasks", "Tasks alive on the server's event loop",
                                    value=len(asyncio.all_tasks(self.loop)))

    async def run(self, interval_s: float = LAG_INTERVAL_S, fold_s: float = FOLD_S) -> None:
        """Probe the loop's lag every `interval_s` and fold counters every `fold_s`, until cancelled."""
        next_fold = time.monotonic() + fold_s
        while True:
            started = time.monotonic()
            await asyncio.sleep(interval_s)
            now = time.monotonic()
            self.lag.observe(max(0.0, now - started - interval_s))
            if now >= next_fold:
                next_fold = now + fold_s
                try:
                    self.fold()
                except Exception:  # a room changing shape under us must not end the probe
                    logger.exception("folding forwarding counters failed")


def _thread_count() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return threading.active_count()


def make_registry(collector: ServerCollector) -> CollectorRegistry:
    """A registry of its own (no module-level state): the server's figures and the process's."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)  # process_resident_memory_bytes, process_open_fds, CPU seconds...
    return registry


def metrics_handler(registry: CollectorRegistry,
                    check: Callable[[web.Request], object] | None = None) -> Callable[[web.Request], Any]:
    async def handler(request: web.Request) -> web.Response:
        if check is not None:
            check(request)
        body = generate_latest(registry)  # on the loop thread: the rooms are not changing meanwhile
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handler


def attach(app: web.Application, *, rooms: RoomDirectory, tokens: TokenIssuer, recorder: Any = None,
           signaling: Any = None, port: int | None = None) -> ServerCollector:
    """Serve `/metrics` on `app` (admin token), and on 127.0.0.1:`port` without one when a port is given."""
    collector = ServerCollector(rooms, recorder, signaling)
    registry = make_registry(collector)
    app.router.add_get("/metrics", metrics_handler(registry, lambda request: require_admin(request, tokens)))
    state: dict[str, Any] = {}

    async def start(app: web.Application) -> None:
        collector.loop = asyncio.get_running_loop()
        state["task"] = asyncio.ensure_future(collector.run())
        if port is not None:
            side = web.Application()
            side.router.add_get("/metrics", metrics_handler(registry))
            runner = web.AppRunner(side, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            state["runner"] = runner
            logger.info("metrics on http://127.0.0.1:%d/metrics (no token; loopback only)", port)

    async def stop(app: web.Application) -> None:
        task = state.pop("task", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        runner = state.pop("runner", None)
        if runner is not None:
            await runner.cleanup()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return collector
