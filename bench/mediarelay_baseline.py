"""Forwarding cost on the test pattern: one publisher -> N subscribers, Twinclass vs an aiortc MediaRelay baseline.

(The realistic stream -- a moving, detailed picture at a fixed bitrate -- is bench/sfu_forwarding.py.)

    .venv/bin/python bench/mediarelay_baseline.py [--counts 1,2,4,8,16] [--measure 8] [--size 640x360]

Twinclass: `twinclass serve` in its own process; the publisher is a `twinclass classroom`
process (test pattern + tone); subscribers are observer classrooms hosted by worker processes
(up to 8 each) that decode every frame, read its counter and send time, and report fps and
glass-to-glass latency. Baseline: a small aiortc server in its own process that relays the
publisher's track to every subscriber with `MediaRelay` (decode once, encode per subscriber),
measured with the same publisher and subscribers in the same run.

Prints, per N: server CPU-seconds per wall second, cost per subscriber, min/median fps over
the subscribers, latency p50/p95, and the baseline's figures with the CPU ratio.
Subscribers share the 2 cores with the server, so their decoding competes with it at large N.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BIN, ROOT, cpu_seconds, decoding_observers, free_port, token, wait_http

# -- subscribers (worker processes) ---------------------------------------------------------------


async def _baseline_subscribers(url: str, count: int, seconds: float, out: Path) -> None:
    import av
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamError

    from classroom_client.pattern import read_pattern
    from classroom_client.stats import RemoteStats
    from sfu.media.aiortc_adapter import use_host_addresses
    from sfu.media.endpoint import rtc_configuration

    use_host_addresses(["127.0.0.1"])
    stats = [RemoteStats() for _ in range(count)]
    pcs = []

    async def consume(track: Any, st: RemoteStats) -> None:
        try:
            while True:
                frame = await track.recv()
                if isinstance(frame, av.VideoFrame):
                    st.on_video_frame(frame.width, frame.height, read_pattern(frame.to_ndarray(format="gray")))
        except MediaStreamError:
            pass

    tasks = []
    for st in stats:
        pc = RTCPeerConnection(rtc_configuration([]))
        pc.addTransceiver("video", direction="recvonly")
        pc.on("track", lambda track, st=st: tasks.append(asyncio.ensure_future(consume(track, st))))
        await pc.setLocalDescription(await pc.createOffer())
        req = urllib.request.Request(url + "/subscribe", data=pc.localDescription.sdp.encode(), method="POST")
        answer: bytes = await asyncio.to_thread(lambda r=req: urllib.request.urlopen(r).read())  # type: ignore[misc]
        await pc.setRemoteDescription(RTCSessionDescription(answer.decode(), "answer"))
        pcs.append(pc)
    await asyncio.sleep(seconds)
    out.write_text(json.dumps([s.to_json() for s in stats]))
    for pc in pcs:
        await pc.close()


def worker_main(args: argparse.Namespace) -> None:
    if args.system == "twinclass":
        asyncio.run(decoding_observers(args.url, args.tokens.split(","), args.seconds, Path(args.out)))
    else:
        asyncio.run(_baseline_subscribers(args.url, args.count, args.seconds, Path(args.out)))


# -- the MediaRelay baseline server ---------------------------------------------------------------


def baseline_server_main(port: int) -> None:
    from aiohttp import web
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.contrib.media import MediaRelay

    from sfu.media.aiortc_adapter import use_host_addresses
    from sfu.media.endpoint import rtc_configuration

    use_host_addresses(["127.0.0.1"])
    relay = MediaRelay()
    state: dict[str, Any] = {"track": None, "pcs": []}

    async def publish(request: web.Request) -> web.Response:
        pc = RTCPeerConnection(rtc_configuration([]))
        state["pcs"].append(pc)
        pc.on("track", lambda track: state.__setitem__("track", track) if track.kind == "video" else None)
        await pc.setRemoteDescription(RTCSessionDescription(await request.text(), "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return web.Response(text=pc.localDescription.sdp)

    async def subscribe(request: web.Request) -> web.Response:
        while state["track"] is None:
            await asyncio.sleep(0.05)
        pc = RTCPeerConnection(rtc_configuration([]))
        state["pcs"].append(pc)

        @pc.on("connectionstatechange")
        async def on_state() -> None:  # a finished subscriber's encoder must not run into the next N
            if pc.connectionState in ("failed", "closed"):
                await pc.close()
                if pc in state["pcs"]:
                    state["pcs"].remove(pc)

        await pc.setRemoteDescription(RTCSessionDescription(await request.text(), "offer"))
        for t in pc.getTransceivers():
            if t.kind == "video":
                t.sender.replaceTrack(relay.subscribe(state["track"], buffered=False))
                t.direction = "sendonly"
        await pc.setLocalDescription(await pc.createAnswer())
        return web.Response(text=pc.localDescription.sdp)

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.add_routes([web.post("/publish", publish), web.post("/subscribe", subscribe), web.get("/healthz", health)])
    web.run_app(app, host="127.0.0.1", port=port, print=None)


async def _baseline_publisher(url: str, size: tuple[int, int], seconds: float) -> None:
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from classroom_client.pattern import source_tag
    from classroom_client.sources import TestPatternTrack
    from sfu.media.aiortc_adapter import use_host_addresses
    from sfu.media.endpoint import rtc_configuration

    use_host_addresses(["127.0.0.1"])
    pc = RTCPeerConnection(rtc_configuration([]))
    pc.addTransceiver(TestPatternTrack(size[0], size[1], 30, "master", source_tag("master")), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    req = urllib.request.Request(url + "/publish", data=pc.localDescription.sdp.encode(), method="POST")
    answer = await asyncio.get_running_loop().run_in_executor(None, lambda: urllib.request.urlopen(req).read())
    await pc.setRemoteDescription(RTCSessionDescription(answer.decode(), "answer"))
    await asyncio.sleep(seconds)
    await pc.close()


# -- the run --------------------------------------------------------------------------------------


Workers = tuple[list[subprocess.Popen[bytes]], list[Path]]


def run_subscribers(system: str, url: str, n: int, seconds: float, tmp: Path, tokens: list[str]) -> Workers:
    per_worker = 8
    procs = []
    outs = []
    for w in range(0, n, per_worker):
        k = min(per_worker, n - w)
        out = tmp / f"{system}-{n}-{w}.json"
        args = [sys.executable, __file__, "--worker", system, "--url", url, "--seconds", str(seconds),
                "--out", str(out)]
        args += ["--tokens", ",".join(tokens[w:w + k])] if system == "twinclass" else ["--count", str(k)]
        procs.append(subprocess.Popen(args, cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        outs.append(out)
    return procs, outs


def collect(procs: list[subprocess.Popen[bytes]], outs: list[Path]) -> list[dict]:
    results: list[dict] = []
    for p, out in zip(procs, outs, strict=True):
        p.wait(timeout=120)
        if out.exists():
            results.extend(json.loads(out.read_text()))
    return results


def measure(system: str, url: str, server_pid: int, n: int, warmup: float, window: float, tmp: Path,
            tokens: list[str]) -> dict[str, Any]:
    procs, outs = run_subscribers(system, url, n, warmup + window, tmp, tokens) if n else ([], [])
    time.sleep(warmup)
    c0, t0 = cpu_seconds(server_pid), time.monotonic()
    time.sleep(window)
    cpu = (cpu_seconds(server_pid) - c0) / (time.monotonic() - t0)
    results = collect(procs, outs)
    fps = [r.get("video_fps", 0.0) for r in results] + [0.0] * (n - len(results)) or [float("nan")]
    p50 = [r["latency_ms_p50"] for r in results if r.get("latency_ms_p50") is not None]
    p95 = [r["latency_ms_p95"] for r in results if r.get("latency_ms_p95") is not None]
    return {
        "cpu": cpu,
        "per_sub": cpu / n if n else float("nan"),
        "fps_min": min(fps),
        "fps_med": statistics.median(fps),
        "lat50": statistics.median(p50) if p50 else float("nan"),
        "lat95": max(p95) if p95 else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="1,2,4,8,16")
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--measure", type=float, default=8.0)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--worker")
    parser.add_argument("--url")
    parser.add_argument("--tokens")
    parser.add_argument("--count", type=int)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--out")
    parser.add_argument("--baseline-server", type=int)
    parser.add_argument("--baseline-publisher")
    args = parser.parse_args()
    size = (int(args.size.split("x")[0]), int(args.size.split("x")[1]))
    if args.baseline_publisher:
        asyncio.run(_baseline_publisher(args.baseline_publisher, size, args.seconds))
        return
    if args.worker:
        args.system = args.worker
        worker_main(args)
        return
    if args.baseline_server:
        baseline_server_main(args.baseline_server)
        return

    counts = [int(x) for x in args.counts.split(",")]
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"twinclass-bench-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    rows: dict[int, dict[str, Any]] = {}
    base_rows: dict[int, dict[str, Any]] = {}
    total = (len(counts) + 1) * (args.warmup + args.measure) * (1 if args.no_baseline else 2)
    print(f"measuring {len(counts)} subscriber counts per system, about {total:.0f} s", file=sys.stderr)

    # Twinclass
    port = free_port()
    data = tmp / "var"
    # without the recorder: it would be a hidden extra subscriber inside the measured process
    server = subprocess.Popen([str(BIN / "twinclass"), "serve", "--port", str(port), "--data-dir", str(data)],
                              cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "TWINCLASS_RECORDER": "0"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/healthz")

        def tok(classroom: str, role: str) -> str:
            return token(data, "--lesson", "demo", "--classroom", classroom, "--role", role)

        publisher = subprocess.Popen([str(BIN / "twinclass"), "classroom", "--server", url, "--token",
                                      tok("master", "master"), "--size", args.size, "--no-receive", "--audio", "none"],
                                     cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        tokens = [tok(f"obs-{i}", "observer") for i in range(max(counts))]
        time.sleep(3)
        for n in [0, *counts]:
            print(f"  twinclass N={n} ...", file=sys.stderr, flush=True)
            rows[n] = measure("twinclass", url, server.pid, n, args.warmup, args.measure, tmp, tokens)
        publisher.send_signal(signal.SIGTERM)
        publisher.wait(timeout=10)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)

    # Baseline: MediaRelay, decode once + encode per subscriber
    if not args.no_baseline:
        port = free_port()
        base = subprocess.Popen([sys.executable, __file__, "--baseline-server", str(port)], cwd=str(ROOT),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http(url + "/healthz")
            duration = len(counts) * (args.warmup + args.measure + 3) + 10
            pub = subprocess.Popen([sys.executable, __file__, "--baseline-publisher", url, "--size", args.size,
                                    "--seconds", str(duration)],
                                   cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(3)
            for n in [0, *counts]:
                print(f"  MediaRelay baseline N={n} ...", file=sys.stderr, flush=True)
                base_rows[n] = measure("baseline", url, base.pid, n, args.warmup, args.measure, tmp, [])
            pub.kill()
        finally:
            base.send_signal(signal.SIGTERM)
            base.wait(timeout=15)

    print()
    print(f"one publisher {args.size} VP8 30 fps -> N subscribers, loopback, {os.cpu_count()} cores "
          f"(subscribers decode on the same cores)")
    head = (f"{'N':>3} | {'server CPU-s/s':>14} {'per sub':>8} {'fps min':>7} {'fps med':>7} {'p50 ms':>6}"
            f" {'p95 ms':>6} | {'relay CPU-s/s':>13} {'per sub':>8} {'fps min':>7} {'p50 ms':>6} {'p95 ms':>6}"
            f" | {'CPU ratio':>9}")
    print(head)
    print("-" * len(head))
    for n in counts:
        r = rows[n]
        r["per_sub"] = (r["cpu"] - rows[0]["cpu"]) / n
        line = (f"{n:>3} | {r['cpu']:>14.3f} {r['per_sub']:>8.3f} {r['fps_min']:>7.1f} {r['fps_med']:>7.1f}"
                f" {r['lat50']:>6.0f} {r['lat95']:>6.0f}")
        b = base_rows.get(n)
        if b:
            b["per_sub"] = (b["cpu"] - base_rows[0]["cpu"]) / n
            ratio = b["cpu"] / r["cpu"] if r["cpu"] > 0 else float("inf")
            line += (f" | {b['cpu']:>13.3f} {b['per_sub']:>8.3f} {b['fps_min']:>7.1f} {b['lat50']:>6.0f}"
                     f" {b['lat95']:>6.0f} | {ratio:>8.1f}x")
        print(line)
    idle = f"{rows[0]['cpu']:.3f}" + (f", relay {base_rows[0]['cpu']:.3f}" if base_rows else "")
    print(f"publisher alone (N=0): server {idle} CPU-s/s; per sub = (CPU(N) - CPU(0)) / N, the marginal cost")
    print("targets at N=8: 30 fps to all, <= 0.05 CPU-s/s (5 % of a core) per subscriber, p50 <= 60 ms")


if __name__ == "__main__":
    main()
