"""Soak: a long lesson with 1 master + 8 rural classrooms + 30 observers against one `twinclass serve`.

    .venv/bin/python bench/soak.py [--minutes 10] [--observers 30] [--churn 3]

The server runs in its own process (fresh data dir, no demo lesson, no recorder, `--metrics-port`);
the bench creates a lesson "soak" (master, rural-1..8) through the API. Who is who:
  master          FULL terminal in this process (`ClassroomClient`, test pattern 320x240 10 fps + tone,
                  decoding all eight rurals); it conducts: every `--action-every` s it gives the floor
                  (to the first raised hand, else a rural in turn), takes it back, lowers a hand, or
                  turns courseware on or off (the terminal publishes no courseware track, so this moves
                  slots and signaling, not media)
  rural-1, -2     FULL terminals (`twinclass classroom`, same pattern), each in its own process
  rural-3..8      LIGHT clients (bench/light_receiver.py): publish a 160x120 5 fps pattern (and, with
                  --rural-audio, a tone), receive without decoding, raise and lower hands; one process
  30 observers    LIGHT receivers in a second process; every `--churn-every` s `--churn` of them leave
                  and as many new ones join
Every minute a row: the server's RSS, file descriptors, asyncio tasks and threads (its /metrics),
the forwarded bitrate over the minute, classrooms and observers live, the event loop's lag, and the
freezes (> 500 ms without a decoded frame while visible) the three full classrooms have seen so far.
At the end: growth of RSS and descriptors from minute 2 to the end (from the first row when the run
is shorter), the longest freeze, and PASS/FAIL against the targets (growth < 5 %, no freeze > 500 ms).
Writes bench/results/soak.json, and bench/results/soak.png (RSS and fds over time) when matplotlib is
installed. On a shared machine other work competes for the cores: the 1-min load is printed per row.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BIN, ROOT, cpu_seconds, exit_on_sigterm, free_port, read_json, scrape, serve, stop, wait_http
from classroom_client.cli import TOKEN_ENV
from classroom_client.session import ClassroomClient, ClientConfig
from classroom_client.sources import SourceSpec
from sfu.tokens import TokenIssuer

LESSON = "soak"
RURALS = [f"rural-{i}" for i in range(1, 9)]
FULL_RURALS = RURALS[:2]
LIGHT_RURALS = RURALS[2:]
RESULTS = ROOT / "bench" / "results"
FREEZE_TARGET_MS = 500.0
GROWTH_TARGET = 0.05


@dataclass
class Row:
    minute: float
    rss_mb: float
    fds: int
    tasks: int
    threads: int
    fwd_mbps: float
    rx_pps: float  # RTP packets/s the server received from the classrooms over the minute
    classrooms: int
    observers: int
    lag_ms: float
    freezes: int
    max_freeze_ms: float
    max_is_bound: bool
    server_cpu: float
    load1: float


Baseline = dict[str, tuple[int, float]]  # "<full classroom>/<remote>" -> (freezes, longest ms) at the start


def freeze_counts(stats_files: list[Path]) -> Baseline:
    out: Baseline = {}
    for path in stats_files:
        data = read_json(path)
        for rid, remote in ((data or {}).get("remotes") or {}).items():
            out[f"{path.stem}/{rid}"] = (int(remote.get("freezes") or 0), float(remote.get("max_freeze_ms") or 0.0))
    return out


def freezes(stats_files: list[Path], base: Baseline) -> tuple[int, float, bool]:
    """Freezes the full classrooms counted since `base` was taken (all remotes), the longest of them in ms,
    and whether that is only a bound: a terminal keeps a count and its longest freeze ever, so a new freeze
    no longer than one from the warm-up is known only to be at most that long."""
    count, longest, bound = 0, 0.0, False
    for key, (n, ms) in freeze_counts(stats_files).items():
        n0, ms0 = base.get(key, (0, 0.0))
        if n <= n0:
            continue
        count += n - n0
        if ms > ms0:
            longest = max(longest, ms)
        elif ms0 > longest:
            longest, bound = ms0, True
    return count, longest, bound


def create_lesson(url: str, admin: str) -> None:
    body = {"id": LESSON, "title": "Soak lesson", "subject": "英语", "record": False,
            "master": {"id": "master", "name": "Master classroom"},
            "rurals": [{"id": r, "name": f"Rural classroom {r[6:]}"} for r in RURALS]}
    req = urllib.request.Request(url + "/api/lessons", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {admin}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        if resp.status != 201:
            raise RuntimeError(f"creating the soak lesson: HTTP {resp.status}")


class Conductor:
    """The master's actions during the lesson: floor, hands, courseware."""

    def __init__(self, master: ClassroomClient, seed: int = 1) -> None:
        self.master = master
        self.rng = random.Random(seed)
        self.turn = 0
        self.actions: dict[str, int] = {}
        self.failed = 0

    async def act(self) -> None:
        step = self.turn % 4
        self.turn += 1
        hands = [str(h["classroom"]) for h in self.master.hands if h.get("classroom")]
        try:
            if step == 0:
                target = hands[0] if hands else RURALS[(self.turn // 4) % len(RURALS)]
                await self.master.give_floor(target)
                name = "give_floor"
            elif step == 1:
                await self.master.take_floor()
                name = "take_floor"
            elif step == 2:
                on = self.turn // 4 % 2 == 0
                await self.master.call("courseware", {"on": on})
                name = "courseware_on" if on else "courseware_off"
            else:
                if not hands:
                    return
                await self.master.call("lower_hand", {"classroom": self.rng.choice(hands)})
                name = "lower_hand"
        except Exception:  # the master reconnecting, say: counted, the lesson goes on
            self.failed += 1
            return
        self.actions[name] = self.actions.get(name, 0) + 1


def _row(t0: float, metrics: dict[str, float], prev: tuple[float, float, float, float] | None, stats_files: list[Path],
         base: Baseline, cpu: float) -> Row:
    now = time.monotonic()
    fwd = metrics.get("twinclass_rtp_forwarded_bytes_total", 0.0)
    rx = metrics.get("twinclass_rtp_received_packets_total", 0.0)
    mbps = cpu_share = pps = 0.0
    if prev is not None and now > prev[0]:
        mbps = (fwd - prev[1]) * 8 / (now - prev[0]) / 1e6
        cpu_share = (cpu - prev[2]) / (now - prev[0])
        pps = (rx - prev[3]) / (now - prev[0])
    count, longest, bound = freezes(stats_files, base)
    classrooms = metrics.get("twinclass_classrooms_live{role=master}", 0) + metrics.get(
        "twinclass_classrooms_live{role=rural}", 0)
    return Row(minute=round((now - t0) / 60, 2), rss_mb=round(metrics["process_resident_memory_bytes"] / 2**20, 1),
               fds=int(metrics["process_open_fds"]), tasks=int(metrics.get("twinclass_asyncio_tasks", 0)),
               threads=int(metrics.get("twinclass_process_threads", 0)), fwd_mbps=round(mbps, 2), rx_pps=round(pps),
               classrooms=int(classrooms), observers=int(metrics.get("twinclass_observers_live", 0)),
               lag_ms=round(metrics.get("twinclass_event_loop_lag_last_seconds", 0.0) * 1000, 1),
               freezes=count, max_freeze_ms=longest, max_is_bound=bound, server_cpu=round(cpu_share, 2),
               load1=round(os.getloadavg()[0], 1))


HEAD = (f"{'min':>5} {'RSS MB':>7} {'fds':>5} {'tasks':>6} {'thr':>4} {'fwd Mbps':>8} {'rx pkt/s':>8}"
        f" {'rooms':>5} {'obs':>4}"
        f" {'lag ms':>6} {'freezes':>7} {'max ms':>7} {'srv CPU':>7} {'load1':>5}")


def fmt(r: Row) -> str:
    return (f"{r.minute:>5.1f} {r.rss_mb:>7.1f} {r.fds:>5} {r.tasks:>6} {r.threads:>4} {r.fwd_mbps:>8.2f}"
            f" {r.rx_pps:>8.0f}"
            f" {r.classrooms:>5} {r.observers:>4} {r.lag_ms:>6.1f} {r.freezes:>7}"
            f" {('<=' if r.max_is_bound else '') + format(r.max_freeze_ms, '.0f'):>7} {r.server_cpu:>7.2f}"
            f" {r.load1:>5.1f}")


async def run_lesson(args: argparse.Namespace, url: str, metrics_url: str, issuer: TokenIssuer, work: Path,
                     procs: list[subprocess.Popen[bytes]], logs: list[IO[bytes]]) -> dict[str, Any]:
    def log(name: str) -> IO[bytes]:
        f = open(work / f"{name}.log", "wb")  # closed by main
        logs.append(f)
        return f

    stats_files = [work / "master.json"] + [work / f"{r}.json" for r in FULL_RURALS]
    w, h = (int(x) for x in args.size.split("x"))
    for r in FULL_RURALS:
        tok = issuer.mint(lesson=LESSON, classroom=r, name=r, role="rural", ttl_s=6 * 3600)
        procs.append(subprocess.Popen(
            [str(BIN / "twinclass"), "classroom", "--server", url, "--size", args.size,
             "--fps", str(args.fps), "--stats-json", str(work / f"{r}.json"), "--log-level", "WARNING",
             "--duration", str(args.minutes * 60 + 300)],  # a safety net: stopped by PID at the end
            cwd=str(ROOT), stdout=log(r), stderr=subprocess.STDOUT,
            env={**os.environ, TOKEN_ENV: tok}))  # not --token: a command line shows in `ps`
    light = [sys.executable, str(ROOT / "bench" / "light_receiver.py"), "--server", url,
             "--secret-file", str(args.data / "token-secret"), "--lesson", LESSON]
    # the light rurals' encoders in a process of their own: beside 30 receivers their 5 fps frames
    # came late (a starved sender, not the server), which the master counted as freezes
    procs.append(subprocess.Popen(
        [*light, "--rurals", ",".join(LIGHT_RURALS), "--stats-json", str(work / "light-rurals.json"),
         "--size", args.light_size, "--fps", str(args.light_fps), *([] if args.rural_audio else ["--no-rural-audio"])],
        cwd=str(ROOT), stdout=log("light-rurals"), stderr=subprocess.STDOUT))
    procs.append(subprocess.Popen(
        [*light, "--observers", str(args.observers), "--churn", str(args.churn), "--churn-every", str(args.churn_every),
         "--stats-json", str(work / "light.json")],
        cwd=str(ROOT), stdout=log("light"), stderr=subprocess.STDOUT))
    master = ClassroomClient(ClientConfig(
        server=url, token=issuer.mint(lesson=LESSON, classroom="master", name="master", role="master", ttl_s=6 * 3600),
        sources=SourceSpec(width=w, height=h, fps=args.fps), stats_json=work / "master.json"))
    master_task = asyncio.ensure_future(master.run())
    conductor = Conductor(master)

    # the lesson is under way once every classroom is in and the observers have joined
    deadline = time.monotonic() + 300
    while True:
        m = await asyncio.to_thread(scrape, metrics_url)
        live = m.get("twinclass_classrooms_live{role=rural}", 0) + m.get("twinclass_classrooms_live{role=master}", 0)
        if live == 1 + len(RURALS) and m.get("twinclass_observers_live", 0) >= args.observers:
            break
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise RuntimeError(f"the lesson did not fill up ({live} classrooms, "
                               f"{m.get('twinclass_observers_live')} observers); logs in {work}")
        await asyncio.sleep(1)

    print(HEAD, flush=True)
    t0 = time.monotonic()
    rows: list[Row] = []
    prev: tuple[float, float, float, float] | None = None
    base = freeze_counts(stats_files)  # freezes while everybody joined are not the soak's
    next_row = t0
    next_action = t0 + args.action_every
    end = t0 + args.minutes * 60
    while True:
        now = time.monotonic()
        if now >= next_row or now >= end:
            m = await asyncio.to_thread(scrape, metrics_url)
            cpu = cpu_seconds(procs[0].pid)
            rows.append(_row(t0, m, prev, stats_files, base, cpu))
            prev = (time.monotonic(), m.get("twinclass_rtp_forwarded_bytes_total", 0.0), cpu,
                    m.get("twinclass_rtp_received_packets_total", 0.0))
            print(fmt(rows[-1]), flush=True)
            next_row += 60
            if now >= end:
                break
        if procs[0].poll() is not None:
            raise RuntimeError(f"the server exited (code {procs[0].returncode}); logs in {work}")
        if now >= next_action:
            next_action += args.action_every
            await conductor.act()
        await asyncio.sleep(max(0.05, min(next_row, next_action, end) - time.monotonic()))

    master.request_stop()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(master_task, 15)
    return {"rows": [asdict(r) for r in rows], "actions": conductor.actions, "actions_failed": conductor.failed,
            "light": read_json(work / "light.json"), "light_rurals": read_json(work / "light-rurals.json"),
            "full": {p.stem: read_json(p) for p in stats_files}}


def verdict(rows: list[dict[str, Any]], observers: int) -> tuple[list[str], bool]:
    """Growth between rows of the same lesson size (every classroom in, every observer): fds and RSS
    follow the connections, so a row taken while clients were dropping out is not compared."""
    full = [r for r in rows if r["classrooms"] == 1 + len(RURALS) and r["observers"] >= observers]
    longest = max(r["max_freeze_ms"] for r in rows)
    bound = any(r["max_is_bound"] and r["max_freeze_ms"] == longest for r in rows)
    freeze_ok = longest <= FREEZE_TARGET_MS
    freeze_line = (f"  longest freeze on the full classrooms {'<= ' if bound else ''}{longest:.0f} ms"
                   f" (freezes: {rows[-1]['freezes']}): {'PASS' if freeze_ok else 'FAIL'}")
    base = next((r for r in full if r["minute"] >= 2), None)
    label = "minute 2"
    if base is None or base is full[-1]:
        base, label = (full[0], f"minute {full[0]['minute']:.0f} (fewer full rows after minute 2)") if full \
            else (None, "")
    if base is None or base is full[-1]:
        return ([f"growth: n/a (fewer than two rows with all {1 + len(RURALS)} classrooms and {observers} observers"
                 " in)", freeze_line], False)
    last = full[-1]
    rss = (last["rss_mb"] - base["rss_mb"]) / base["rss_mb"]
    fds = (last["fds"] - base["fds"]) / base["fds"]
    checks = [(f"RSS growth {rss * 100:+.1f} % ({base['rss_mb']:.0f} -> {last['rss_mb']:.0f} MB)", rss < GROWTH_TARGET),
              (f"fd growth {fds * 100:+.1f} % ({base['fds']} -> {last['fds']})", fds < GROWTH_TARGET)]
    lines = [f"growth from {label} to minute {last['minute']:.1f}, rows with the whole lesson in"
             f" ({len(full)} of {len(rows)}); targets: growth < 5 %, no freeze > {FREEZE_TARGET_MS:.0f} ms"]
    lines += [f"  {text}: {'PASS' if ok else 'FAIL'}" for text, ok in checks]
    lines.append(freeze_line)
    return lines, all(ok for _, ok in checks) and freeze_ok


def plot(rows: list[dict[str, Any]], path: Path) -> str:
    if importlib.util.find_spec("matplotlib") is None:
        return "no plot: matplotlib is not installed in this venv"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot([r["minute"] for r in rows], [r["rss_mb"] for r in rows], label="RSS MB")
    ax2 = ax.twinx()
    ax2.plot([r["minute"] for r in rows], [r["fds"] for r in rows], color="tab:orange", label="fds")
    ax.set_xlabel("minute")
    ax.set_ylabel("RSS MB")
    ax2.set_ylabel("file descriptors")
    fig.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return f"wrote {path}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--observers", type=int, default=30)
    parser.add_argument("--churn", type=int, default=3, help="observers replaced every --churn-every s")
    parser.add_argument("--churn-every", type=float, default=60.0)
    parser.add_argument("--action-every", type=float, default=10.0, help="seconds between the master's actions")
    parser.add_argument("--size", default="320x240", help="test pattern of the full classrooms")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--light-size", default="160x120", help="test pattern of the light rurals")
    parser.add_argument("--light-fps", type=int, default=5)
    parser.add_argument("--rural-audio", action="store_true",
                        help="light rurals publish a tone too (off by default: 2 cores cannot forward it all)")
    parser.add_argument("--out", type=Path, default=RESULTS / "soak.json")
    args = parser.parse_args()
    exit_on_sigterm()

    work = Path(tempfile.mkdtemp(prefix="twinclass-soak-"))
    args.data = work / "var"
    port, mport = free_port(), free_port()
    url, metrics_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{mport}/metrics"
    logs: list[IO[bytes]] = [open(work / "serve.log", "wb")]
    server = serve(args.data, port, logs[0], extra=["--no-demo", "--metrics-port", str(mport), "--log-level",
                                                    "WARNING"])
    procs = [server]
    print(f"soak: {args.minutes:g} min, master + {len(RURALS)} rurals ({len(FULL_RURALS)} full) + {args.observers}"
          f" observers, on {os.cpu_count()} cores; work files in {work}", file=sys.stderr, flush=True)
    try:
        wait_http(url + "/healthz", timeout=60)
        issuer = TokenIssuer((args.data / "token-secret").read_text().strip())
        create_lesson(url, issuer.mint_admin("soak bench"))
        result = asyncio.run(run_lesson(args, url, metrics_url, issuer, work, procs, logs))
    finally:
        stop(procs[1:], timeout=15)
        stop(procs[:1], timeout=15)
        for f in logs:
            f.close()
    lines, ok = verdict(result["rows"], args.observers)
    for line in lines:
        print(line)
    light = result.get("light") or {}
    print(f"master actions: {result['actions']} ({result['actions_failed']} failed); light clients: "
          f"{light.get('joins')} joins, {light.get('leaves')} left by churn, {light.get('failures')} failed joins,"
          f" {light.get('lost')} lost and replaced; receiving connections at the end {light.get('states')}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, **result,
                                    "pass": ok}, indent=1))
    print(f"wrote {args.out}; {plot(result['rows'], args.out.with_suffix('.png'))}")
    if ok:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"work files and logs kept in {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
