"""A socket.io client that sends whatever a fuzzer made and judges what the server did with it.

The signaling contract (sfu/signaling.py): every message is answered through the ack, as
{"ok": true, ...} or {"ok": false, "error": {"code", "message"}}, possibly with an `error` event
first, and a protocol error closes that socket. The one code that means "the server could not
handle this message" is `server_error` (a handler raised something unexpected): for a fuzzer that
is a bug, as is no answer at all, an answer of another shape, or an error without code/message.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import socketio
from fuzz_rig import REPLY_TIMEOUT_S, FuzzFailure

INTERNAL_CODES = frozenset({"server_error"})
CLOSING_CODES = frozenset({"protocol_error", "bad_token", "not_found", "redirect"})
# The server's admission limits (joins per second per address, sockets per token): a fuzzer joins far
# more often than a classroom, so it waits for the limit to let it through, as a patient client would.
RATE_CODES = frozenset({"limit_join_rate", "limit_token", "limit_address"})
RATE_RETRIES = 40


@dataclass
class Outcome:
    """What the server did with one message."""

    event: str
    ok: bool
    code: str | None = None  # the error code when refused
    closed: bool = False  # the server closed the socket
    reply: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "accepted" if self.ok else "closed" if self.closed and self.code is None else f"refused:{self.code}"


def _check_error(where: str, error: Any) -> str:
    if not isinstance(error, dict) or not isinstance(error.get("code"), str) or not isinstance(
            error.get("message"), str):
        raise FuzzFailure(f"{where}: an error without code and message: {error!r}")
    code = str(error["code"])
    if code in INTERNAL_CODES:
        raise FuzzFailure(f"{where}: the server could not handle the message: {error['message']}")
    return code


def _rate_limited(reply: Any) -> bool:
    return isinstance(reply, dict) and isinstance(reply.get("error"), dict) and reply["error"].get("code") in RATE_CODES


class FuzzClient:
    """One socket.io connection of the fuzzer, joined with `token` (re-made when the server closes it)."""

    def __init__(self, url: str, token: str | None = None, lesson: str | None = None) -> None:
        self.url = url
        self.token = token
        self.lesson = lesson
        self.sio: socketio.AsyncClient | None = None
        self.errors: list[Any] = []
        self.joined: dict[str, Any] = {}
        self.connects = 0
        self._gone = asyncio.Event()

    async def _connect(self) -> socketio.AsyncClient:
        client = socketio.AsyncClient(reconnection=False)

        @client.on("error")
        async def on_error(data: Any = None) -> None:
            self.errors.append(data)

        @client.on("*")
        async def any_event(event: str, data: Any = None) -> None:
            return None

        gone = asyncio.Event()
        self._gone = gone

        @client.event
        async def disconnect(*args: Any) -> None:
            gone.set()

        await client.connect(self.url, transports=["websocket"], wait_timeout=REPLY_TIMEOUT_S)
        self.connects += 1
        return client

    async def ready(self, *, join: bool = True) -> socketio.AsyncClient:
        """A connected client, joined unless `join` is false (then a fresh, never-joined one)."""
        if self.sio is not None and self.sio.connected and (bool(self.joined) == join):
            return self.sio
        await self.close()
        self.sio = await self._connect()
        self.joined = {}
        if join and self.token is not None:
            payload: dict[str, Any] = {"token": self.token}
            if self.lesson:
                payload["lesson"] = self.lesson
            for _ in range(RATE_RETRIES):
                reply = await self.sio.call("join", payload, timeout=REPLY_TIMEOUT_S)
                if not _rate_limited(reply):
                    break
                await self._wait_for_rate()  # the server closes a refused socket: join again on a new one
                self.sio = await self._connect()
            if not isinstance(reply, dict) or not reply.get("ok"):
                raise FuzzFailure(f"the fuzzer's own join was refused: {reply!r}")
            self.joined = reply
        return self.sio

    async def send(self, event: str, data: Any, *, join: bool = True, args: tuple[Any, ...] | None = None) -> Outcome:
        """Send one message (`args`: several arguments instead of one) and judge the answer.

        A joined session can end on the server's side between two messages (its media failed, the
        server closed it after an error event): then the message goes again on a new session."""
        try:
            outcome = await self._send(event, data, join=join, args=args)
            for _ in range(RATE_RETRIES):  # the server's join rate limit: the input was not tried yet
                if outcome.code not in RATE_CODES:
                    break
                await self._wait_for_rate()
                outcome = await self._send(event, data, join=join, args=args)
            if join and outcome.code == "not_joined":
                await self.close()
                outcome = await self._send(event, data, join=join, args=args)
            return outcome
        except FuzzFailure:
            await self.close()
            raise

    async def _send(self, event: str, data: Any, *, join: bool, args: tuple[Any, ...] | None) -> Outcome:
        client = await self.ready(join=join)
        self.errors.clear()
        payload: Any = args if args is not None else data
        # python-socketio's call() waits out its timeout even when the server closes the socket (as it
        # does for a message over its size limit): race it against the disconnect
        call = asyncio.ensure_future(client.call(event, payload, timeout=REPLY_TIMEOUT_S + 1))
        closed = asyncio.ensure_future(self._gone.wait())
        done, _ = await asyncio.wait({call, closed}, timeout=REPLY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        closed.cancel()
        if call not in done:
            call.cancel()
            await asyncio.gather(call, return_exceptions=True)
            if closed in done or not client.connected:
                return self._closed(event)
            raise FuzzFailure(f"{event}: no answer within {REPLY_TIMEOUT_S:.0f} s, socket still open")
        try:
            reply = call.result()
        except (socketio.exceptions.TimeoutError, socketio.exceptions.BadNamespaceError):
            return self._closed(event)  # disconnected under us
        for error in list(self.errors):
            _check_error(f"{event} (error event)", error)
        if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
            raise FuzzFailure(f"{event}: an answer of no known shape: {reply!r}")
        if reply["ok"]:
            if event == "leave":
                await self.close()
            return Outcome(event, True, reply=reply)
        code = _check_error(event, reply.get("error"))
        outcome = Outcome(event, False, code=code, closed=not client.connected, reply=reply)
        if code in CLOSING_CODES:  # the server closes this socket: start the next message on a new one
            await self.close()
        return outcome

    async def send_raw(self, frame: str, *, join: bool = True) -> Outcome:
        """Write one socket.io frame as it is (a truncated or malformed packet), then check that the
        socket is either closed or still answers a well-formed message."""
        client = await self.ready(join=join)
        self.errors.clear()
        try:
            await client.eio.send(frame)
        except Exception:  # the transport is already gone
            return self._closed("raw frame")
        outcome = await self.send("take_floor", {}, join=join)
        return Outcome("raw frame", outcome.ok, outcome.code, outcome.closed, outcome.reply)

    def _closed(self, event: str) -> Outcome:
        for error in list(self.errors):
            _check_error(f"{event} (error event)", error)
        self.joined = {}
        return Outcome(event, False, closed=True)

    async def _wait_for_rate(self) -> None:
        await self.close()
        await asyncio.sleep(0.25)

    async def close(self) -> None:
        if self.sio is not None:
            with contextlib.suppress(Exception):
                await self.sio.disconnect()
        self.sio = None
        self.joined = {}
