"""Bench: what a cascade edge costs the lesson's origin node, against a viewer on the origin itself.

    .venv/bin/python bench/cascade_cost.py [--viewers 3] [--window 20] [--size 640x360] [--fps 15]

A private redis-server and an origin node (`twinclass serve --redis-url`), a light master publishing
the test pattern there (bench/light_receiver.py's LightClient: real ICE/DTLS-SRTP, RTP only counted).
and N edge nodes, idle until their phase. Then, each for `--window` seconds after a warm-up, the
origin's CPU (from /proc) is measured:
  baseline: the master alone;
  local:    N light observers on the origin;
  full:     N full observers on the origin (`twinclass classroom` code, in this process: every frame
            decoded; they send NACKs, PLIs, REMB and receiver reports as a real classroom does);
  edges:    N edge nodes, one light observer on each (every edge takes the lesson over one relay link).
Prints one JSON object: CPU (cores) per phase, the cost per local viewer (light and full) and per
edge, and the origin's reported bitrate out (`/api/cluster/nodes`). The item's target: an edge costs
the origin no more than one local viewer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cpu_seconds, exit_on_sigterm, free_port, serve, stop, token, wait_http
from bench.light_receiver import LightClient, PublishSpec
from classroom_client.encoders import install_publisher_encoders
from classroom_client.session import ClassroomClient, ClientConfig
from sfu.media.aiortc_adapter import use_host_addresses
from sfu.tokens import TokenIssuer


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return proc, f"redis://127.0.0.1:{port}/0"


def node(data: Path, redis_url: str, procs: list[subprocess.Popen[bytes]]) -> str:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (data.parent / f"server-{port}.log").open("wb")
    procs.append(serve(data, port, log, extra=["--redis-url", redis_url, "--node-url", url, "--no-tiers"]))
    wait_http(f"{url}/healthz", timeout=60)
    return url


def origin_load(url: str, admin: str) -> dict[str, Any]:
    req = urllib.request.Request(f"{url}/api/cluster/nodes", headers={"Authorization": f"Bearer {admin}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return next(n for n in json.loads(resp.read())["nodes"] if n["url"] == url)


async def measure(pid: int, window: float, warmup: float = 5.0) -> float:
    await asyncio.sleep(warmup)
    start, at = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(window)
    return round((cpu_seconds(pid) - start) / (time.monotonic() - at), 4)


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    install_publisher_encoders()
    use_host_addresses(["127.0.0.1"])
    work = Path(tempfile.mkdtemp(prefix="cascade-bench-"))
    data = work / "var"
    procs: list[subprocess.Popen[bytes]] = []
    redis, redis_url = start_redis(work)
    clients: list[LightClient] = []
    try:
        origin = node(data, redis_url, procs)
        pid = procs[0].pid
        # every node runs in every phase (idle until its viewer comes): the machine is as busy in each
        edges = [node(data, redis_url, procs) for _ in range(args.viewers)]
        issuer = TokenIssuer((data / "token-secret").read_text().strip())
        admin = token(data, "--role", "admin")

        def viewer(url: str, i: int) -> LightClient:
            return LightClient(url, issuer.mint(lesson="demo", classroom="observer", name=f"viewer {i}",
                                                role="observer", sub=f"bench-{i}"))

        width, height = (int(v) for v in args.size.split("x"))
        master = LightClient(origin, issuer.mint(lesson="demo", classroom="master", name="master", role="master",
                                                 sub=""), PublishSpec(width=width, height=height, fps=args.fps))
        await master.start()
        clients.append(master)
        out: dict[str, Any] = {"viewers": args.viewers, "size": args.size, "fps": args.fps, "logs": str(work)}
        out["baseline_cpu"] = await measure(pid, args.window)
        local = [viewer(origin, i) for i in range(args.viewers)]
        for client in local:
            await client.start()
            clients.append(client)
        out["local_cpu"] = await measure(pid, args.window)
        out["local_bitrate_out"] = origin_load(origin, admin)["bitrate_out"]
        for client in local:
            await client.close()
            clients.remove(client)
        full = [ClassroomClient(ClientConfig(server=origin, token=viewer(origin, 50 + i).token, publish=False))
                for i in range(args.viewers)]
        try:
            for c in full:
                await c.start()
            out["full_cpu"] = await measure(pid, args.window)
            out["full_frames_decoded"] = [(m.to_json() if (m := c.remotes.get("master")) else {}).get("frames_decoded")
                                          for c in full]
        finally:
            for c in full:
                await asyncio.wait_for(c.close(), 10)
        for i, url in enumerate(edges):
            client = viewer(url, 100 + i)
            await client.start()
            clients.append(client)
        out["edges_cpu"] = await measure(pid, args.window)
        out["master_connected"] = master.sio.connected
        out["edges_bitrate_out"] = origin_load(origin, admin)["bitrate_out"]
        out["received_packets_per_edge_viewer"] = [c.counts.packets for c in clients[1:]]
        out["cpu_per_local_viewer"] = round((out["local_cpu"] - out["baseline_cpu"]) / args.viewers, 4)
        out["cpu_per_full_viewer"] = round((out["full_cpu"] - out["baseline_cpu"]) / args.viewers, 4)
        out["cpu_per_edge"] = round((out["edges_cpu"] - out["baseline_cpu"]) / args.viewers, 4)
        for kind in ("local_viewer", "full_viewer"):
            per = out[f"cpu_per_{kind}"]
            out[f"edge_vs_{kind}"] = round(out["cpu_per_edge"] / per, 2) if per > 0 else None
        return out
    finally:
        for client in clients:
            await client.close()
        stop(procs)
        stop([redis])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, default=3, help="local viewers, then as many edge nodes")
    parser.add_argument("--window", type=float, default=20.0, help="seconds measured per phase")
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--fps", type=int, default=15)
    args = parser.parse_args()
    exit_on_sigterm()
    print(json.dumps(asyncio.run(amain(args)), indent=1))


if __name__ == "__main__":
    main()
