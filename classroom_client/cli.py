"""`twinclass classroom`: the headless classroom terminal."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sfu.credential_options import add_credential_options

if TYPE_CHECKING:
    from classroom_client.link import LinkSpec

TOKEN_ENV = "TWINCLASS_TOKEN"


def add_commands(sub: Any) -> None:
    p = sub.add_parser("classroom", help="join a lesson as a headless classroom terminal")
    p.add_argument("--server", required=True, help="lesson server URL, e.g. http://127.0.0.1:8080")
    add_credential_options(p, "token", TOKEN_ENV, "join token (the token= part of a join link)")
    p.add_argument("--video", default="testsrc", help="testsrc | PATH | /dev/videoN | none")
    p.add_argument("--audio", default="tone", help="tone | tone:HZ | file (from --video PATH) | PATH | none")
    p.add_argument("--size", default="640x360", help="test pattern / camera size WxH")
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--codec", default="vp8", choices=["vp8", "h264"], help="video codec to publish")
    p.add_argument("--duration", type=float, default=None, help="leave after S seconds (default: run until ^C)")
    p.add_argument("--stats-json", type=Path, default=None, help="write receive statistics here every second")
    p.add_argument("--raise-hand-at", type=float, default=None, help="raise the hand S seconds after start")
    p.add_argument("--no-receive", action="store_true", help="publish only")
    p.add_argument("--ice-server", action="append", dest="ice_servers", default=[], type=_ice_server,
                   help="STUN/TURN URL (repeatable), e.g. stun:stun.example.cn:3478")
    p.add_argument("--ice-address", action="append", dest="ice_addresses", default=None)
    p.add_argument("--link", type=_link_spec, default=None, metavar="SPEC",
                   help="impair our line both ways in user space, e.g. loss=3%%,delay=75ms,jitter=15ms,rate=1mbit. "
                        "Fields: loss=P%% (random), burst=P%% with burstlen=N (bursty loss: mean P%% in runs of "
                        "N packets, default 4), delay=T (ONE way: ms or s), jitter=T (delay wanders within "
                        "delay±T, never reordering), rate=R (kbit|mbit; kbps|mbps mean bits too), "
                        "queue=T|B (bottleneck buffer: ms, or bytes b|kb|mb; default 200ms; needs rate), "
                        "blackout=AT+DUR[;AT+DUR...] (nothing passes for DUR from AT after start, e.g. 20s+10s); "
                        "none = a clean link. Statistics go to --stats-json as link_stats")
    p.add_argument("--link-file", type=Path, default=None, metavar="FILE",
                   help="read the --link SPEC from FILE, and again whenever FILE changes (put a cap on mid-lesson)")
    p.add_argument("--impair-loss", type=_percent, default=None, metavar="PCT",
                   help="short for --link loss=PCT%% (both ways, every datagram; overrides loss= of --link)")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    p.add_argument("--log-format", default="text", choices=["text", "json"], help="text, or one JSON object a line")
    p.set_defaults(func=run_classroom, parser=p)


def _percent(value: str) -> float:
    pct = float(value)
    if not 0.0 <= pct <= 100.0:
        raise argparse.ArgumentTypeError(f"{value}: a percentage from 0 to 100")
    return pct


def _ice_server(value: str) -> str:
    from sfu.addresses import check_ice_server

    try:
        return check_ice_server(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _link_spec(value: str) -> LinkSpec:
    from classroom_client.link import LinkSpec  # (aiortc is imported only to run a classroom)

    try:
        return LinkSpec.parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r}: {exc}") from exc


def run_classroom(args: argparse.Namespace) -> int:
    from classroom_client.link import LinkSpec
    from classroom_client.session import ClassroomClient, ClientConfig
    from classroom_client.sources import SourceSpec

    if not args.token:
        args.parser.error(f"a join token is required: --token-file PATH, ${TOKEN_ENV} or --token")
    width, height = (int(x) for x in args.size.lower().split("x"))
    link: LinkSpec | None = args.link
    if args.impair_loss is not None:
        link = dataclasses.replace(link or LinkSpec(), loss=args.impair_loss)
    config = ClientConfig(
        server=args.server,
        token=args.token,
        sources=SourceSpec(video=args.video, audio=args.audio, width=width, height=height, fps=args.fps),
        video_codec=args.codec,
        duration=args.duration,
        stats_json=args.stats_json,
        raise_hand_at=args.raise_hand_at,
        ice_servers=args.ice_servers,
        ice_addresses=args.ice_addresses,
        receive=not args.no_receive,
        link=link,
        link_file=args.link_file,
    )

    async def main() -> int:
        client = ClassroomClient(config)
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(client.run())
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, client.request_stop)
        return await task

    if config.duration is not None:
        _exit_at_the_latest(config.duration + EXIT_GRACE_S)
    code = asyncio.run(main())
    _exit_despite_stuck_threads(code)
    return code


EXIT_GRACE_S = 15.0  # run() leaves on time by itself; this is the backstop if shutting down hangs


def _hard_exit(code: int, why: str) -> None:
    logging.getLogger(__name__).error("exiting hard: %s", why)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _exit_at_the_latest(seconds: float) -> None:
    """A daemon thread that ends the process `seconds` from now if it is still running."""
    def watchdog() -> None:
        time.sleep(seconds)
        _hard_exit(3, f"still running {seconds:.0f}s after start (--duration + {EXIT_GRACE_S:.0f}s)")

    threading.Thread(target=watchdog, name="exit-watchdog", daemon=True).start()


def _exit_despite_stuck_threads(code: int) -> None:
    """aiortc's decoder threads are not daemons: one a hung pc.close left behind would keep us alive."""
    stuck = [t.name for t in threading.enumerate()
             if t.is_alive() and not t.daemon and t is not threading.main_thread()]
    if stuck:
        _hard_exit(code, f"threads left running: {', '.join(stuck)}")
