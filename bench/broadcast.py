"""A master-teacher broadcast (名师课堂) to many listening classrooms, on one node and on two.

    .venv/bin/python bench/broadcast.py [--viewers 50,100,200] [--topologies 1,2,2split,2fill] [--decoders 2]
        [--bitrate 1000000] [--size 640x480] [--per-process 25] [--measure 10] [--node-capacity N] [--keep DIR]

In their own processes: `twinclass serve` (node A; for the two-node rows also node B, both with
`--redis-url` of a private `redis-server` and their own `--node-url`, sharing one data dir), the
master (`bench/realistic_source.py --mic`: a moving, detailed picture at a fixed `--bitrate`, VP8
30 fps, and a tone), `--decoders` full decoding listening classrooms (`twinclass classroom` code:
every frame decoded and its pattern read: glass-to-glass latency), and the viewers: light listening
classrooms (`bench/light_receiver.py --role listener`: real ICE/DTLS-SRTP, RTP only counted),
`--per-process` to a niced process. The master publishes on node A. Two-node layouts (`--topologies`):
`2`, the decoders and viewers connect to node B; `2split`, every other viewers' process connects to
A, the rest and the decoders to B; `2fill`, all connect to A, which keeps them while it has room
(`--node-capacity` on both nodes, default half the largest row) and places the rest on B. A node
serves a viewer placed there itself (B takes the lesson from A over one relay link: the cascade) or
refuses the join with code "redirect" and another node's URL: the clients follow it, as the
classroom terminal does, and the table's `placed` column says where every viewer ended up.

Server limits: all clients come from 127.0.0.1, so the bench raises the per-address admission
limits (`bench.sfu_forwarding.SERVER_OPTIONS`: 1000 sockets, 200 joins/s, burst 400; default 64
sockets, 10 joins/s, burst 20, which refuse the 65th viewer and close its socket) and turns tiers off;
it also gives a socket 60 s to join (`--join-timeout`; the default 10 s closed viewers' sockets at 100).

Windows per topology: W0 with the master alone, then one per row (viewers added up to the row's
count; decoders join for each row's window and leave after it). Per row: CPU per node (CPU-s/s from
/proc), marginal CPU per viewer ((CPU_row - CPU_W0) summed over nodes / (viewers + decoders)),
forwarded 1-Mbps streams per core (extra forwarded Mbps / extra CPU), viewers that saw every packet
(no sequence gap on any stream since they joined), bitrate per viewer, the decoders' p50/p95 latency,
and, in two-node rows with viewers on B only, the origin's cost per edge (CPU_A - CPU_A,W0 per edge node).
Targets: >= 200 streams per core (<= 0.5 % of a core per viewer) on one node; the cascade adds <= 20 ms
p50; the origin's cost per edge <= one local viewer's.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ROOT,
    add_decoder_worker_options,
    api_post,
    cpu_seconds,
    decoder_worker_command,
    exit_on_sigterm,
    free_port,
    read_json,
    redis_server,
    run_decoder_worker,
    scrape,
    serve,
    stop,
    token,
    wait_http,
)
from bench.sfu_forwarding import SERVER_OPTIONS, counters, wait_light

LESSON = "broadcast-bench"
TARGET_STREAMS_PER_CORE = 200
TARGET_PCT_PER_VIEWER = 0.5
TARGET_CASCADE_MS = 20.0
# hundreds of viewers joining at once on a loaded machine take longer than the default 10 s from socket to
# join (the server then closes the socket: limit_join_timeout, seen at 100 viewers)
BROADCAST_OPTIONS = ["--join-timeout", "60"]


@dataclass
class Node:
    name: str  # "A" (the origin), "B"
    url: str
    metrics: str
    proc: subprocess.Popen[bytes]


@dataclass
class Sample:
    at: float
    cpu: dict[str, float]  # node -> CPU-s so far
    fwd: dict[str, tuple[float, float, float, float]]  # node -> (bytes in, pkts in, bytes out, pkts out)
    crowd: dict[str, Any]  # the viewers' summed stats
    lag: dict[str, tuple[float, float]]  # node -> event-loop lag probes (sum of s, count) so far
    errors: dict[str, dict[str, int]]  # node -> signaling error code -> count so far


LAYOUTS = ("1", "2", "2split", "2fill")


def node_count(layout: str) -> int:
    return int(layout[0])


@dataclass
class RowResult:
    topology: str  # LAYOUTS: "1" one node; "2" viewers on edge B; "2split" half on A, half on B; "2fill" A then B
    viewers: int
    cpu: dict[str, float]  # node -> CPU-s/s in the row's window
    base_cpu: dict[str, float]  # node -> CPU-s/s in W0
    out_mbps: float  # forwarded, all nodes
    base_out_mbps: float
    connected: int
    complete: int
    per_viewer_kbps: float
    placed: dict[str, int]  # node name -> viewers there
    decoders: list[dict[str, Any]] = field(default_factory=list)
    load: float = 0.0
    decoders_placed: str = ""  # the nodes the decoders ended up on
    lag_ms: dict[str, float] = field(default_factory=dict)  # node -> mean event-loop lag in the window
    errors: dict[str, int] = field(default_factory=dict)  # signaling errors sent so far (all nodes), by code
    replaced: int = 0  # viewers whose socket or connection was closed (each replaced by a new one)
    keyframed: int = 0  # viewers that saw a keyframe start on every video stream
    missed_pct: float = 0.0  # of the packets the live viewers should have had, the share they missed
    master: str = "?"  # the master's connection at the end of the window


def crowd_totals(files: list[Path], names: dict[str, str]) -> dict[str, Any]:
    keys = ("connected", "complete", "keyframed", "bytes", "packets", "packets_missed", "lost", "failures")
    out: dict[str, Any] = {key: 0 for key in keys}
    out["placed"] = {}
    for path in files:
        stats = read_json(path) or {}
        for key in keys:
            out[key] += int(stats.get(key, 0))
        for url, n in (stats.get("nodes") or {}).items():
            name = names.get(url.rstrip("/"), url)
            out["placed"][name] = out["placed"].get(name, 0) + n
    return out


def sample(nodes: list[Node], files: list[Path], names: dict[str, str]) -> Sample:
    at, cpu = time.monotonic(), {n.name: cpu_seconds(n.proc.pid) for n in nodes}
    metrics = {n.name: scrape(n.metrics) for n in nodes}
    prefix = "twinclass_signaling_errors_total{code="
    return Sample(at, cpu, {n.name: counters(n.metrics) for n in nodes}, crowd_totals(files, names),
                  {name: (m.get("twinclass_event_loop_lag_seconds_sum", 0.0),
                          m.get("twinclass_event_loop_lag_seconds_count", 0.0)) for name, m in metrics.items()},
                  {name: {k[len(prefix):-1]: int(v) for k, v in m.items() if k.startswith(prefix)}
                   for name, m in metrics.items()})


def master_state(log: Path) -> str:
    """The master's publishing connection and socket, from the last line realistic_source.py printed."""
    try:
        lines = [x for x in log.read_text(errors="replace").splitlines() if "publishing connection" in x]
    except OSError:
        return "?"
    if not lines:
        return "?"
    last = lines[-1]
    up = "publishing connection connected" in last and "socket up" in last
    return "up" if up else "DOWN"


class Run:
    """One topology: its servers, the master, and the viewers as they are added row by row."""

    def __init__(self, args: argparse.Namespace, topology: str, work: Path) -> None:
        self.args = args
        self.topology = topology
        self.count = node_count(topology)
        self.work = work
        self.data = work / "data"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.nodes: list[Node] = []
        self.logs: list[IO[bytes]] = []
        self.crowd_files: list[Path] = []
        self.viewers = 0
        self.serial = 0

    def log(self, name: str) -> IO[bytes]:
        f = open(self.work / f"{name}.log", "wb")
        self.logs.append(f)
        return f

    def start(self) -> None:
        extra = ["--log-level", "WARNING", *SERVER_OPTIONS, *BROADCAST_OPTIONS]
        if self.count > 1:
            redis, redis_url = redis_server(self.work)
            self.procs.append(redis)
            extra += ["--redis-url", redis_url]
            if self.topology == "2fill":
                extra += ["--node-capacity", str(self.args.node_capacity or max(self.args.viewers) // 2)]
        for i in range(self.count):
            name = "AB"[i]
            port, mport = free_port(), free_port()
            url = f"http://127.0.0.1:{port}"
            node_extra = [*extra, "--metrics-port", str(mport)]
            if self.count > 1:
                node_extra += ["--node-url", url]
            proc = serve(self.data, port, self.log(f"server-{name}"), extra=node_extra)
            self.nodes.append(Node(name, url, f"http://127.0.0.1:{mport}/metrics", proc))
            wait_http(url + "/healthz", timeout=90)  # one at a time: the first creates the data dir
        origin = self.nodes[0]
        admin = token(self.data, "--role", "admin")
        api_post(origin.url + "/api/lessons", admin, {
            "id": LESSON, "kind": "broadcast", "title": "broadcast bench", "subject": "bench", "grade": "4",
            "master": {"id": "master", "name": "master"}, "rurals": [], "record": False})
        master = token(self.data, "--lesson", LESSON, "--classroom", "master", "--role", "master")
        self.procs.append(subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "realistic_source.py"), "--server", origin.url, "--token", master,
             "--size", self.args.size, "--bitrate", str(self.args.bitrate), "--mic"],
            cwd=str(ROOT), stdout=self.log("master"), stderr=subprocess.STDOUT))
        # the master is publishing once node A receives its video
        deadline = time.monotonic() + 60
        while counters(origin.metrics)[1] < 100 and time.monotonic() < deadline:
            time.sleep(0.5)

    @property
    def entry(self) -> Node:
        """Where the decoders connect, and the viewers but in "2split": node B in the two-node rows, but A in
        "2fill" (A's --node-capacity: placement fills A, then B)."""
        return self.nodes[0] if self.topology == "2fill" else self.nodes[-1]

    def viewer_url(self, process: int) -> str:
        """Where a viewers' process connects: in "2split" every other one to A, the others to B."""
        if self.topology == "2split":
            return self.nodes[process % 2].url
        return self.entry.url

    @property
    def names(self) -> dict[str, str]:
        return {n.url: n.name for n in self.nodes}

    def add_viewers(self, total: int, extra: Sequence[str] = ()) -> list[subprocess.Popen[bytes]]:
        """Light viewers' processes (`--per-process` each, niced) until there are `total`; the new ones."""
        log = self.log(f"viewers-{total}")
        new = []
        while self.viewers < total:
            k = min(self.args.per_process, total - self.viewers)
            self.crowd_files.append(self.work / f"viewers-{len(self.crowd_files)}.json")
            new.append(subprocess.Popen(
                ["nice", "-n", "5", sys.executable, str(ROOT / "bench" / "light_receiver.py"), "--server",
                 self.viewer_url(len(self.crowd_files) - 1), "--secret-file", str(self.data / "token-secret"),
                 "--lesson", LESSON, "--role", "listener", "--observers", str(k), "--stats-json",
                 str(self.crowd_files[-1]), *extra],
                cwd=str(ROOT), stdout=log, stderr=subprocess.STDOUT))
            self.viewers += k
        self.procs += new
        return new

    def start_decoders(self, seconds: float) -> tuple[subprocess.Popen[bytes], Path] | None:
        if not self.args.decoders:
            return None
        tokens = []
        for _ in range(self.args.decoders):
            self.serial += 1
            tokens.append(token(self.data, "--lesson", LESSON, "--classroom", f"decoder-{self.serial}",
                                "--role", "listener"))
        out = self.work / f"decoders-{self.serial}.json"
        proc = subprocess.Popen(decoder_worker_command(__file__, self.entry.url, tokens, seconds, out),
                                cwd=str(ROOT), stdout=self.log(f"decoders-{self.serial}"), stderr=subprocess.STDOUT)
        return proc, out

    def stop(self) -> None:
        stop([*self.procs, *(n.proc for n in self.nodes)])
        for f in self.logs:
            f.close()


def rates(a: Sample, b: Sample) -> tuple[dict[str, float], float, float]:
    """CPU-s/s per node, forwarded Mbps (all nodes), viewers' received kbps in all, between two samples."""
    dt = b.at - a.at
    cpu = {name: (b.cpu[name] - a.cpu[name]) / dt for name in a.cpu}
    out_mbps = sum(b.fwd[n][2] - a.fwd[n][2] for n in a.fwd) * 8 / dt / 1e6
    crowd_kbps = (b.crowd["bytes"] - a.crowd["bytes"]) * 8 / dt / 1e3
    return cpu, out_mbps, crowd_kbps


def run_topology(args: argparse.Namespace, topology: str, work: Path) -> list[RowResult]:
    run = Run(args, topology, work)
    results = []
    try:
        run.start()
        time.sleep(args.warmup)
        s0 = sample(run.nodes, [], run.names)
        time.sleep(args.measure)
        base_cpu, base_out, _ = rates(s0, sample(run.nodes, [], run.names))
        for n in args.viewers:
            print(f"  {topology}: {n} viewers ...", file=sys.stderr, flush=True)
            run.add_viewers(n)
            decoders = run.start_decoders(args.warmup * 2 + args.measure + 40 + n * 0.3)
            connected = wait_light(run.crowd_files, n, timeout=60 + n * 0.6)
            time.sleep(args.warmup)
            a = sample(run.nodes, run.crowd_files, run.names)
            time.sleep(args.measure)
            b = sample(run.nodes, run.crowd_files, run.names)
            cpu, out_mbps, crowd_kbps = rates(a, b)
            seen: list[dict[str, Any]] = []
            if decoders is not None:
                decoders[0].send_signal(signal.SIGTERM)
                try:
                    decoders[0].wait(timeout=30)
                except subprocess.TimeoutExpired:
                    stop([decoders[0]])
                seen = read_json(decoders[1]) or []
            connected = b.crowd["connected"]
            errors: dict[str, int] = {}
            for codes in b.errors.values():
                for code, count in codes.items():
                    errors[code] = errors.get(code, 0) + count
            lag = {name: 1e3 * (b.lag[name][0] - a.lag[name][0]) / max(1.0, b.lag[name][1] - a.lag[name][1])
                   for name in b.lag}
            results.append(RowResult(
                topology, n, cpu, base_cpu, out_mbps, base_out, connected, b.crowd["complete"],
                crowd_kbps / max(1, connected), b.crowd["placed"], seen, os.getloadavg()[0],
                ",".join(sorted({run.names.get(str(s.get("server", "")).rstrip("/"), "?") for s in seen})),
                lag, errors, int(b.crowd["lost"]),
                missed_pct=100 * b.crowd["packets_missed"] / max(1, b.crowd["packets"] + b.crowd["packets_missed"]),
                master=master_state(work / "master.log"), keyframed=int(b.crowd["keyframed"])))
            print("   ", line(results[-1], args.decoders), file=sys.stderr, flush=True)
    finally:
        run.stop()
    return results


def pct_per_viewer(r: RowResult, decoders: int) -> float:
    extra = sum(r.cpu.values()) - sum(r.base_cpu.values())
    return 100 * extra / max(1, r.connected + decoders)


def latency(r: RowResult, key: str) -> float:
    values = [s[key] for s in r.decoders if s.get(key) is not None]
    if not values:
        return float("nan")
    return statistics.median(values) if key.endswith("p50") else max(values)


def origin_per_edge(r: RowResult) -> float | None:
    """CPU share of a core the origin (A) spends for each edge node that has viewers, over W0."""
    edges = sum(1 for name, n in r.placed.items() if name != "A" and n > 0)
    if node_count(r.topology) < 2 or edges == 0 or r.placed.get("A", 0) > 0:  # A's own viewers: not an edge's cost
        return None
    return 100 * (r.cpu["A"] - r.base_cpu["A"]) / edges


HEAD = (f"{'nodes':>6} {'viewers':>7} {'load':>5} | {'CPU A':>6} {'CPU B':>6} {'%/viewer':>8} {'streams/core':>12} |"
        f" {'complete':>9} {'key':>4} {'missed':>6} {'kbps/viewer':>11} {'placed':>14} |"
        f" {'p50 ms':>6} {'p95 ms':>6} {'dec':>5} |"
        f" {'origin %/edge':>13} | {'lag ms':>9} {'master':>6} {'replaced':>8}  errors")


def line(r: RowResult, decoders: int) -> str:
    extra_cpu = sum(r.cpu.values()) - sum(r.base_cpu.values())
    per_core = (r.out_mbps - r.base_out_mbps) / extra_cpu if extra_cpu > 0 else float("nan")
    placed = " ".join(f"{k}:{v}" for k, v in sorted(r.placed.items())) or "-"
    edge = origin_per_edge(r)
    dec_at = f"{len(r.decoders)}@{r.decoders_placed or '-'}"
    lag = "/".join(f"{r.lag_ms[k]:.0f}" for k in sorted(r.lag_ms))
    errors = " ".join(f"{k}:{v}" for k, v in sorted(r.errors.items())) or "-"
    return (f"{r.topology:>6} {r.viewers:>7} {r.load:>5.1f} | {r.cpu.get('A', 0):>6.3f} "
            f"{r.cpu.get('B', float('nan')):>6.3f} {pct_per_viewer(r, decoders):>8.2f} {per_core:>12.0f} |"
            f" {f'{r.complete}/{r.connected}':>9} {r.keyframed:>4} {r.missed_pct:>5.2f}%"
            f" {r.per_viewer_kbps:>11.0f} {placed:>14} |"
            f" {latency(r, 'latency_ms_p50'):>6.0f} {latency(r, 'latency_ms_p95'):>6.0f} {dec_at:>5} |"
            f" {'-' if edge is None else f'{edge:.2f}':>13} | {lag:>9} {r.master:>6} {r.replaced:>8}  {errors}")


def valid(r: RowResult) -> bool:
    """A row that measured forwarding: the master up, the viewers in and seeing (nearly) every packet. On a
    starved machine (the receivers, or other work, beside the servers) a row says nothing about the server."""
    return r.master == "up" and r.connected >= 0.95 * r.viewers and r.missed_pct < 1.0


def verdict(results: list[RowResult], decoders: int) -> list[str]:
    out = [f"{r.topology} {r.viewers}: not valid (master {r.master}, {r.connected}/{r.viewers} connected, "
           f"{r.missed_pct:.1f} % missed; load {r.load:.1f})" for r in results if not valid(r)]
    results = [r for r in results if valid(r)]
    one = [r for r in results if r.topology == "1"]
    two = [r for r in results if r.topology != "1"]
    if one:
        worst = max(pct_per_viewer(r, decoders) for r in one)
        met = "met" if worst <= TARGET_PCT_PER_VIEWER else "NOT met"
        out.append(f"one node: at most {worst:.2f} % of a core per viewer (target <= {TARGET_PCT_PER_VIEWER} %, "
                   f"i.e. >= {TARGET_STREAMS_PER_CORE} streams per core): {met}")
    for r2 in two:
        r1 = next((r for r in one if r.viewers == r2.viewers), None)
        if r1 is None:
            continue
        delta = latency(r2, "latency_ms_p50") - latency(r1, "latency_ms_p50")
        edge = origin_per_edge(r2)
        local = pct_per_viewer(r1, decoders)
        edge_text = (f"placed {' '.join(f'{k}:{v}' for k, v in sorted(r2.placed.items()))}" if edge is None else
                     f"origin {edge:.2f} % per edge vs {local:.2f} % per local viewer: "
                     f"{'met' if edge <= local else 'NOT met'}")
        out.append(f"{r2.viewers} viewers, {r2.topology}: two nodes add {delta:+.0f} ms p50 "
                   f"(target <= {TARGET_CASCADE_MS:.0f}); " + edge_text)
    return out


def layouts(text: str) -> list[str]:
    out = [x for x in text.split(",") if x]
    for x in out:
        if x not in LAYOUTS:
            raise argparse.ArgumentTypeError(f"{x!r}: one of {', '.join(LAYOUTS)}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=lambda s: [int(x) for x in s.split(",") if x], default=[50, 100, 200])
    parser.add_argument("--topologies", type=layouts, default=["1", "2"],
                        help="1: one node; 2: origin A + edge B (viewers and decoders connect to B); 2split: every "
                             "other viewers' process connects to A, the others and the decoders to B; 2fill: all "
                             "connect to A, whose --node-capacity sends the rest to B")
    parser.add_argument("--node-capacity", type=int, default=None,
                        help="2fill: the nodes' --node-capacity (default: half the largest row)")
    parser.add_argument("--decoders", type=int, default=2, help="full decoding listening classrooms per row")
    parser.add_argument("--bitrate", type=int, default=1_000_000, help="the master camera's fixed bitrate")
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--per-process", type=int, default=25, help="light viewers per process")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--measure", type=float, default=10.0)
    parser.add_argument("--json", default=None)
    parser.add_argument("--keep", default=None, help="keep data and logs here")
    add_decoder_worker_options(parser)
    args = parser.parse_args()
    exit_on_sigterm()
    if run_decoder_worker(args):
        return
    results: list[RowResult] = []
    with tempfile.TemporaryDirectory(prefix="twinclass-broadcast-") as tmp:
        for topology in args.topologies:
            work = Path(args.keep or tmp) / f"nodes-{topology}"
            work.mkdir(parents=True, exist_ok=True)
            results += run_topology(args, topology, work)
    print()
    print(f"one master (moving detailed picture {args.size}, VP8 30 fps, {args.bitrate / 1e6:g} Mbps fixed, + mic) -> "
          f"light listening classrooms ({args.per_process} a process) and {args.decoders} decoding ones per row; "
          f"loopback, {os.cpu_count()} cores")
    print(HEAD)
    print("-" * len(HEAD))
    for r in results:
        print(line(r, args.decoders))
    print("CPU: CPU-s/s per node; %/viewer: (CPU - CPU with the master alone, all nodes) / (viewers + decoders); "
          "streams/core: extra forwarded Mbps / extra CPU;\ncomplete: viewers with no sequence gap since they "
          "joined; key: viewers that saw a keyframe start; missed: the share of packets they missed;\n"
          "placed: where the viewers ended up (after redirects); p50/p95: glass-to-glass at the decoders "
          "(dec: how many reported);\norigin %/edge: node A's CPU over the master-alone window, per edge node "
          "with viewers (when A has none); lag: mean event-loop lag per node (A/B);\nmaster: its publishing "
          "connection and socket; replaced: viewers whose socket or connection closed; errors: signaling error "
          "codes the servers sent\n(limit_*: an admission limit)")
    for text in verdict(results, args.decoders):
        print(text)
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ for r in results], indent=1))


if __name__ == "__main__":
    main()
