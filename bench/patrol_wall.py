"""What a patrol wall (巡课) costs the server: N live lessons, one wall watching all their cameras,
subscribed in full (every slot, every frame: the wall before issue 14) and in patrol mode (camera slots
only, keyframes only: `subscribe {"mode": "patrol"}`), in the same run.

    .venv/bin/python bench/patrol_wall.py [--lessons 20] [--rurals 3] [--size 320x240] [--fps 15]
        [--bitrate 500000] [--picture textured|pattern] [--measure 10] [--keep DIR]

In their own processes: `twinclass serve` (recorder off, tiers off, admission limits raised for many
clients from one address: `bench.sfu_forwarding.SERVER_OPTIONS`); the lessons' publishers, light
clients (`bench/light_receiver.py` LightClient: real ICE/DTLS-SRTP) publishing camera + mic as a master
or a rural classroom does (`--picture textured`: `bench/realistic_source.py`'s moving detailed picture at a
fixed `--bitrate`, so a keyframe costs what it costs on a real camera; `pattern`: the small test pattern),
`PUBLISHERS_PER_PROCESS` to a process; the wall: one light crowd (`light_receiver.py --observers N
--lesson l0,l1,...`), one observer per lesson, counting what arrives.

Three windows: publishers alone, + the full wall, + the patrol wall (the full one gone). Per window:
server CPU, what the server received from the publishers (their bitrate: what a keyframe request costs
a rural uplink shows here), keyframe requests (PLI) sent to them, and packets/s the server sent the wall (its
per-slot counters, `/api/stats`; the classrooms of a lesson also receive each other, as in a
lesson), and what the wall counted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, api_post, exit_on_sigterm, free_port, read_json, scrape, serve, stop, token, wait_http
from bench.light_receiver import LightClient, PublishSpec
from bench.realistic_source import TexturedPatternTrack, use_fixed_rate_vp8
from bench.sfu_forwarding import SERVER_OPTIONS, Window, wait_light, window
from classroom_client.encoders import install_publisher_encoders
from sfu.media.aiortc_adapter import use_host_addresses

PUBLISHERS_PER_PROCESS = 8


def lesson_body(i: int, rurals: int) -> dict[str, Any]:
    return {"id": f"wall-{i}", "title": f"patrol bench lesson {i}", "subject": "bench", "grade": "4",
            "master": {"id": f"m{i}", "name": f"master {i}"},
            "rurals": [{"id": f"r{i}-{j}", "name": f"rural {i}-{j}"} for j in range(rurals)], "record": False}


async def publishers(url: str, tokens: list[str], spec: PublishSpec, bitrate: int, out: Path) -> None:
    """Light publishers (camera + mic) until SIGTERM; `out` says how many are up (written every 2 s)."""
    use_host_addresses(["127.0.0.1"])
    install_publisher_encoders()
    if bitrate:
        use_fixed_rate_vp8(bitrate)
    clients = [LightClient(url, t, spec) for t in tokens]
    done = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, done.set)
    for c in clients:
        try:
            await c.start()
        except Exception as exc:
            print(f"publisher could not start: {exc}", flush=True)
    while not done.is_set():
        up = sum(bool(c.connections) and c.connections[0].connectionState == "connected" for c in clients)
        out.write_text(json.dumps({"connected": up, "of": len(clients)}))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 2.0)
    for c in clients:
        await c.close()


def plis(metrics_url: str) -> float:
    return scrape(metrics_url).get("twinclass_plis_sent_total", 0.0)


def to_wall(url: str, admin: str) -> int:
    """Packets the server has sent the wall's tiles so far (its per-slot counters, `/api/stats`)."""
    stats = api_post(url + "/api/stats", admin)
    return sum(int(slot.get("packets_out", 0)) for lesson in stats["lessons"].values()
               for key, slot in lesson["slots"].items() if key.startswith("observer-"))


def measured(pid: int, url: str, metrics_url: str, admin: str, seconds: float) -> tuple[Window, float, float]:
    """A window of the server's counters, the keyframe requests it sent publishers per second, and the
    packets per second it sent the wall."""
    p0, w0, t0 = plis(metrics_url), to_wall(url, admin), time.monotonic()
    w = window(pid, metrics_url, seconds)
    dt = time.monotonic() - t0
    return w, (plis(metrics_url) - p0) / dt, (to_wall(url, admin) - w0) / dt


def start_wall(args: argparse.Namespace, data: Path, url: str, mode: str, work: Path,
               log: Any) -> tuple[subprocess.Popen[bytes], Path]:
    stats = work / f"wall-{mode}.json"
    lessons = ",".join(f"wall-{i}" for i in range(args.lessons))
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "light_receiver.py"), "--server", url,
                             "--secret-file", str(data / "token-secret"), "--lesson", lessons,
                             "--observers", str(args.lessons), "--mode", mode, "--stats-json", str(stats)],
                            cwd=str(ROOT), stdout=log, stderr=subprocess.STDOUT)
    return proc, stats


def wall_rate(stats: Path, seconds: float) -> tuple[float, float]:
    """Packets/s and Mbps the wall received (its own count), over `seconds`."""
    s0 = read_json(stats) or {}
    time.sleep(seconds)
    s1 = read_json(stats) or {}
    return ((int(s1.get("packets", 0)) - int(s0.get("packets", 0))) / seconds,
            (int(s1.get("bytes", 0)) - int(s0.get("bytes", 0))) * 8 / seconds / 1e6)


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    data = work / "data"
    port, mport = free_port(), free_port()
    url, metrics_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{mport}/metrics"
    logs = {name: open(work / f"{name}.log", "wb") for name in ("server", "publishers", "wall")}
    server = serve(data, port, logs["server"], extra=["--metrics-port", str(mport), "--log-level", "WARNING",
                                                      *SERVER_OPTIONS])
    procs: list[subprocess.Popen[bytes]] = []
    try:
        wait_http(url + "/healthz", timeout=60)
        admin = token(data, "--role", "admin")
        tokens = []
        for i in range(args.lessons):
            body = api_post(url + "/api/lessons", admin, lesson_body(i, args.rurals))
            for room, role in [(body["master"]["id"], "master"), *[(r["id"], "rural") for r in body["rurals"]]]:
                tokens.append(token(data, "--lesson", body["id"], "--classroom", room, "--role", role))
        pub_stats = []
        for k in range(0, len(tokens), PUBLISHERS_PER_PROCESS):
            pub_stats.append(work / f"publishers-{k}.json")
            procs.append(subprocess.Popen(
                [sys.executable, __file__, "--publishers-worker", url, "--tokens",
                 ",".join(tokens[k:k + PUBLISHERS_PER_PROCESS]), "--out", str(pub_stats[-1]), "--size", args.size,
                 "--fps", str(args.fps), "--bitrate", str(args.bitrate), "--picture", args.picture],
                cwd=str(ROOT), stdout=logs["publishers"], stderr=subprocess.STDOUT))
        publishing = wait_light(pub_stats, len(tokens), timeout=30 + 3 * len(tokens))
        time.sleep(args.warmup)
        rows: dict[str, Any] = {"publishers": publishing, "cameras": len(tokens)}
        rows["alone"] = measured(server.pid, url, metrics_url, admin, args.measure)
        for mode in ("full", "patrol"):
            wall, stats = start_wall(args, data, url, mode, work, logs["wall"])
            procs.append(wall)
            connected = wait_light([stats], args.lessons, timeout=30 + 2 * args.lessons)
            time.sleep(args.warmup + (4 if mode == "patrol" else 0))  # patrol: the first keyframes come in
            rows[mode] = (*measured(server.pid, url, metrics_url, admin, args.measure), connected,
                          *wall_rate(stats, min(args.measure, 5)))
            stop([wall])
            time.sleep(2)
        rows["load"] = os.getloadavg()[0]
        return rows
    finally:
        stop([*procs, server])
        for log in logs.values():
            log.close()


HEAD = (f"{'window':<16} {'wall':>5} | {'CPU-s/s':>7} {'+CPU':>6} | {'pub Mbps':>8} {'pub pkt/s':>9} {'PLI/s':>5} |"
        f" {'to wall pkt/s':>13} | {'wall got pkt/s':>14} {'Mbps':>6}")


def table(args: argparse.Namespace, r: dict[str, Any]) -> str:
    alone: Window = r["alone"][0]
    lines = [f"{args.lessons} lessons x {1 + args.rurals} cameras ({r['publishers']}/{r['cameras']} publishing: "
             f"{args.size} {args.fps} fps, {args.picture}, {args.bitrate / 1e3:.0f} kbps fixed + mic), one wall of "
             f"{args.lessons} tiles; load {r['load']:.2f}, {os.cpu_count()} cores", HEAD, "-" * len(HEAD)]
    lines.append(f"{'publishers only':<16} {'-':>5} | {alone.cpu:>7.3f} {'':>6} | {alone.in_mbps:>8.2f} "
                 f"{alone.in_pps:>9.0f} {r['alone'][1]:>5.2f} | {r['alone'][2]:>13.0f} |")
    for mode in ("full", "patrol"):
        w, pli, sent, connected, got, got_mbps = r[mode]
        lines.append(f"{'+ wall, ' + mode:<16} {connected:>5} | {w.cpu:>7.3f} {w.cpu - alone.cpu:>+6.3f} |"
                     f" {w.in_mbps:>8.2f} {w.in_pps:>9.0f} {pli:>5.2f} | {sent:>13.0f} | {got:>14.0f} {got_mbps:>6.2f}")
    full, patrol = r["full"][0], r["patrol"][0]
    if r["patrol"][2] > 0:
        fewer = r["full"][2] / r["patrol"][2]
        lines.append(f"patrol mode: {fewer:.0f}x fewer packets to the wall; the wall's "
                     f"server cost {100 * (full.cpu - alone.cpu):.1f} % -> {100 * (patrol.cpu - alone.cpu):.1f} % "
                     f"of a core; publishers {alone.in_mbps:.2f} -> {patrol.in_mbps:.2f} Mbps "
                     f"({100 * (patrol.in_mbps / alone.in_mbps - 1) if alone.in_mbps else 0:+.1f} %)")
    lines.append("+CPU: over the publishers-only window; pub: what the server received from all publishers; PLI/s: "
                 "keyframe requests the server sent them;\nto wall: what the server sent the wall's tiles (its slot "
                 "counters, /api/stats); wall got: what the wall counted (packets, payload Mbps)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lessons", type=int, default=20)
    parser.add_argument("--rurals", type=int, default=3, help="rural classrooms per lesson (each publishes)")
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--bitrate", type=int, default=500_000, help="each camera's fixed bitrate (0: follow REMB)")
    parser.add_argument("--picture", default="textured", choices=["textured", "pattern"])
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--measure", type=float, default=10.0)
    parser.add_argument("--json", default=None, help="also write the windows here")
    parser.add_argument("--keep", default=None, help="keep data and logs here")
    parser.add_argument("--publishers-worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--tokens", default="", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    exit_on_sigterm()
    width, height = (int(v) for v in args.size.split("x"))
    if args.publishers_worker:
        video = ((lambda label: TexturedPatternTrack(width, height, args.fps, label))
                 if args.picture == "textured" else None)
        spec = PublishSpec(width=width, height=height, fps=args.fps, video=video)
        asyncio.run(publishers(args.publishers_worker, args.tokens.split(","), spec, args.bitrate, Path(args.out)))
        return
    with tempfile.TemporaryDirectory(prefix="twinclass-patrol-") as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        result = run(args, work)
    print(table(args, result))
    if args.json:
        Path(args.json).write_text(json.dumps({k: v if not isinstance(v, tuple) else [
            x.__dict__ if isinstance(x, Window) else x for x in v] for k, v in result.items()}, indent=1))


if __name__ == "__main__":
    main()
