"""The socket.io server (python-socketio over aiohttp) with admission at the transport.

Before python-socketio sees a request: the `Origin` policy (`sfu.admission.OriginPolicy`: a
foreign page gets 403), the per-address connection limit (429) and a check of every frame, so
that garbage from a client never reaches python-engineio/socketio's decoders, whose failures are
ERROR tracebacks in the log. What is checked:

- engine.io: a websocket text frame or a polling body must be engine.io packets (a type digit
  0-6, UTF-8); binary is not part of this protocol (JSON text only);
- socket.io: a packet must decode; events are `[name, data?]` with a string name that is not a
  reserved one (`connect`, `disconnect`...); acks and binary packets are refused (the server
  never asks a client for an ack).

A malformed frame closes that connection (an `error` event `malformed_frame` first, when the
socket has joined the namespace), counts in `error_counts` and logs one WARNING line for that
connection, at most a few lines per 10 s in all (the rest are summed up). No frame content is
logged: a truncated join would carry a token.

A socket (engine.io connection) that has not joined a lesson within `Limits.join_timeout_s` of
connecting, or of its session ending, is closed (`error` `limit_join_timeout` first).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from typing import Any

import engineio
import socketio
from aiohttp import WSCloseCode, web
from engineio.async_drivers import aiohttp as eio_aiohttp
from socketio import packet as sio_packet

from sfu.admission import Admission, OriginPolicy

logger = logging.getLogger(__name__)

_ADDRESS = "twinclass.client_address"  # aiohttp request keys
_BODY = "twinclass.body"
CLOSE_WAIT_S = 2.0  # how long closing a socket may wait for engine.io to flush what it still holds
_RESERVED_EVENTS = frozenset({"connect", "connect_error", "disconnect", "message", "*"})
_EIO_TYPES = frozenset("0123456")


class LogBudget:
    """WARNING lines at most `lines` per `window_s`; the ones over budget are counted and summed up."""

    def __init__(self, log: logging.Logger, lines: int = 5, window_s: float = 10.0) -> None:
        self.log = log
        self.lines = lines
        self.window_s = window_s
        self._window_start = -window_s
        self._used = 0
        self.suppressed = 0

    def warning(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._window_start >= self.window_s:
            if self.suppressed:
                self.log.warning("%d similar warnings suppressed in the last %.0f s", self.suppressed, self.window_s)
            self._window_start, self._used, self.suppressed = now, 0, 0
        if self._used < self.lines:
            self._used += 1
            self.log.warning(message, *args)
        else:
            self.suppressed += 1


def engineio_text_problem(text: str) -> str | None:
    """Why a text frame is not an engine.io packet (None if it is one)."""
    if not text:
        return "an empty engine.io packet"
    if text[0] not in _EIO_TYPES:
        return "not an engine.io packet (binary or unknown type)" if text[0] == "b" else "not an engine.io packet"
    # engine.io json-decodes any payload whose first character is not a digit, before socket.io sees
    # it: a deeply nested one raised RecursionError out of the websocket handler (a 500 and a
    # traceback; found by bench/fuzz.py). A socket.io packet starts with its type digit; the other
    # engine.io packets this protocol uses carry nothing or "probe".
    if text[0] == "4":
        return None if len(text) > 1 and text[1].isdigit() else "an engine.io message that is not a socket.io packet"
    return None if text[1:] in ("", "probe") else "an engine.io control packet with a payload"


def polling_body_problem(body: bytes) -> str | None:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "a polling body that is not UTF-8"
    for part in text.split("\x1e"):
        problem = engineio_text_problem(part)
        if problem:
            return problem
    return None


def socketio_packet_problem(data: object) -> str | None:
    """Why an engine.io message is not a socket.io packet this server takes (None if it is one)."""
    if not isinstance(data, str):
        return "a binary frame (this protocol is JSON text)"
    try:
        pkt = sio_packet.Packet(encoded_packet=data)
    except (ValueError, RecursionError) as exc:
        return f"cannot decode the packet ({type(exc).__name__})"
    except Exception as exc:  # python-socketio's decoder raises IndexError, TypeError... on garbage
        return f"cannot decode the packet ({type(exc).__name__})"
    if pkt.packet_type in (sio_packet.CONNECT, sio_packet.DISCONNECT):
        return None
    if pkt.packet_type != sio_packet.EVENT:
        return f"socket.io packet type {pkt.packet_type} is not used by this protocol"
    if not isinstance(pkt.data, list) or not 1 <= len(pkt.data) <= 2:
        return "an event must be [name] or [name, data]"
    name = pkt.data[0]
    if not isinstance(name, str) or not name or len(name) > 64 or name in _RESERVED_EVENTS:
        return "an event name must be a string, not a reserved one"
    return None


class _Body:
    """Stands in for the request stream engine.io reads a polling POST from (we read it first)."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def read(self, n: int = -1) -> bytes:
        out, self._body = (self._body, b"") if n < 0 else (self._body[:n], self._body[n:])
        return out


def _translate_request(request: web.Request) -> dict[str, Any]:
    environ: dict[str, Any] = eio_aiohttp.translate_request(request)
    body = request.get(_BODY)
    if body is not None:
        environ["wsgi.input"] = _Body(body)
    return environ


class _CheckedWebSocket(eio_aiohttp.WebSocket):  # type: ignore[misc]
    """engine.io's aiohttp websocket: a text frame that is not an engine.io packet ends the connection;
    `abort` closes it from our side (engine.io's own close waits for the client to hang up)."""

    async def __call__(self, environ: dict[str, Any]) -> Any:
        sid = str(getattr(getattr(self.handler, "__self__", None), "sid", ""))
        sockets = self.server.guard.websockets
        sockets[sid] = self
        try:
            return await super().__call__(environ)
        finally:
            if sockets.get(sid) is self:
                del sockets[sid]

    async def abort(self) -> None:
        if self._sock is not None and not self._sock.closed:
            await self._sock.close(code=WSCloseCode.POLICY_VIOLATION)

    async def wait(self) -> Any:
        data = await super().wait()
        if isinstance(data, str):
            problem = engineio_text_problem(data)
            if problem is not None:
                socket = getattr(self.handler, "__self__", None)
                self.server.guard.malformed(str(getattr(socket, "sid", "")), problem, close=False)
                return None  # as if the client closed: engine.io closes the socket
        return data


class _EngineServer(engineio.AsyncServer):  # type: ignore[misc]
    guard: SignalingServer
    _async: dict[str, Any]  # engine.io's drivers for the async_mode

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._async = {**self._async, "websocket": _CheckedWebSocket, "translate_request": _translate_request}

    async def handle_request(self, request: web.Request) -> web.StreamResponse:  # type: ignore[override]
        refused = await self.guard.screen(request)
        if refused is not None:
            return refused
        response: web.StreamResponse = await super().handle_request(request)
        return response


def _refusal(status: int, code: str, message: str) -> web.Response:
    return web.Response(status=status, content_type="application/json",
                        text=json.dumps({"ok": False, "error": {"code": code, "message": message}}))


class SignalingServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's AsyncServer with the admission checks described above."""

    def __init__(self, admission: Admission, origins: OriginPolicy, *, client_manager: Any = None,
                 ping_interval: float = 10, ping_timeout: float = 10) -> None:
        engine_log = logging.getLogger("engineio.server.twinclass")
        engine_log.setLevel(logging.ERROR)  # its per-request warnings are client noise; errors stay
        super().__init__(async_mode="aiohttp", cors_allowed_origins=origins, cors_credentials=False,
                         client_manager=client_manager, max_http_buffer_size=admission.limits.max_message_bytes,
                         ping_interval=ping_interval, ping_timeout=ping_timeout, engineio_logger=engine_log)
        self.eio.guard = self
        self.admission = admission
        self.origins = origins
        self.error_counts: Counter[str] = Counter()  # error code -> how often a client was told it
        self.warnings = LogBudget(logger)
        self._opened: dict[str, float] = {}  # engine.io sid -> when it connected (monotonic)
        self.websockets: dict[str, _CheckedWebSocket] = {}  # engine.io sid -> its websocket, if it has one
        self._closing: set[str] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def _engineio_server_class(self) -> type:
        return _EngineServer

    def socket_report(self) -> list[dict[str, Any]]:
        """Each open engine.io socket as the admission sees it (for /api/debug/counts)."""
        now = time.monotonic()
        out = []
        for eio_sid, s in list(self.eio.sockets.items()):
            sid = self.manager.sid_from_eio_sid(eio_sid, "/")
            opened = self._opened.get(eio_sid)
            out.append({"age_s": None if opened is None else round(now - opened, 1), "tracked": opened is not None,
                        "namespace": sid is not None, "joined": sid is not None and self.admission.holds(sid),
                        "closing": eio_sid in self._closing, "closed": bool(getattr(s, "closed", False)),
                        "upgraded": bool(getattr(s, "upgraded", False)), "websocket": eio_sid in self.websockets})
        return out

    # -- before engine.io ------------------------------------------------------------------------

    async def screen(self, request: web.Request) -> web.Response | None:
        """Refuse a request from a foreign Origin, a new connection over the address limit, a bad body."""
        environ = eio_aiohttp.translate_request(request)
        origin = request.headers.get("Origin")
        if origin is not None and not self.origins.allows(origin, environ):
            self.error_counts["bad_origin"] += 1
            self.warnings.warning("refused a socket.io request from Origin %r (peer %s)", (origin or "")[:100],
                                  self.admission.proxies.peer(environ))
            return _refusal(403, "bad_origin", f"Origin {origin[:100]!r} may not connect "
                                               "(the server's own pages and --allowed-origin may)")
        sid = request.query.get("sid")
        if sid is None and request.method == "GET":
            address = self.admission.proxies.client_address(environ)
            full = self.admission.address_full(address)
            if full is not None:
                self.error_counts[full.code] += 1
                self.warnings.warning("refused a connection: %s", full)
                return _refusal(429, full.code, str(full))
            request[_ADDRESS] = address
        elif sid is not None and request.method == "POST":
            length = request.content_length
            if length is not None and length <= self.admission.limits.max_message_bytes:
                body = await request.read()
                problem = polling_body_problem(body)
                if problem is not None:
                    self.malformed(sid, problem)
                    return _refusal(400, "malformed_frame", f"malformed message: {problem}")
                request[_BODY] = body
        return None

    # -- engine.io events ------------------------------------------------------------------------

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        request = environ.get("aiohttp.request")
        address = request.get(_ADDRESS) if request is not None else None
        refused = self.admission.open_socket(eio_sid, address or self.admission.proxies.client_address(environ))
        if refused is not None:  # connections that raced past screen()
            self.error_counts[refused.code] += 1
            return False
        self._opened[eio_sid] = time.monotonic()
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.ensure_future(self._sweep())
        return await super()._handle_eio_connect(eio_sid, environ)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        try:
            await super()._handle_eio_disconnect(eio_sid, reason)
        finally:
            self.admission.close_socket(eio_sid)
            self._opened.pop(eio_sid, None)
            self._closing.discard(eio_sid)

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        problem = socketio_packet_problem(data)
        if problem is None:
            try:
                await super()._handle_eio_message(eio_sid, data)
                return
            except Exception as exc:  # what python-socketio itself could not handle in a checked packet
                problem = f"cannot handle the packet ({type(exc).__name__})"
        self.malformed(eio_sid, problem)

    # -- closing connections ---------------------------------------------------------------------

    def malformed(self, eio_sid: str, problem: str, *, close: bool = True) -> None:
        """Count a malformed frame; the first on a connection logs a line and closes it."""
        self.error_counts["malformed_frame"] += 1
        if eio_sid in self._closing:
            return
        self._closing.add(eio_sid)
        address = self.admission.address_of_socket(eio_sid)
        self.warnings.warning("malformed socket.io frame from %s: %s; closing that connection", address, problem)
        if close:
            self._close_later(eio_sid, "malformed_frame", f"malformed message: {problem}")

    def _close_later(self, eio_sid: str, code: str, message: str) -> None:
        sid = self.manager.sid_from_eio_sid(eio_sid, "/")

        async def close() -> None:
            if sid is not None:
                try:
                    await self.emit("error", {"code": code, "message": message}, to=sid)
                    await asyncio.sleep(0.2)  # let the error go out first
                    await self.disconnect(sid)
                except Exception:  # already gone
                    logger.debug("closing %s", sid, exc_info=True)
            if eio_sid in self.eio.sockets:
                try:  # engine.io waits for the socket's send queue to drain: a dead writer never drains it
                    await asyncio.wait_for(self.eio.disconnect(eio_sid), CLOSE_WAIT_S)
                except TimeoutError:
                    self.eio.sockets.pop(eio_sid, None)
            ws = self.websockets.get(eio_sid)
            if ws is not None:
                await ws.abort()

        task = asyncio.ensure_future(close())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _sweep(self) -> None:
        """Close sockets that have not joined in time (runs while any socket is open)."""
        timeout = self.admission.limits.join_timeout_s
        while self._opened:
            await asyncio.sleep(min(1.0, timeout / 4))
            now = time.monotonic()
            for eio_sid, opened in list(self._opened.items()):
                if eio_sid in self._closing:
                    continue
                sid = self.manager.sid_from_eio_sid(eio_sid, "/")
                if sid is not None and self.admission.holds(sid):
                    continue
                idle = self.admission.idle_since(sid) if sid is not None else None
                if now - max(opened, idle or 0.0) >= timeout:
                    self._closing.add(eio_sid)
                    self.error_counts["limit_join_timeout"] += 1
                    self._close_later(eio_sid, "limit_join_timeout",
                                      f"no lesson joined within {timeout:g} s of connecting")
