"""`twinclass serve` and `twinclass token`."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from recorder.config import HLS_MODES
from sfu.admission import Limits
from sfu.lessons import LessonError, Role
from sfu.store import LessonStore, make_engine
from sfu.tokens import TokenIssuer, new_subject
from twinclass.login_options import add_login_options, oidc_settings
from twinclass.storage import add_store_options, database_url, token_secret


def add_commands(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the lesson server (creates a demo lesson on first start)")
    serve.add_argument("--host", action="append", dest="hosts", default=None,
                       help="address to listen on, IPv4 or IPv6 (repeatable, or a comma list; '::' = every "
                            "address of both families, '0.0.0.0' = every IPv4 one; default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--data-dir", type=Path, default=Path("./var"))
    add_store_options(serve)
    serve.add_argument("--ice-address", action="append", dest="ice_addresses",
                       help="host address for ICE candidates (repeatable; default: loopback when --host is)")
    serve.add_argument("--ice-server", action="append", dest="ice_servers", default=[],
                       help="STUN/TURN URL offered to peers (repeatable)")
    serve.add_argument("--video-codecs", default="VP8,H264",
                       help="video codecs offered to receiving classrooms, preferred first (default VP8,H264)")
    serve.add_argument("--redis-url", default=os.environ.get("TWINCLASS_REDIS_URL"),
                       help="run as one of several nodes sharing lessons through Redis")
    serve.add_argument("--node-url", default=os.environ.get("TWINCLASS_NODE_URL"),
                       help="URL classrooms use to reach this node (with --redis-url; default http://HOST:PORT)")
    serve.add_argument("--node-capacity", type=int, default=None,
                       help="with --redis-url: subscribers this node takes before listening classrooms and "
                            "observers are placed on another node (default 400)")
    serve.add_argument("--no-demo", action="store_true", help="do not create the demo lesson")
    serve.add_argument("--frame-ancestors", default=os.environ.get("TWINCLASS_FRAME_ANCESTORS", ""),
                       help="origins that may embed the pages in a frame, e.g. a bureau portal showing the patrol "
                            "wall (CSP frame-ancestors sources; default: none)")
    add_limit_options(serve)
    add_login_options(serve)
    serve.add_argument("--metrics-port", type=int, default=None,
                       help="also serve /metrics without a token on 127.0.0.1:PORT (else: admin token only)")
    serve.add_argument("--forward-path", default="slim", choices=["slim", "classic"],
                       help="slim: forwarded packets skip aiortc's depayloading and send path (default); classic: "
                            "through aiortc's receiver and RTP objects, as before (for comparison in benches)")
    serve.add_argument("--no-tiers", action="store_true",
                       help="never make lower tiers: every subscriber gets the full streams, whatever its link "
                            "(benches that overload their own receivers)")
    serve.add_argument("--hls", default=os.environ.get("TWINCLASS_HLS", "broadcast"), choices=list(HLS_MODES),
                       help="which lessons get a live HLS stream at /live/{lesson}/index.m3u8: broadcast lessons "
                            "(default), all lessons (each costs one decode and H.264 encode), or none (off)")
    serve.add_argument("--event-loop", default="uvloop", choices=["uvloop", "asyncio"],
                       help="the event loop to run on: uvloop (libuv's, the default: a forwarded packet costs about "
                            "a third less) or asyncio (the standard library's)")
    serve.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    serve.add_argument("--log-format", default="text", choices=["text", "json"],
                       help="text lines, or one JSON object per line (default text)")
    serve.set_defaults(func=run_serve)

    token = sub.add_parser("token", help="print a signed join token (or an admin token)")
    token.add_argument("--data-dir", type=Path, default=Path("./var"))
    add_store_options(token)
    token.add_argument("--lesson", default="")
    token.add_argument("--classroom", default="")
    token.add_argument("--name", default=None)
    token.add_argument("--role", required=True, choices=[r.value for r in Role if r not in (Role.SYSTEM, Role.RELAY)])
    token.add_argument("--ttl", type=float, default=6 * 3600, help="seconds the token stays valid")
    token.add_argument("--sub", default=None,
                       help="who holds it: the author of its comments and evaluations (a new one unless given; "
                            "give the same one again to keep one author across tokens)")
    token.set_defaults(func=run_token)


def add_limit_options(serve: argparse.ArgumentParser) -> None:
    """Signaling limits (`sfu.admission.Limits`) and who may connect (README "Limits")."""
    d = Limits()
    serve.add_argument("--max-sockets-per-token", type=int, default=d.sockets_per_token,
                       help=f"sockets joined with one token at a time (default {d.sockets_per_token})")
    serve.add_argument("--max-sockets-per-address", type=int, default=d.sockets_per_address,
                       help=f"socket.io connections from one client address (default {d.sockets_per_address})")
    serve.add_argument("--max-joins-per-second", type=float, default=d.joins_per_second,
                       help=f"joins per second per client address (default {d.joins_per_second:g})")
    serve.add_argument("--join-burst", type=int, default=d.join_burst,
                       help=f"joins one address may make at once before the rate applies (default {d.join_burst})")
    serve.add_argument("--join-timeout", type=float, default=d.join_timeout_s,
                       help=f"seconds a socket may stay connected without joining (default {d.join_timeout_s:g})")
    serve.add_argument("--max-message-bytes", type=int, default=d.max_message_bytes,
                       help=f"largest signaling message (default {d.max_message_bytes})")
    serve.add_argument("--allowed-origin", action="append", dest="allowed_origins", default=[],
                       help="a page origin (scheme://host[:port]) besides the server's own that may open "
                            "socket.io connections (repeatable)")
    serve.add_argument("--trusted-proxy", action="append", dest="trusted_proxies", default=[],
                       help="CIDR of a reverse proxy whose X-Forwarded-For names the client (repeatable)")


def limits_from_args(args: argparse.Namespace) -> Limits:
    try:
        return replace(Limits(), sockets_per_token=args.max_sockets_per_token,
                       sockets_per_address=args.max_sockets_per_address, joins_per_second=args.max_joins_per_second,
                       join_burst=args.join_burst, join_timeout_s=args.join_timeout,
                       max_message_bytes=args.max_message_bytes)
    except ValueError as exc:
        raise SystemExit(f"twinclass serve: {exc}") from exc


def run_serve(args: argparse.Namespace) -> int:
    from twinclass.server import ServerConfig, serve

    if args.node_capacity is not None and args.node_capacity < 1:
        raise SystemExit(f"twinclass serve: --node-capacity: must be at least 1 (got {args.node_capacity})")
    config = ServerConfig(
        hosts=_hosts(args.hosts),
        port=args.port,
        data_dir=args.data_dir,
        database_url=args.database_url,
        secret=args.secret,
        ice_addresses=args.ice_addresses,
        ice_servers=_ice_servers(args.ice_servers),
        video_codecs=tuple(c.strip().upper() for c in args.video_codecs.split(",") if c.strip()),
        redis_url=args.redis_url,
        node_url=args.node_url,
        **({"node_capacity": args.node_capacity} if args.node_capacity is not None else {}),
        create_demo=not args.no_demo,
        frame_ancestors=_frame_ancestors(args.frame_ancestors),
        limits=limits_from_args(args),
        allowed_origins=args.allowed_origins,
        trusted_proxies=args.trusted_proxies,
        metrics_port=args.metrics_port,
        oidc=oidc_settings(args),
        oidc_roles_claim=args.oidc_roles_claim,
        oidc_provider_logout=not args.oidc_local_logout,
        session_s=args.session_max_age,
        session_idle_s=args.session_idle,
        forward_path=args.forward_path,
        event_loop=args.event_loop,
        tiers=not args.no_tiers,
        hls=args.hls,
    )
    with asyncio.Runner(loop_factory=_loop_factory(config.event_loop)) as runner:
        runner.run(serve(config))
    return 0


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError as exc:
        raise SystemExit("twinclass serve: --event-loop uvloop needs the uvloop package (pip install uvloop)") from exc
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _ice_servers(values: list[str]) -> list[str]:
    from sfu.addresses import check_ice_server

    try:
        return [check_ice_server(v) for v in values]
    except ValueError as exc:
        raise SystemExit(f"twinclass serve: --{exc}") from exc


def _hosts(values: list[str] | None) -> tuple[str, ...]:
    from sfu.addresses import parse_hosts

    try:
        return tuple(parse_hosts(values or ["127.0.0.1"]))
    except ValueError as exc:
        raise SystemExit(f"twinclass serve: --{exc}") from exc


def _frame_ancestors(value: str) -> tuple[str, ...]:
    from twinclass.http_policy import parse_frame_ancestors

    try:
        return parse_frame_ancestors(value)
    except ValueError as exc:
        raise SystemExit(f"twinclass serve: --{exc}") from exc


def run_token(args: argparse.Namespace) -> int:
    issuer = TokenIssuer(token_secret(args.data_dir, args.secret))
    role = Role(args.role)
    if role == Role.ADMIN:
        print(issuer.mint_admin(args.name or "admin", ttl_s=args.ttl, sub=args.sub))
        return 0
    if not args.lesson:
        raise SystemExit("twinclass token: --lesson is required for this role")
    name = args.name
    if role == Role.LISTENER and not args.classroom:
        raise SystemExit("twinclass token: --classroom is required for a listening classroom (its own id)")
    if role in (Role.MASTER, Role.RURAL):
        if not args.classroom:
            raise SystemExit("twinclass token: --classroom is required for this role")
        # check against the lesson in the store `serve` uses: the one given, else this data dir's (if any)
        if args.database_url or (args.data_dir / "twinclass.db").exists():
            engine = make_engine(database_url(args.data_dir, args.database_url))
            try:
                lesson = LessonStore(engine).get(args.lesson)
            finally:
                engine.dispose()
            if lesson is None:
                where = engine.url.render_as_string(hide_password=True)
                raise SystemExit(f"twinclass token: lesson {args.lesson!r} not found in {where}")
            actual = lesson.role_of(args.classroom)
            if actual != role:
                raise SystemExit(
                    f"twinclass token: classroom {args.classroom!r} is {actual or 'not in the lesson'}, not {role}"
                )
            room = lesson.classroom(args.classroom)
            name = name or (room.name if room else None)
    sub = args.sub if args.sub is not None else new_subject()
    try:
        print(issuer.mint(lesson=args.lesson, classroom=args.classroom or "observer",
                          name=name or args.classroom or "observer", role=role, ttl_s=args.ttl, sub=sub))
    except LessonError as exc:
        raise SystemExit(str(exc)) from exc
    return 0
