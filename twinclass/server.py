"""The composition root: builds the lesson server (HTTP + socket.io + forwarding) from a config."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import socketio
from aiohttp import web
from sqlalchemy import exc as sa_exc

from recorder import service as recorder_service
from recorder.config import RecorderConfig
from scheduler import http as scheduler_http
from sfu.addresses import bind_hosts, loopback_ice_addresses, public_host, url_host
from sfu.admission import Admission, Limits, OriginPolicy, TrustedProxies, normalize_origin
from sfu.cascade import Cascade
from sfu.cluster import DEFAULT_CAPACITY, LocalRegistry, NodeRegistry, RedisRegistry
from sfu.http_api import lesson_routes, require_admin
from sfu.lessons import Classroom, Lesson, LessonError, Role
from sfu.media.aiortc_adapter import use_forward_path, use_host_addresses
from sfu.node_load import NodeLoadSampler
from sfu.room import RoomDirectory
from sfu.signaling import Signaling
from sfu.signaling_server import SignalingServer
from sfu.store import AttendanceLog, LessonStore, make_engine
from sfu.tokens import TokenIssuer
from twinclass import http_policy, log_redaction, login_routes, metrics
from twinclass.debug_counts import debug_routes
from twinclass.http_errors import error_middleware
from twinclass.login_roles import RoleRule
from twinclass.oidc_client import OidcClient, OidcSettings
from twinclass.storage import database_url, prepare_data_dir, secure_database_files, token_secret
from twinclass.web_sessions import SessionStore
from web import routes as web_routes
from web import study_routes
from web import timetable as timetable_pages
from web.admin import routes as admin_routes

logger = logging.getLogger("twinclass")

DEMO_LESSON_ID = "demo"
STOPPING_RETRY_AFTER_S = 2.0  # what `server_stopping` tells classrooms: knock again after this long
SHUTDOWN_TIMEOUT_S = 1.0  # requests (and sockets a client is slow to close) still open at shutdown get this long


@dataclass
class ServerConfig:
    hosts: tuple[str, ...] = ("127.0.0.1",)  # what to listen on (sfu.addresses.parse_hosts; "::" = both families)
    port: int = 8080
    data_dir: Path = Path("./var")
    database_url: str | None = None  # default: SQLite under data_dir
    secret: str | None = None  # default: kept in data_dir/token-secret
    ice_addresses: list[str] | None = None  # host candidates; None = loopback for a loopback host
    ice_servers: list[str] = field(default_factory=list)  # STUN/TURN URLs for classrooms behind NAT
    video_codecs: tuple[str, ...] = ("VP8", "H264")  # preference order offered to receiving classrooms
    redis_url: str | None = None  # lessons spread over several nodes: ownership, presence, socket.io fan-out
    node_url: str | None = None  # how classrooms reach this node (default: http://host:port)
    node_capacity: int = DEFAULT_CAPACITY  # subscribers this node takes before viewers are placed elsewhere
    create_demo: bool = True
    frame_ancestors: tuple[str, ...] = ()  # CSP sources that may frame the pages (a bureau portal); () = none
    limits: Limits = field(default_factory=Limits)  # signaling limits (sfu.admission)
    allowed_origins: list[str] = field(default_factory=list)  # pages elsewhere that may open socket.io
    trusted_proxies: list[str] = field(default_factory=list)  # CIDRs whose X-Forwarded-For names the client
    metrics_port: int | None = None  # /metrics without a token on 127.0.0.1:PORT (else admin token only)
    oidc: OidcSettings | None = None  # login with the province's identity provider (None: token links only)
    oidc_roles_claim: str = "roles"  # the ID token claim holding the role values (twinclass.login_roles)
    oidc_provider_logout: bool = True  # POST /logout goes on to the provider's end_session_endpoint
    session_s: float = 12 * 3600.0  # a login's absolute lifetime
    session_idle_s: float = 2 * 3600.0  # ... and how long it lasts unused
    forward_path: str = "slim"  # how a forwarded packet goes through aiortc (sfu.media.aiortc_adapter.FORWARD_PATHS)
    tiers: bool = True  # a weak downlink gets a server-made lower tier (False: full streams to all, for benches)
    event_loop: str = "uvloop"  # uvloop | asyncio (twinclass.commands.run_serve)
    hls: str = "broadcast"  # which lessons get a live HLS stream: broadcast | all | off (recorder.live_hls)

    @property
    def public_url(self) -> str:
        if self.node_url:
            return self.node_url.rstrip("/")
        return f"http://{public_host(self.hosts)}:{self.port}"

    def effective_ice_addresses(self) -> list[str] | None:
        if self.ice_addresses is not None:
            return self.ice_addresses
        return loopback_ice_addresses(self.hosts)  # None: every interface, IPv4 and IPv6


@dataclass
class Services:
    """Everything the server is made of, wired once (tests reach in through this)."""

    config: ServerConfig
    store: LessonStore
    attendance: AttendanceLog
    tokens: TokenIssuer
    rooms: RoomDirectory
    sio: SignalingServer
    signaling: Signaling
    app: web.Application
    recorder: recorder_service.RecorderService | None = None


def build(config: ServerConfig) -> Services:
    prepare_data_dir(config.data_dir)  # 0700: comments, attendance and the token secret live there
    use_host_addresses(config.effective_ice_addresses())
    use_forward_path(config.forward_path)
    secure_database_files(config.data_dir, config.database_url)  # an existing database: 0600, or a WARNING
    engine = make_engine(database_url(config.data_dir, config.database_url))
    secure_database_files(config.data_dir, config.database_url, warn=False)  # a new one
    store = LessonStore(engine)
    # a node of a cluster closes only its own attendance rows (another node's classrooms are still there)
    attendance = AttendanceLog(engine, node=config.public_url, shared=bool(config.redis_url))
    attendance.close_open(datetime.now(UTC), "server restarted")  # rows a crash left open
    secret = token_secret(config.data_dir, config.secret)
    log_redaction.install([secret, *([config.oidc.client_secret] if config.oidc else [])])
    tokens = TokenIssuer(secret)
    rooms = RoomDirectory(config.ice_servers, config.video_codecs, config.tiers)
    proxies = TrustedProxies(config.trusted_proxies)
    manager = socketio.AsyncRedisManager(config.redis_url) if config.redis_url else None
    registry: NodeRegistry = (
        RedisRegistry(config.redis_url, config.public_url) if config.redis_url else LocalRegistry(config.public_url)
    )
    admission = Admission(config.limits, proxies)
    sio = SignalingServer(
        # a page of another node of the cluster may connect: a viewer fails over to us when its node dies
        admission, OriginPolicy(config.public_url, config.allowed_origins, proxies, registry.members),
        client_manager=manager,
        ping_interval=10, ping_timeout=10,  # a classroom that drops off is noticed within ~20 s
    )
    app = web.Application(client_max_size=1024 * 1024, middlewares=[error_middleware()])
    if config.oidc is not None:  # first: every route after it knows who a login session is
        login_routes.install(app, login_routes.Login(
            login_routes.LoginConfig(config.public_url, RoleRule(claim=config.oidc_roles_claim),
                                     provider_logout=config.oidc_provider_logout),
            OidcClient(config.oidc), SessionStore(engine, absolute_s=config.session_s, idle_s=config.session_idle_s),
            store, tokens, proxies))
    logout_targets = [normalize_origin(config.oidc.issuer) or ""] if config.oidc else []  # POST /logout's redirect
    http_policy.install(app, http_policy.policy_for(config.frame_ancestors, config.public_url,
                                                    timetable_pages.inline_style_hashes(), logout_targets,
                                                    registry.members))
    sio.attach(app)
    cascade = None
    if config.redis_url:  # viewers are placed by load; an edge takes a lesson from its origin (sfu.cascade)
        sampler = NodeLoadSampler(rooms, config.public_url, config.node_capacity)
        cascade = Cascade(registry, rooms, tokens, sampler.now)

        async def report_load(app: web.Application) -> None:
            registry.report_load(sampler)

        app.on_startup.append(report_load)
    signaling = Signaling(sio, store, tokens, rooms, registry, attendance, admission, sio.error_counts, cascade)
    app.add_routes(lesson_routes(store, tokens, rooms, registry))
    app.add_routes(debug_routes(tokens, rooms, signaling, sio))

    app.add_routes(scheduler_http.make_routes(lambda request: _check_admin(request, tokens), config.data_dir,
                                              timetable_pages.render))

    web_routes.add_routes(app, store=store, tokens=tokens, rooms=rooms, data_dir=config.data_dir)

    study_routes.add_study_routes(app, store=store, tokens=tokens, rooms=rooms, data_dir=config.data_dir,
                                  engine=engine)

    recorder = recorder_service.attach(app, rooms=rooms, store=store, tokens=tokens, data_dir=config.data_dir,
                                       config=replace(RecorderConfig.from_env(), hls=config.hls))
    metrics.attach(app, rooms=rooms, tokens=tokens, recorder=recorder, signaling=signaling, port=config.metrics_port)
    admin_routes.add_admin_routes(app, store=store, tokens=tokens, rooms=rooms, engine=engine, signaling=signaling,
                                  recordings=recorder, public_url=config.public_url, data_dir=config.data_dir,
                                  registry=registry)

    async def close_rooms(app: web.Application) -> None:
        await rooms.close()
        attendance.close_open(datetime.now(UTC), "server stopped")
        await registry.close()
        logger.info("stopping: rooms closed")

    app.on_shutdown.append(close_rooms)
    services = Services(config, store, attendance, tokens, rooms, sio, signaling, app, recorder)
    if config.create_demo:
        ensure_demo_lesson(store)
    return services


def _check_admin(request: web.Request, tokens: TokenIssuer) -> None:
    require_admin(request, tokens)


def ensure_demo_lesson(store: LessonStore) -> Lesson:
    lesson = store.get(DEMO_LESSON_ID)
    if lesson is not None:
        return lesson
    lesson = Lesson(
        id=DEMO_LESSON_ID,
        title="演示课：英语 Demo lesson (English)",
        subject="英语",
        grade="3",
        master=Classroom("master", "城区主讲教室 Master classroom", "实验小学"),
        rurals=[
            Classroom("rural-1", "教学点一 Rural classroom 1", "山口教学点"),
            Classroom("rural-2", "教学点二 Rural classroom 2", "河西教学点"),
            Classroom("rural-3", "教学点三 Rural classroom 3", "石桥教学点"),
        ],
    )
    try:
        return store.create(lesson)
    except (LessonError, sa_exc.IntegrityError):  # another node created it at the same moment
        return store.get(DEMO_LESSON_ID) or lesson


def join_links(services: Services, lesson: Lesson, ttl_s: float = 12 * 3600) -> list[tuple[str, str, str]]:
    """(who, token, page link) for each classroom of the lesson and one observer."""
    out = []
    base = services.config.public_url
    for c in lesson.classrooms:
        role = lesson.role_of(c.id) or Role.RURAL
        token = services.tokens.mint(lesson=lesson.id, classroom=c.id, name=c.name, role=role, ttl_s=ttl_s)
        out.append((f"{role} {c.id}", token, f"{base}/lesson/{lesson.id}?token={token}"))
    token = services.tokens.mint(lesson=lesson.id, classroom="observer", name="观察员 Observer", role=Role.OBSERVER,
                                 ttl_s=ttl_s)  # a new `sub`: its own author, not the same as last start's link
    out.append(("observer", token, f"{base}/lesson/{lesson.id}?token={token}"))
    return out


async def serve(config: ServerConfig) -> None:
    """Run the server until SIGINT or SIGTERM, then drain (see `drain`) and return."""
    services = build(config)
    runner = web.AppRunner(services.app, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    sites = [web.TCPSite(runner, host, config.port) for host in bind_hosts(config.hosts)]
    for site in sites:
        await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    lesson = services.store.get(DEMO_LESSON_ID)
    print(f"Twinclass lesson server on {config.public_url}  (data: {config.data_dir.resolve()})", flush=True)
    listening = ", ".join(f"{url_host(host)}:{config.port}" for host in bind_hosts(config.hosts))
    print(f"Listening on {listening}", flush=True)
    if lesson is not None:
        print(f"Demo lesson '{lesson.title}' — join links:", flush=True)
        for who, _token, link in join_links(services, lesson):
            print(f"  {who:16s} {link}", flush=True)
        print("Headless classroom:  twinclass classroom --server URL --token-file FILE  (FILE holds the token= "
              "part of a link above)", flush=True)
        print(f"Admin token for the API:  twinclass token --data-dir {config.data_dir} --role admin", flush=True)
    if config.oidc is not None:
        print(f"Login with {config.oidc.issuer}:  {config.public_url}/login", flush=True)
    await stop.wait()
    print("shutting down", flush=True)
    stopping = time.monotonic()
    for site in sites:  # no new connections: a classroom told to come back finds the next server, not us
        await site.stop()
    try:
        await drain(services)
    except Exception:  # whatever failed, the process still stops (the next start recovers the rest)
        logger.exception("draining the lesson server failed")
    logger.info("drained in %.2f s", time.monotonic() - stopping)
    await runner.cleanup()
    logger.info("stopped in %.2f s", time.monotonic() - stopping)


async def drain(services: Services, reason: str = "server stopped",
                retry_after_s: float = STOPPING_RETRY_AFTER_S) -> None:
    """Tell every connected classroom the server is stopping (`server_stopping` {reason,
    retry_after_s}), close the open attendance rows with `reason`, end the live recordings (built on
    the next start), then close every socket; leaving the rooms closes the peer connections.
    """
    sio = services.sio
    sids = [sid for sid, _eio in sio.manager.get_participants("/", None)]
    logger.info("stopping: telling %d connected client(s)", len(sids))
    payload = {"reason": reason, "retry_after_s": retry_after_s}
    await asyncio.gather(*(sio.emit("server_stopping", payload, to=sid) for sid in sids), return_exceptions=True)
    await asyncio.to_thread(services.attendance.close_open, datetime.now(UTC), reason)
    if services.recorder is not None:
        await services.recorder.close_live(reason)
    await asyncio.gather(*(sio.disconnect(sid) for sid in sids), return_exceptions=True)
