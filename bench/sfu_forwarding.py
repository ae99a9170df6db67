"""Forwarding cost on a realistic stream: one publisher of a moving, detailed picture -> many subscribers.

    .venv/bin/python bench/sfu_forwarding.py [--rows 1.5@640x480,1.0@1280x720] [--light 32] [--decoders 2]
        [--variants classic,slim,slim:uvloop] [--loop asyncio] [--repeat 1] [--profile DIR]

The full run (6 rows, classic against slim:uvloop) takes about 11 minutes; `--rows 1.5@640x480` is
the quick one.

Each row is a fixed publisher bitrate (Mbps) and size. Per row and server variant, in their own
processes: `twinclass serve` (recorder off, `--forward-path PATH`, `--event-loop LOOP`), the
publisher (`bench/realistic_source.py`: the test pattern's rows over a moving texture with grain,
VP8 at a fixed bitrate), `--decoders` full observers (`twinclass classroom` code: every frame
decoded and its pattern checked: fps, unreadable frames, glass-to-glass latency) and `--light`
light observers (`bench/light_receiver.py`: real ICE/DTLS-SRTP, RTP only counted) in processes of
at most 16.

Two windows per run: B with every observer (started together with the publisher: on this loaded
2-core machine a publisher's connection did not always outlive a long run), then A, once the light
observers have left, with the decoding ones only. Rates come
from the server's own counters (`/metrics`: RTP bytes and packets received from classrooms and
forwarded to subscribers) and its CPU time (/proc). The marginal cost of a subscriber is
(CPU_B - CPU_A) / light; per forwarded packet (CPU_B - CPU_A) / (pkt/s out_B - pkt/s out_A).
Variants run one after the other within each row, so they share the machine's load of the moment
(the load average is printed per row). `--profile DIR` runs py-spy on the server during window B
(flame graph SVG and a top-N table of the functions with most own time).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ROOT,
    add_decoder_worker_options,
    cpu_seconds,
    decoder_worker_command,
    exit_on_sigterm,
    free_port,
    read_json,
    run_decoder_worker,
    scrape,
    serve,
    stop,
    token,
    wait_http,
)
from bench.profile_server import profile_top, record_profile

DEFAULT_ROWS = "0.5@640x480,1.0@640x480,1.5@640x480,0.5@1280x720,1.0@1280x720,1.5@1280x720"
LIGHT_PER_PROCESS = 16
# many clients from one address; full streams to all (a light observer that falls behind on a loaded machine
# reports loss, and a server-made lower tier would put a decoder and an encoder into the measured process)
SERVER_OPTIONS = ["--max-sockets-per-address", "1000", "--max-joins-per-second", "200", "--join-burst", "400",
                  "--no-tiers"]


@dataclass
class Row:
    mbps: float
    width: int
    height: int

    @classmethod
    def parse(cls, text: str) -> Row:
        rate, size = text.split("@")
        w, h = size.split("x")
        return cls(float(rate), int(w), int(h))

    def __str__(self) -> str:
        return f"{self.mbps:g} Mbps {self.width}x{self.height}"


@dataclass
class Window:
    cpu: float  # server CPU-s per s
    in_mbps: float
    in_pps: float
    out_pps: float
    out_mbps: float


def counters(metrics_url: str) -> tuple[float, float, float, float]:
    m = scrape(metrics_url)
    return (m.get("twinclass_rtp_received_bytes_total", 0.0), m.get("twinclass_rtp_received_packets_total", 0.0),
            m.get("twinclass_rtp_forwarded_bytes_total", 0.0), m.get("twinclass_rtp_forwarded_packets_total", 0.0))


def window(pid: int, metrics_url: str, seconds: float) -> Window:
    c0, m0, t0 = cpu_seconds(pid), counters(metrics_url), time.monotonic()
    time.sleep(seconds)
    c1, m1, t1 = cpu_seconds(pid), counters(metrics_url), time.monotonic()
    dt = t1 - t0
    return Window(cpu=(c1 - c0) / dt, in_mbps=(m1[0] - m0[0]) * 8 / dt / 1e6, in_pps=(m1[1] - m0[1]) / dt,
                  out_mbps=(m1[2] - m0[2]) * 8 / dt / 1e6, out_pps=(m1[3] - m0[3]) / dt)


def wait_light(stats_files: list[Path], want: int, timeout: float = 40) -> int:
    deadline = time.monotonic() + timeout
    connected = 0
    while time.monotonic() < deadline:
        connected = sum(int((read_json(p) or {}).get("connected", 0)) for p in stats_files)
        if connected >= want:
            break
        time.sleep(0.5)
    return connected


def run_one(args: argparse.Namespace, row: Row, variant: str, work: Path) -> dict[str, Any]:
    """One server variant on one row: windows A and B, the decoders' view, the load average."""
    data = work / f"var-{variant}"
    port, mport = free_port(), free_port()
    url, metrics_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{mport}/metrics"
    path, _, loop = variant.partition(":")
    extra = ["--metrics-port", str(mport), "--log-level", "WARNING", *SERVER_OPTIONS, "--event-loop", loop or args.loop]
    if path != "default":
        extra += ["--forward-path", path]
    procs: list[subprocess.Popen[bytes]] = []
    logs = [open(work / f"{name}.log", "wb") for name in ("server", "publisher", "decoders", "light")]
    server = serve(data, port, logs[0], extra=extra)
    quiet: dict[str, Any] = {"cwd": str(ROOT), "stdout": logs[1], "stderr": subprocess.STDOUT}
    try:
        wait_http(url + "/healthz")
        master = token(data, "--lesson", "demo", "--classroom", "master", "--role", "master")
        procs.append(subprocess.Popen([sys.executable, str(ROOT / "bench" / "realistic_source.py"), "--server", url,
                                       "--token", master, "--size", f"{row.width}x{row.height}",
                                       "--bitrate", str(int(row.mbps * 1e6))], **quiet))
        quiet["stdout"] = logs[2]
        total = args.warmup * 3 + args.measure * 2 + 60
        decoded = work / f"decoders-{variant}.json"
        if args.decoders:
            tokens = [token(data, "--lesson", "demo", "--classroom", f"obs-{i}", "--role", "observer")
                      for i in range(args.decoders)]
            procs.append(subprocess.Popen(decoder_worker_command(__file__, url, tokens, total, decoded), **quiet))
        stats_files = []
        quiet["stdout"] = logs[3]
        light_procs = []
        for i in range(0, args.light, LIGHT_PER_PROCESS):
            k = min(LIGHT_PER_PROCESS, args.light - i)
            stats_files.append(work / f"light-{variant}-{i}.json")
            light_procs.append(subprocess.Popen(  # niced: load generators give way to the server and publisher
                ["nice", "-n", "5", sys.executable, str(ROOT / "bench" / "light_receiver.py"), "--server", url,
                 "--secret-file", str(data / "token-secret"), "--lesson", "demo", "--observers", str(k),
                 "--stats-json", str(stats_files[-1]), "--seconds", str(total)], **quiet))
        procs += light_procs
        connected = wait_light(stats_files, args.light) if args.light else 0
        time.sleep(args.warmup)
        profile = None
        if args.profile:
            out = Path(args.profile) / f"{row.mbps:g}mbps-{row.width}x{row.height}-{variant.replace(':', '-')}"
            profile = record_profile(server.pid, out, args.measure)
        b = window(server.pid, metrics_url, args.measure)
        if profile is not None:
            profile.wait(timeout=60)
        stop(light_procs)  # then window A: the same lesson without the light observers
        time.sleep(2)
        a = window(server.pid, metrics_url, args.measure)
        load = os.getloadavg()[0]
        seen: list[dict[str, Any]] = []
        if args.decoders:
            procs[1].send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                procs[1].wait(timeout=20)
            seen = read_json(decoded) or []
        return {"a": a, "b": b, "connected": connected, "load": load, "seen": seen}
    finally:
        stop([*procs, server])
        for log in logs:
            log.close()


def summary(row: Row, variant: str, r: dict[str, Any], light: int, decoders: int) -> dict[str, Any]:
    a, b = r["a"], r["b"]
    n = max(1, r["connected"])
    seen = r["seen"]
    fps = [s.get("video_fps", 0.0) for s in seen] + [0.0] * (decoders - len(seen))
    p50 = [s["latency_ms_p50"] for s in seen if s.get("latency_ms_p50") is not None]
    extra_pps = b.out_pps - a.out_pps
    extra_cpu = b.cpu - a.cpu
    return {
        "row": str(row), "variant": variant, "load": r["load"], "in_mbps": b.in_mbps, "in_pps": b.in_pps,
        "subs": decoders + r["connected"], "out_pps": b.out_pps, "out_mbps": b.out_mbps, "cpu": b.cpu,
        "per_sub_pct": 100 * extra_cpu / n,
        "us_per_pkt": 1e6 * extra_cpu / extra_pps if extra_pps > 0 else float("nan"),
        "cpu_per_mbps": extra_cpu / (b.out_mbps - a.out_mbps) if b.out_mbps > a.out_mbps else float("nan"),
        "fps_min": min(fps) if fps else float("nan"),
        "lat50": statistics.median(p50) if p50 else float("nan"),
        "unreadable": sum(int(s.get("decode_errors", 0)) for s in seen),
        "light": light,
    }


HEAD = (f"{'row':<18} {'variant':<12} {'load':>5} | {'in Mbps':>7} {'in pkt/s':>8} | {'subs':>4} {'out pkt/s':>9} |"
        f" {'CPU-s/s':>7} {'%/sub':>6} {'µs/pkt':>6} {'CPU/Mbps':>8} {'streams/core':>12} |"
        f" {'fps min':>7} {'p50 ms':>6} {'bad':>3}")


def line(s: dict[str, Any]) -> str:
    per_core = 1.0 / s["cpu_per_mbps"] if s["cpu_per_mbps"] > 0 else float("nan")  # 1-Mbps streams per core
    return (f"{s['row']:<18} {s['variant']:<12} {s['load']:>5.2f} | {s['in_mbps']:>7.2f} {s['in_pps']:>8.0f} |"
            f" {s['subs']:>4} {s['out_pps']:>9.0f} | {s['cpu']:>7.3f} {s['per_sub_pct']:>6.2f} {s['us_per_pkt']:>6.1f}"
            f" {s['cpu_per_mbps']:>8.4f} {per_core:>12.0f} | {s['fps_min']:>7.1f} {s['lat50']:>6.0f}"
            f" {s['unreadable']:>3}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default=DEFAULT_ROWS, help="MBPS@WxH, comma-separated")
    parser.add_argument("--light", type=int, default=32, help="light (counting) observers, window B only")
    parser.add_argument("--decoders", type=int, default=2, help="decoding observers, in both windows")
    parser.add_argument("--variants", default="classic,slim:uvloop",
                        help="servers to compare: PATH[:LOOP], PATH a --forward-path (or default), LOOP an "
                             "--event-loop (default --loop), e.g. classic,slim,slim:uvloop")
    parser.add_argument("--loop", default="asyncio", choices=["asyncio", "uvloop"],
                        help="the server's event loop where a variant names none")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--measure", type=float, default=6.0)
    parser.add_argument("--profile", default=None, help="directory for py-spy flame graphs of window B")
    parser.add_argument("--json", default=None, help="also write every result here")
    parser.add_argument("--keep", default=None, help="keep each run's data and logs (server, publisher, ...) here")
    add_decoder_worker_options(parser)
    args = parser.parse_args()
    exit_on_sigterm()
    if run_decoder_worker(args):
        return

    rows = [Row.parse(r) for r in args.rows.split(",") if r]
    variants = [v for v in args.variants.split(",") if v]
    each = 3 + 3 * args.warmup + 2 * args.measure + args.light * 0.3 + 8
    print(f"{len(rows)} row(s) x {len(variants)} variant(s) x {args.repeat}: about "
          f"{len(rows) * len(variants) * args.repeat * each / 60:.0f} min", file=sys.stderr)
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="twinclass-fwd-") as tmp_dir:
        tmp = args.keep or tmp_dir
        for rep in range(args.repeat):
            for row in rows:
                for variant in variants:
                    print(f"  {row} {variant} (run {rep + 1}) ...", file=sys.stderr, flush=True)
                    work = Path(tmp) / f"{rep}-{row.mbps:g}-{row.width}-{variant.replace(':', '-')}"
                    work.mkdir()
                    s = summary(row, variant, run_one(args, row, variant, work), args.light, args.decoders)
                    print("   ", line(s), file=sys.stderr, flush=True)
                    results.append(s)
    print()
    print(f"one publisher (moving detailed picture, VP8 30 fps, fixed bitrate) -> {args.decoders} decoding + "
          f"{args.light} light observers, loopback, {os.cpu_count()} cores, server loop {args.loop} where a variant "
          "names none")
    print(HEAD)
    print("-" * len(HEAD))
    for s in results:
        print(line(s))
    print("in: what the server received from the publisher (window B); %/sub, µs/pkt, CPU/Mbps: marginal, "
          "(window B - window A) / light observers, / extra forwarded pkt/s, / extra forwarded Mbps;\n"
          "streams/core: 1-Mbps streams one core forwards at that marginal cost; fps min, p50 (glass to glass) "
          "and bad (unreadable frames) at the decoding observers")
    if args.repeat > 1:
        print("\nmedian (min) over runs:")
        for row in rows:
            for variant in variants:
                mine = [s for s in results if s["row"] == str(row) and s["variant"] == variant]
                us = [s["us_per_pkt"] for s in mine]
                pct = [s["per_sub_pct"] for s in mine]
                print(f"  {row!s:<18} {variant:<12} µs/pkt {statistics.median(us):.1f} ({min(us):.1f})  "
                      f"%/sub {statistics.median(pct):.2f} ({min(pct):.2f})")
    if args.profile:
        for path in sorted(Path(args.profile).glob("*.txt")):
            print(f"\npy-spy, window B, {path.stem}: functions with most own time")
            print(profile_top(path, 15))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
