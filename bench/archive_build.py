"""Recording cost: live capture CPU per track, and archive build speed, for a 1+3 lesson.

    .venv/bin/python bench/archive_build.py [--minutes 5] [--size 640x360] [--fps 30] [--workers 0]

One `twinclass serve` process; four `twinclass classroom` processes (1 master + 3 rural, test
pattern + tone, publishing only) in every phase of the same run:

1. lesson with ``record: false``: the server's CPU with no subscriber and no recorder (baseline);
2. the same lesson plus one observer process that subscribes to every track and receives the
   encoded frames exactly as the recorder does (aiortc receive path, no decoding, no muxing):
   what one forwarded subscriber costs, on the server and on its own side;
3. a recorded lesson of ``--minutes``: what the live capture adds to the server;
4. `twinclass archive build` of that recording on all cores: build time as a multiple of
   real time (target ≥ 10x on 2 cores: an archive ready within a tenth of the lesson's length).

With ``--incremental`` (or ``--incremental-only``) a second server, with the recorder's automatic
build on, records another 1+3 lesson of ``--minutes`` while its chunk worker builds the archive:
time from the lesson's end to ``ready``, the live lesson's fps and latency with the worker stopped
and running in alternating windows of ``--window`` seconds, the worker's CPU share
(see bench/archive_incremental.py).

Prints a table. The machine's load average is printed too: other work on the same 2 cores
makes every figure worse.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BIN, cpu_seconds, free_port, token, wait_http


def api(url: str, token: str, body: Any = None, method: str = "GET") -> Any:
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


class Server:
    def __init__(self, data_dir: Path, *, auto_build: bool = False) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "TWINCLASS_RECORDER_AUTOBUILD": "1" if auto_build else "0",
               "TWINCLASS_RECORDER_IDLE_S": "1"}
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log = (data_dir / "server.log").open("wb")
        self.proc = subprocess.Popen([str(BIN / "twinclass"), "serve", "--port", str(self.port), "--data-dir",
                                      str(data_dir), "--log-level", "WARNING"], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env)
        wait_http(self.url + "/healthz", timeout=30, interval=0.2)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_lesson(server: Server, data_dir: Path, lesson: str, size: str, fps: int) -> list[subprocess.Popen[bytes]]:
    procs = []
    for classroom, role in (("master", "master"), ("rural-1", "rural"), ("rural-2", "rural"), ("rural-3", "rural")):
        tok = token(data_dir, "--lesson", lesson, "--classroom", classroom, "--role", role)
        procs.append(subprocess.Popen(
            [str(BIN / "twinclass"), "classroom", "--server", server.url, "--token", tok, "--size", size,
             "--fps", str(fps), "--no-receive", "--log-level", "WARNING"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def packet_counts(server: Server, admin: str, lesson: str) -> dict[str, int]:
    """Packets in from the classrooms, and out to the recorder and to observers, so far."""
    stats = api(server.url + "/api/stats", admin)["lessons"].get(lesson, {})
    counts = {"in": sum(t["packets_in"] for t in stats.get("tracks", {}).values()), "recorder": 0, "observer": 0}
    for name, slot in stats.get("slots", {}).items():
        who = name.split("<-", 1)[0]
        if who == "recorder":
            counts["recorder"] += slot["packets_out"]
        elif who.startswith("observer"):
            counts["observer"] += slot["packets_out"]
    return counts


@dataclass
class Window:
    cpu: list[float]  # CPU-seconds of each process over the window
    seconds: float
    packets: dict[str, int]  # packets over the window (see packet_counts)


def measure(pids: list[int], seconds: float, server: Server, admin: str, lesson: str) -> Window:
    before = [cpu_seconds(p) for p in pids]
    p0 = packet_counts(server, admin, lesson)
    t0 = time.monotonic()
    time.sleep(seconds)
    dt = time.monotonic() - t0
    p1 = packet_counts(server, admin, lesson)
    return Window([cpu_seconds(p) - b for p, b in zip(pids, before, strict=True)], dt,
                  {k: p1[k] - p0[k] for k in p1})


# -- the observer: a subscriber that receives encoded frames like the recorder, nothing more --


async def observe(url: str, tok: str) -> None:
    import socketio
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from sfu.media.aiortc_adapter import capture_encoded_frames, use_host_addresses
    from sfu.media.endpoint import rtc_configuration

    use_host_addresses(["127.0.0.1"])
    frames = [0]
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(url, transports=["websocket"])
    reply = await sio.call("join", {"token": tok})
    assert reply.get("ok"), reply
    reply = await sio.call("subscribe", {})
    pc = RTCPeerConnection(rtc_configuration([]))
    await pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="offer"))

    def sink(codec: Any, frame: Any) -> None:
        frames[0] += 1

    for transceiver in pc.getTransceivers():
        capture_encoded_frames(transceiver.receiver, sink)
    await pc.setLocalDescription(await pc.createAnswer())
    await sio.call("subscribe_answer", {"sdp": pc.localDescription.sdp})
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    print(json.dumps({"frames": frames[0]}), flush=True)
    await pc.close()
    await sio.disconnect()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--measure", type=float, default=30.0, help="seconds per CPU measurement window")
    parser.add_argument("--incremental", action="store_true", help="also the incremental build row")
    parser.add_argument("--incremental-only", action="store_true", help="only the incremental build row")
    parser.add_argument("--window", type=float, default=110.0, help="seconds per stopped/running window")
    parser.add_argument("--keep", action="store_true", help="keep the data directory (recording and archive)")
    parser.add_argument("--observer", nargs=2, metavar=("URL", "TOKEN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.observer:
        asyncio.run(observe(*args.observer))
        return 0

    if args.incremental_only:
        return print_rows(incremental(args))
    load0 = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="archive-bench-"))
    data_dir = tmp / "var"
    data_dir.mkdir()
    server = Server(data_dir)
    admin = token(data_dir, "--role", "admin")
    rows: list[tuple[str, str, str]] = []
    try:
        for lesson_id, record in (("bench-norec", False), ("bench", True)):
            api(server.url + "/api/lessons", admin, method="POST", body={
                "id": lesson_id, "title": f"录制基准 {lesson_id}", "subject": "英语", "grade": "3", "record": record,
                "master": "master", "rurals": ["rural-1", "rural-2", "rural-3"]})
        tracks = 8  # four cameras, four microphones

        # 1 + 2: no recorder; then one forwarded subscriber (observer) receiving every track
        print("phase 1/4: lesson without recording (baseline) ...", file=sys.stderr, flush=True)
        procs = start_lesson(server, data_dir, "bench-norec", args.size, args.fps)
        time.sleep(10)
        base = measure([server.proc.pid], args.measure, server, admin, "bench-norec")
        print("phase 2/4: plus one forwarded subscriber ...", file=sys.stderr, flush=True)
        obs_token = token(data_dir, "--lesson", "bench-norec", "--role", "observer")
        observer = subprocess.Popen([sys.executable, __file__, "--observer", server.url, obs_token],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        time.sleep(8)
        with_sub = measure([server.proc.pid, observer.pid], args.measure, server, admin, "bench-norec")
        observer.send_signal(signal.SIGTERM)
        out, _ = observer.communicate(timeout=20)
        observed_frames = json.loads(out.decode().strip().splitlines()[-1])["frames"]
        stop_all(procs)
        time.sleep(3)

        # 3: the recorded lesson
        print(f"phase 3/4: recorded lesson, {args.minutes:.1f} min ...", file=sys.stderr, flush=True)
        lesson_s = args.minutes * 60
        t_start = time.monotonic()
        procs = start_lesson(server, data_dir, "bench", args.size, args.fps)
        time.sleep(min(15.0, lesson_s / 4))
        window = max(10.0, min(lesson_s - 40, 180.0))
        recording = measure([server.proc.pid], window, server, admin, "bench")
        time.sleep(max(0.0, lesson_s - (time.monotonic() - t_start)))
        stop_all(procs)
        time.sleep(4)  # the lesson is over after 1 s alone; the capture closes
        (rec_dir,) = (data_dir / "recordings").iterdir()
        load1 = os.getloadavg()

        # 4: the build, on every core
        print("phase 4/4: archive build ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        subprocess.run([str(BIN / "twinclass"), "archive", "build", str(rec_dir), "--workers", str(args.workers)],
                       check=True)
        build_s = time.perf_counter() - t0
        manifest = json.loads((rec_dir / "manifest.json").read_text())
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    duration = manifest["duration_s"]
    cam = [t for t in manifest["tracks"] if t["source"] == "camera"]
    source_fps = sum(t["packets"] for t in cam) / max(1e-9, sum(t["end_s"] - t["start_s"] for t in cam))
    # the server's own work (receiving the classrooms) scales with the packets coming in: take
    # it out per packet in, then what is left is the recorder's or the subscriber's
    base_per_in = base.cpu[0] / max(1, base.packets["in"])
    capture_cpu = recording.cpu[0] - base_per_in * recording.packets["in"]
    sub_server_cpu = with_sub.cpu[0] - base_per_in * with_sub.packets["in"]
    sub_total_cpu = sub_server_cpu + with_sub.cpu[1]
    capture_per_track = capture_cpu / recording.seconds / tracks
    sub_server = sub_server_cpu / with_sub.seconds / tracks
    sub_total = sub_total_cpu / with_sub.seconds / tracks
    us = 1e6
    capture_us = capture_cpu / max(1, recording.packets["recorder"]) * us
    sub_server_us = sub_server_cpu / max(1, with_sub.packets["observer"]) * us
    sub_total_us = sub_total_cpu / max(1, with_sub.packets["observer"]) * us
    base_pct = base.cpu[0] / base.seconds * 100
    size_mb = sum(f["size"] for f in manifest["files"] if f["role"] == "track") / 1e6
    rows += [
        ("lesson", f"1+3, {duration:.1f} s, {args.size} VP8 @ {source_fps:.1f} fps captured, Opus", ""),
        ("captured tracks", f"{len(manifest['tracks'])} files, {size_mb:.1f} MB", ""),
        ("archive build time", f"{build_s:.1f} s (lesson.mp4 {manifest['video']['fps']} fps, 1280x720)", ""),
        ("build speed", f"{duration / build_s:.1f}x real time", ">= 10x"),
        ("server CPU, no recorder, no subscriber", f"{base_pct:.1f} % of a core", ""),
        ("live capture, per track (in the server)",
         f"{capture_per_track * 100:.2f} % of a core, {capture_us:.0f} us/packet", "<= subscriber"),
        ("forwarded subscriber, per track (server side)",
         f"{sub_server * 100:.2f} % of a core, {sub_server_us:.0f} us/packet", ""),
        ("forwarded subscriber, per track (server + its receive)",
         f"{sub_total * 100:.2f} % of a core, {sub_total_us:.0f} us/packet", f"{observed_frames} frames"),
        ("capture / subscriber, per packet (server + receive)", f"{capture_us / max(sub_total_us, 1e-9):.2f}",
         "<= 1"),
        ("capture / subscriber, per packet (server side only)", f"{capture_us / max(sub_server_us, 1e-9):.2f}",
         ""),
        ("load average (start -> end of lesson)", f"{load0[0]:.1f} -> {load1[0]:.1f} (2 cores)", ""),
    ]
    if args.incremental:
        rows += incremental(args)
    return print_rows(rows)


def incremental(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    from bench import archive_incremental

    print(f"incremental build: recorded lesson, {args.minutes:.1f} min ...", file=sys.stderr, flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="archive-bench-inc-"))
    server = Server(tmp / "var", auto_build=True)
    try:
        admin = token(tmp / "var", "--role", "admin")
        result = archive_incremental.run(server, tmp / "var", admin, args.minutes, args.window, args.size,
                                         args.fps, api)
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return archive_incremental.rows(result)


def print_rows(rows: list[tuple[str, str, str]]) -> int:
    width = max(len(r[0]) for r in rows)
    value_w = max(52, *(len(r[1]) for r in rows))
    print(f"\n{'metric':{width}s} | {'value':{value_w}s} | target")
    print(f"{'-' * width}-|-{'-' * value_w}-|-------")
    for name, value, target in rows:
        print(f"{name:{width}s} | {value:{value_w}s} | {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
