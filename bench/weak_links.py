"""Lessons on weak rural links: the demo lesson (master + rural-1..3), rural-1 behind an impaired line.

    .venv/bin/python bench/weak_links.py [--seconds 60] [--rows clean,loss3,rtt150,rate1m,all,burst10,blackout]

Per row: `twinclass serve` in its own process (fresh data dir, its demo lesson), then four
`twinclass classroom` processes (test pattern 640x360 30 fps + tone, `--stats-json`); rural-1 runs
with `--link SPEC` (user-space impairment of both directions; `--link none` in the clean row, so
every row goes through the same relay). The bench reads each stats file twice a second and keeps
each distinct rewrite (`updated_at`), so fps per ~1-s window comes from `frames_decoded` deltas
between the classroom's own rewrites; windows start 3 s after a remote's first frame (warm-up).

Reported per row, from what each classroom RECEIVES:
  rural-1 <- master   fps mean/min over the windows, freezes (longest), audio gaps (longest),
                      latency p50/p95, bitrate, tier (last; `*` when it changed during the row)
  rural-2 <- master   fps mean and bitrate: what the master SENDS, as a clean receiver sees it
  master <- rurals    fps mean from rural-1 / rural-2 / rural-3
  server CPU          CPU-seconds of the serve process per wall second over the row
  urban vs clean      rural-2 <- master fps and bitrate as a ratio to the clean row of the same run

Fields a classroom does not write (older terminals lack freezes, audio gaps, bitrate, tier) show
as "-", and targets that need them as n/a. Writes bench/results/weak_links.json, and
bench/results/weak_links.png (rural-1's fps over time per row) when matplotlib is installed.
Exits non-zero only when the bench itself fails, never for a missed target.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BIN, ROOT, cpu_seconds, exit_on_sigterm, free_port, read_json, serve, stop, token, wait_http

ROWS: dict[str, str] = {
    "clean": "none",
    "loss3": "loss=3%",
    "rtt150": "delay=75ms,jitter=10ms",
    "rate1m": "rate=1mbit",
    "all": "loss=3%,delay=75ms,jitter=10ms,rate=1mbit",
    "burst10": "burst=10%",
    "blackout": "blackout=20s+10s",
}
CLASSROOMS: list[tuple[str, str]] = [("master", "master"), ("rural-1", "rural"), ("rural-2", "rural"),
                                     ("rural-3", "rural")]
IMPAIRED = "rural-1"
CLEAN_RECEIVER = "rural-2"  # sees what the master sends, on a clean line
WARMUP_S = 3.0
SAMPLE_S = 0.5  # reading the files twice a second catches each of the classroom's ~1-s rewrites
RESULTS = ROOT / "bench" / "results"
END_FIELDS = ("video_fps_mean", "video_fps_min_1s", "freezes", "max_freeze_ms", "audio_gaps", "audio_max_gap_ms",
              "latency_ms_p50", "latency_ms_p95", "decode_errors", "counter_gaps", "frames_decoded",
              "frames_verified", "first_frame_s", "width", "height", "bitrate_kbps", "tier")

# -- sampling ------------------------------------------------------------------------------------


@dataclass
class Series:
    """One receiver's view of one remote, one entry per distinct rewrite of the stats file."""

    t: list[float] = field(default_factory=list)  # seconds since the classrooms were started (bench clock)
    updated: list[float] = field(default_factory=list)  # the file's updated_at (the classroom's clock)
    frames: list[int | None] = field(default_factory=list)  # frames_decoded; None: remote not listed
    bitrate: list[float | None] = field(default_factory=list)
    tier: list[str | None] = field(default_factory=list)


@dataclass
class Receiver:
    classroom: str
    stats_path: Path
    proc: subprocess.Popen[bytes]
    last_updated: float | None = None
    last: dict[str, Any] | None = None  # the last stats file read
    cpu0: float = 0.0
    cpu: float | None = None  # CPU-seconds per wall second over the row
    series: dict[str, Series] = field(default_factory=dict)

    def sample(self, t: float) -> None:
        data = read_json(self.stats_path)
        if not isinstance(data, dict) or data.get("updated_at") == self.last_updated:
            return
        self.last_updated = data.get("updated_at")
        self.last = data
        remotes: dict[str, dict[str, Any]] = data.get("remotes") or {}
        for rid in set(remotes) | set(self.series):
            s = self.series.setdefault(rid, Series())
            r = remotes.get(rid)
            s.t.append(round(t, 2))
            s.updated.append(float(data["updated_at"]))
            s.frames.append(r.get("frames_decoded") if r else None)
            s.bitrate.append(r.get("bitrate_kbps") if r else None)
            s.tier.append(r.get("tier") if r else None)


def windows(s: Series) -> list[tuple[float, float]]:
    """(t, fps) per interval between consecutive rewrites, from WARMUP_S after the remote's first frame.
    A remote missing from a rewrite decodes nothing in it; a counter that went back (a new session)
    counts from zero."""
    first = next((i for i, f in enumerate(s.frames) if f), None)
    if first is None:
        return []
    out: list[tuple[float, float]] = []
    prev = s.frames[first] or 0
    for i in range(first + 1, len(s.frames)):
        f = s.frames[i]
        if f is None:
            delta = 0
        else:
            delta = f - prev if f >= prev else f
            prev = f
        dt = s.updated[i] - s.updated[i - 1]
        if s.t[i - 1] >= s.t[first] + WARMUP_S and dt > 0:
            out.append((s.t[i], delta / dt))
    return out


def summarise(rx: Receiver, remote: str, final: dict[str, Any] | None) -> dict[str, Any]:
    s = rx.series.get(remote, Series())
    w = windows(s)
    fps = [f for _, f in w]
    warm = s.t[next((i for i, f in enumerate(s.frames) if f), 0)] + WARMUP_S if s.t else 0.0
    rates = [b for t, b in zip(s.t, s.bitrate, strict=True) if b is not None and t >= warm]
    tiers = [x for x in s.tier if x is not None]
    end = ((final or {}).get("remotes") or {}).get(remote) or ((rx.last or {}).get("remotes") or {}).get(remote) or {}
    return {
        "fps_mean": statistics.fmean(fps) if fps else 0.0,
        "fps_min": min(fps) if fps else 0.0,
        "windows": len(fps),
        "kbps_mean": statistics.fmean(rates) if rates else None,
        "tier_last": tiers[-1] if tiers else None,
        "tier_changes": sum(a != b for a, b in itertools.pairwise(tiers)),
        "tiers_seen": sorted(set(tiers)),
        "end": {k: end.get(k) for k in END_FIELDS},
        "fps_series": [[t, round(f, 2)] for t, f in w],
    }


# -- one row -------------------------------------------------------------------------------------


def run_row(name: str, spec: str, seconds: float, size: str, tmp: Path) -> dict[str, Any]:
    row_dir = tmp / name
    row_dir.mkdir(parents=True)
    data = row_dir / "var"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    logs: list[IO[bytes]] = []

    def log(label: str) -> IO[bytes]:
        f = open(row_dir / f"{label}.log", "wb")  # closed at the end of the row
        logs.append(f)
        return f

    server = serve(data, port, log("serve"))
    receivers: list[Receiver] = []
    try:
        wait_http(url + "/healthz", timeout=60)
        tokens = {c: token(data, "--lesson", "demo", "--classroom", c, "--role", role) for c, role in CLASSROOMS}
        t_launch = time.monotonic()
        for c, _ in CLASSROOMS:
            stats = row_dir / f"{c}.json"
            args = [str(BIN / "twinclass"), "classroom", "--server", url, "--token", tokens[c], "--size", size,
                    "--stats-json", str(stats), "--log-level", "WARNING",
                    "--duration", str(seconds + 120)]  # a safety net: the bench stops them by PID
            if c == IMPAIRED:
                args += ["--link", spec]
            proc = subprocess.Popen(args, cwd=str(ROOT), stdout=log(c), stderr=subprocess.STDOUT)
            receivers.append(Receiver(c, stats, proc))
        # the row starts once every classroom writes statistics (connected to the server)
        deadline = time.monotonic() + 60
        while not all(r.stats_path.exists() for r in receivers):
            if time.monotonic() > deadline or any(r.proc.poll() is not None for r in receivers):
                raise RuntimeError(f"row {name}: classrooms did not start (logs in {row_dir})")
            time.sleep(0.1)
        t0 = time.monotonic()
        c0 = cpu_seconds(server.pid)
        for r in receivers:
            r.cpu0 = cpu_seconds(r.proc.pid)
        while (now := time.monotonic()) < t0 + seconds:
            for r in receivers:
                r.sample(now - t_launch)
            time.sleep(max(0.0, min(SAMPLE_S, t0 + seconds - time.monotonic())))
        wall = time.monotonic() - t0
        cpu = (cpu_seconds(server.pid) - c0) / wall
        for r in receivers:
            r.cpu = (cpu_seconds(r.proc.pid) - r.cpu0) / wall
        stop([r.proc for r in receivers], timeout=15)  # each writes its end-of-run statistics on SIGTERM
    finally:
        stop([r.proc for r in receivers] + [server], timeout=15)
        for f in logs:
            f.close()

    out: dict[str, Any] = {"link": spec, "seconds": seconds, "server_cpu": cpu,
                           "startup_s": round(t0 - t_launch, 2),
                           "loadavg_after": _loadavg(), "receivers": {}}
    for r in receivers:
        final = read_json(r.stats_path)
        if not isinstance(final, dict):
            final = None
        remotes = sorted(set(r.series) | set((final or {}).get("remotes") or {}))
        out["receivers"][r.classroom] = {
            "exit_code": r.proc.returncode,
            "cpu": r.cpu,
            "link": (final or r.last or {}).get("link"),
            "link_stats": (final or r.last or {}).get("link_stats"),
            "remotes": {rid: summarise(r, rid, final) for rid in remotes},
        }
    return out


# -- report --------------------------------------------------------------------------------------


def _loadavg() -> list[float] | None:
    """The machine's 1/5/15-min load: other people's work on the shared cores shows here."""
    with contextlib.suppress(OSError):
        return [round(x, 2) for x in os.getloadavg()]
    return None


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.0f}%"


def _n(v: Any, fmt: str = ".0f") -> str:
    return "-" if v is None else format(v, fmt)


def _remote(row: dict[str, Any], receiver: str, remote: str) -> dict[str, Any]:
    return ((row["receivers"].get(receiver) or {}).get("remotes") or {}).get(remote) or {}


def urban(row: dict[str, Any]) -> tuple[float | None, float | None]:
    """What the master sends, as the clean receiver gets it: fps mean and bitrate."""
    m = _remote(row, CLEAN_RECEIVER, "master")
    return (m.get("fps_mean"), m.get("kbps_mean")) if m else (None, None)


def ratios(row: dict[str, Any], clean: dict[str, Any] | None) -> tuple[float | None, float | None]:
    if clean is None:
        return None, None
    (f, k), (fc, kc) = urban(row), urban(clean)
    return (f / fc if f is not None and fc else None, k / kc if k is not None and kc else None)


def table(results: dict[str, dict[str, Any]]) -> list[str]:
    head = (f"{'row':<9} | {'rural-1 <- master: fps mean/min':>15} {'freezes(max ms)':>15} {'audio gaps(max ms)':>18}"
            f" {'p50/p95 ms':>10} {'kbps':>5} {'tier':>6} | {'rural-2 <- master fps, kbps':>27}"
            f" | {'master <- r1/r2/r3 fps':>22} | {'server CPU':>10} | {'urban fps/kbps vs clean':>23}")
    lines = [head, "-" * len(head)]
    clean = results.get("clean")
    for name, row in results.items():
        r1 = _remote(row, IMPAIRED, "master")
        e = r1.get("end") or {}
        tier = r1.get("tier_last")
        tier_s = "-" if tier is None else tier + ("*" if r1.get("tier_changes") else "")
        f2, k2 = urban(row)
        mfps = "/".join(_n(_remote(row, "master", c).get("fps_mean"), ".1f") for c, _ in CLASSROOMS[1:])
        fr, kr = ratios(row, clean)
        lines.append(
            f"{name:<9} | {_n(r1.get('fps_mean'), '.1f') + '/' + _n(r1.get('fps_min'), '.1f'):>31}"
            f" {_n(e.get('freezes')) + '(' + _n(e.get('max_freeze_ms')) + ')':>15}"
            f" {_n(e.get('audio_gaps')) + '(' + _n(e.get('audio_max_gap_ms')) + ')':>18}"
            f" {_n(e.get('latency_ms_p50')) + '/' + _n(e.get('latency_ms_p95')):>10}"
            f" {_n(r1.get('kbps_mean')):>5} {tier_s:>6}"
            f" | {_n(f2, '.1f') + ', ' + _n(k2):>27} | {mfps:>22} | {row['server_cpu']:>10.2f}"
            f" | {_pct(fr) + ' / ' + _pct(kr):>23}")
    return lines


def footer(results: dict[str, dict[str, Any]]) -> list[str]:
    """Where the cores went: each classroom's CPU, and the machine's load (others' work included)."""
    parts = []
    for name, row in results.items():
        cpus = "/".join(_n(row["receivers"][c].get("cpu"), ".2f") for c, _ in CLASSROOMS)
        load = row.get("loadavg_after")
        busy = load is not None and load[0] > (os.cpu_count() or 1)
        parts.append(f"{name} {cpus} (load {_n(load and load[0], '.1f')}{'!' if busy else ''})")
    return ["classroom CPU-s/s master/r1/r2/r3, machine 1-min load after the row: " + "; ".join(parts),
            "(load! = more runnable work than cores: other people's jobs competed with this row, its fps and the"
            " ratios to clean are not clean figures)"]


def targets(results: dict[str, dict[str, Any]]) -> list[str]:
    row = results.get("all")
    if row is None:
        return ["targets: need the 'all' row (and 'clean' for the urban ratios)"]
    r1 = _remote(row, IMPAIRED, "master")
    e = r1.get("end") or {}

    def mark(ok: bool | None) -> str:
        return "n/a" if ok is None else "PASS" if ok else "FAIL"

    gap, freeze = e.get("audio_max_gap_ms"), e.get("max_freeze_ms")
    fr, kr = ratios(row, results.get("clean"))
    checks = [
        (f"rural-1 audio: no gap > 200 ms (longest {_n(gap)})", None if gap is None else gap <= 200),
        (f"rural-1 video >= 15 fps in every window (min {r1.get('fps_min', 0):.1f})", r1.get("fps_min", 0) >= 15),
        (f"rural-1 no freeze > 1 s (longest {_n(freeze)} ms)", None if freeze is None else freeze <= 1000),
        (f"urban fps >= 95 % of clean ({_pct(fr)})", None if fr is None else fr >= 0.95),
        (f"urban bitrate >= 95 % of clean ({_pct(kr)})", None if kr is None else kr >= 0.95),
    ]
    return ["targets at 'all' (loss=3%,delay=75ms,jitter=10ms,rate=1mbit): "
            + "; ".join(f"{text} {mark(ok)}" for text, ok in checks)]


def plot(results: dict[str, dict[str, Any]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(10, 5))
    for name, row in results.items():
        pts = _remote(row, IMPAIRED, "master").get("fps_series") or []
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=f"{name} ({row['link']})")
    ax.axhline(15, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("s since the classrooms started")
    ax.set_ylabel("fps (1-s windows)")
    ax.set_title("rural-1 <- master, per link")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds per row (default 60)")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {', '.join(ROWS)}")
    parser.add_argument("--size", default="640x360", help="test pattern size of every classroom")
    parser.add_argument("--out", type=Path, default=RESULTS / "weak_links.json")
    args = parser.parse_args()
    exit_on_sigterm()
    names = [n.strip() for n in args.rows.split(",") if n.strip()]
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        parser.error(f"unknown rows {', '.join(unknown)} (known: {', '.join(ROWS)})")

    tmp = Path(tempfile.mkdtemp(prefix="twinclass-weak-links-"))
    print(f"{len(names)} rows of {args.seconds:.0f} s (+ start-up), about {len(names) * (args.seconds + 10):.0f} s;"
          f" work files in {tmp}", file=sys.stderr)
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        print(f"  {name}: {IMPAIRED} --link {ROWS[name]} ...", file=sys.stderr, flush=True)
        results[name] = run_row(name, ROWS[name], args.seconds, args.size, tmp)
    shutil.rmtree(tmp, ignore_errors=True)  # kept (with the logs) when a row raised

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"seconds": args.seconds, "size": args.size, "cores": os.cpu_count(),
                                    "warmup_s": WARMUP_S, "rows": results}, indent=1))
    print()
    print(f"demo lesson: master + rural-1..3, test pattern {args.size} 30 fps + tone each, loopback,"
          f" {os.cpu_count()} cores shared by the server and the 4 classrooms; {args.seconds:.0f} s a row,"
          f" fps over ~1-s windows after {WARMUP_S:.0f} s warm-up; '-': not in the classroom's statistics")
    for line in table(results) + footer(results) + targets(results):
        print(line)
    png = args.out.with_suffix(".png")
    print(f"wrote {args.out}" + (f" and {png}" if plot(results, png) else " (no plot: matplotlib not installed)"))


if __name__ == "__main__":
    main()
