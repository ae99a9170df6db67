"""What a light viewer costs its own process: bench/light_receiver.py's receive paths side by side.

    nice -n 5 .venv/bin/python bench/light_receiver_cost.py [--viewers 25] [--window 20] [--warmup 5] \\
        [--variants aiortc:asyncio,aiortc:uvloop,wire:asyncio,wire:uvloop] [--profile DIR] [--keep DIR]

One `twinclass serve` and the master, as in `bench/broadcast.py`'s one-node rows (a moving detailed
picture, VP8 at a fixed `--bitrate`, + mic; admission limits raised, tiers off). Then, one variant
after the other, one `bench/light_receiver.py --role listener` process with N viewers (a variant is
its `--receive-path` and `--event-loop`): once all N are connected and after `--warmup`, its CPU
(from /proc) and the packets it counted over `--window` seconds give % of a core per viewer and µs
per received packet; also the kbps per viewer, the share of packets missed (sequence gaps), viewers
that saw a keyframe, the machine's load and the server's CPU in the same window (the server's cost
does not depend on the receivers' path: a check that the variants got the same stream).
`--profile DIR`: py-spy flame graphs of each variant's window (`bench/profile_server.py`) and the
functions with most own time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.broadcast import Run
from bench.common import cpu_seconds, cpu_times, exit_on_sigterm, read_json, stop
from bench.profile_server import profile_top, record_profile
from bench.sfu_forwarding import wait_light


@dataclass
class Result:
    variant: str
    viewers: int
    connected: int
    cpu: float  # CPU-s/s of the receivers' process
    system: float  # of which in the kernel (system calls: the sockets, epoll)
    pps: float  # packets/s it counted
    kbps_per_viewer: float
    missed_pct: float
    keyframed: int
    server_cpu: float
    load: float

    @property
    def pct_per_viewer(self) -> float:
        return 100 * self.cpu / max(1, self.connected)

    @property
    def us_per_packet(self) -> float:
        return 1e6 * self.cpu / self.pps if self.pps else float("nan")


def measure(run: Run, variant: str, n: int, args: argparse.Namespace) -> Result:
    path, loop = variant.split(":")
    print(f"  {variant}, {n} viewers ...", file=sys.stderr, flush=True)
    proc = run.add_viewers(run.viewers + n, extra=["--receive-path", path, "--event-loop", loop])[0]
    stats = run.crowd_files[-1]
    server = run.nodes[0].proc.pid
    try:
        connected = wait_light([stats], n, timeout=60 + n)
        time.sleep(args.warmup)
        a, ca, sa, at = read_json(stats) or {}, cpu_times(proc.pid), cpu_seconds(server), time.monotonic()
        profile = None
        if args.profile:
            Path(args.profile).mkdir(parents=True, exist_ok=True)
            profile = record_profile(proc.pid, Path(args.profile) / f"light-{path}-{loop}-{n}", args.window)
        time.sleep(args.window)
        time.sleep(2.1)  # the crowd writes its stats every 2 s: the file read below is from within the window
        b, cb, sb, bt = read_json(stats) or {}, cpu_times(proc.pid), cpu_seconds(server), time.monotonic()
        if profile is not None:
            profile.wait(timeout=60)
        dt_stats = max(1e-3, float(b.get("updated_at", 0)) - float(a.get("updated_at", 0)))
        dt = bt - at
        packets = int(b.get("packets", 0)) - int(a.get("packets", 0))
        missed = int(b.get("packets_missed", 0))
        connected = int(b.get("connected", connected))
        return Result(variant, n, connected, cpu=(sum(cb) - sum(ca)) / dt, system=(cb[1] - ca[1]) / dt,
                      pps=packets / dt_stats,
                      kbps_per_viewer=(int(b.get("bytes", 0)) - int(a.get("bytes", 0))) * 8 / dt_stats / 1e3
                      / max(1, connected),
                      missed_pct=100 * missed / max(1, missed + int(b.get("packets", 0))),
                      keyframed=int(b.get("keyframed", 0)), server_cpu=(sb - sa) / dt, load=os.getloadavg()[0])
    finally:
        stop([proc])
        run.viewers -= n


HEAD = (f"{'variant':>15} {'viewers':>7} {'load':>5} | {'CPU':>6} {'sys':>4} {'%/viewer':>8} {'pkt/s':>6}"
        f" {'µs/packet':>9} |"
        f" {'kbps/viewer':>11} {'missed':>7} {'key':>4} | {'server CPU':>10}")


def line(r: Result) -> str:
    system = f"{100 * r.system / r.cpu:.0f}%" if r.cpu > 0 else "-"
    return (f"{r.variant:>15} {f'{r.connected}/{r.viewers}':>7} {r.load:>5.1f} | {r.cpu:>6.3f} {system:>4}"
            f" {r.pct_per_viewer:>8.2f}"
            f" {r.pps:>6.0f} {r.us_per_packet:>9.1f} | {r.kbps_per_viewer:>11.0f} {r.missed_pct:>6.2f}%"
            f" {r.keyframed:>4} | {r.server_cpu:>10.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=lambda s: [int(x) for x in s.split(",") if x], default=[25])
    parser.add_argument("--variants", type=lambda s: [x for x in s.split(",") if x],
                        default=["aiortc:asyncio", "aiortc:uvloop", "wire:asyncio", "wire:uvloop"],
                        help="receive path (wire|aiortc) : event loop (uvloop|asyncio), in the order run")
    parser.add_argument("--bitrate", type=int, default=1_000_000)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--profile", default=None, help="directory for py-spy flame graphs of each window")
    parser.add_argument("--keep", default=None, help="keep data and logs here")
    args = parser.parse_args()
    exit_on_sigterm()
    for variant in args.variants:
        path, _, loop = variant.partition(":")
        if path not in ("wire", "aiortc") or loop not in ("uvloop", "asyncio"):
            parser.error(f"--variants: {variant!r} is not PATH:LOOP (wire|aiortc : uvloop|asyncio)")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="twinclass-light-cost-") as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        run_args = argparse.Namespace(size=args.size, bitrate=args.bitrate, per_process=max(args.viewers),
                                      viewers=args.viewers, node_capacity=None)
        run = Run(run_args, "1", work)
        try:
            run.start()
            for n in args.viewers:
                for variant in args.variants:
                    results.append(measure(run, variant, n, args))
                    print("   ", line(results[-1]), file=sys.stderr, flush=True)
        finally:
            run.stop()
    print()
    print(f"light listening classrooms of one master ({args.size}, VP8 {args.bitrate / 1e6:g} Mbps fixed, + mic), "
          f"one process of N per variant; loopback, {os.cpu_count()} cores")
    print(HEAD)
    print("-" * len(HEAD))
    for r in results:
        print(line(r))
    print("variant: receive path : event loop; CPU: the receivers' process, CPU-s/s (sys: the kernel's share); "
          "%/viewer: CPU / viewers; "
          "µs/packet: CPU / packets counted;\nmissed: the share of packets missed since they joined; key: viewers "
          "that saw a keyframe; server CPU: the server in the same window")
    for n in args.viewers:
        rows = {r.variant: r for r in results if r.viewers == n}
        before, after = rows.get("aiortc:asyncio"), rows.get("wire:uvloop")
        if before and after and after.cpu > 0:
            ratio = before.us_per_packet / after.us_per_packet
            print(f"{n} viewers: wire:uvloop costs {after.us_per_packet:.1f} µs a packet against "
                  f"{before.us_per_packet:.1f} (aiortc:asyncio): {ratio:.1f}x less")
    if args.profile:
        for r in results:
            path, loop = r.variant.split(":")
            collapsed = Path(args.profile) / f"light-{path}-{loop}-{r.viewers}.txt"
            if collapsed.exists():
                print(f"\n{r.variant}, {r.viewers} viewers: most own time (py-spy, busy samples)")
                print(profile_top(collapsed, 12))


if __name__ == "__main__":
    main()
