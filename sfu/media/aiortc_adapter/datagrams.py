"""A connection's ICE: a hook on its datagrams, both ways (the terminal's user-space link impairment), and
the candidate pair it uses."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import RTCPeerConnection

from sfu.media.aiortc_adapter.core import (
    logger,
)

# -- datagram hook (for a user-space link impairment) -----------------------------------------

DatagramSink = Callable[[bytes], None]
DatagramHook = Callable[[bytes, DatagramSink], None]


def wrap_ice_datagrams(pc: RTCPeerConnection, send: DatagramHook, receive: DatagramHook) -> int:
    """Route every datagram `pc`'s ICE transports carry through two hooks, so DTLS, SRTP and SRTCP alike.

    `send(data, forward)` gets each datagram the connection sends; calling `forward(data)` (now
    or later, from any callback on the loop) puts it on the wire. `receive(data, deliver)` gets
    each datagram that arrived; `deliver(data)` hands it to aiortc. Not calling them drops the
    datagram. Nothing else is decided here: the classroom terminal's `classroom_client/link.py`
    holds the impairment. ICE's own STUN checks bypass the hooks (aioice sends them itself).

    Call once the transports exist (the offerer after setLocalDescription, the answerer after
    setRemoteDescription) and before DTLS starts; transports already wrapped are skipped, so
    calling again after renegotiation is safe. Returns how many transports were wrapped now.
    """
    transports: list[Any] = [t.receiver.transport.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport.transport)
    wrapped = 0
    for ice in dict.fromkeys(transports):  # unique, in order (one with max-bundle)
        if getattr(ice, "_twinclass_datagrams", None) is None:
            ice._twinclass_datagrams = _IceDatagrams(ice, send, receive)
            wrapped += 1
    return wrapped


class _IceDatagrams:
    """Replaces one RTCIceTransport's `_send`/`_recv` (what RTCDtlsTransport calls in 1.16.0)."""

    def __init__(self, ice: Any, send: DatagramHook, receive: DatagramHook) -> None:
        self._ice = ice
        self._send_hook = send
        self._receive_hook = receive
        self._original_send: Callable[[bytes], Awaitable[None]] = ice._send
        self._original_recv: Callable[[], Awaitable[bytes]] = ice._recv
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()  # None: the connection ended
        self._pump: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Future[None]] = set()
        self._error: str | None = None
        ice._send = self._send
        ice._recv = self._recv
        ice.on("statechange", self._state_changed)

    async def _send(self, data: bytes) -> None:
        if self._error is not None or self._ice.state in ("closed", "failed"):
            raise ConnectionError("Cannot send data, not connected")
        self._send_hook(data, self._forward)

    def _forward(self, data: bytes) -> None:
        if self._error is not None:
            return
        task = asyncio.ensure_future(self._original_send(data))  # run in creation order: no reordering
        self._sending.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Future[None]) -> None:
        self._sending.discard(task)
        if not task.cancelled() and task.exception() is not None and not isinstance(task.exception(), ConnectionError):
            logger.warning("datagram send failed: %r", task.exception())

    async def _recv(self) -> bytes:
        if self._pump is None and self._error is None:  # started by DTLS's first read, once ICE is up
            self._pump = asyncio.ensure_future(self._run_pump())
            self._pump.set_name("twinclass-ice-datagram-pump")
        if self._queue.empty() and self._error is not None:
            raise ConnectionError(self._error)
        data = await self._queue.get()
        if data is None:
            self._queue.put_nowait(None)  # every later read fails the same way
            raise ConnectionError(self._error or "Connection lost while receiving data")
        return data

    def _deliver(self, data: bytes) -> None:
        if self._error is None:
            self._queue.put_nowait(data)

    async def _run_pump(self) -> None:
        try:
            while True:
                data = await self._original_recv()
                self._receive_hook(data, self._deliver)
        except ConnectionError as exc:
            self._end(str(exc) or "Connection lost while receiving data")
        except asyncio.CancelledError:
            self._end("Connection closed")
            raise

    def _end(self, reason: str) -> None:
        if self._error is None:
            self._error = reason
            self._queue.put_nowait(None)

    def _state_changed(self) -> None:
        if self._ice.state == "closed":
            self._end("Connection closed")
            if self._pump is not None:
                self._pump.cancel()




# -- the candidate pair in use ------------------------------------------------------------------


def selected_candidate_pair(pc: RTCPeerConnection) -> dict[str, Any] | None:
    """The ICE candidate pair `pc` sends on (its first transport, component 1): `{"local": {address,
    port, type}, "remote": {...}}`, or None before ICE has nominated one (aiortc exposes no
    candidate-pair stats; this reads aioice's nominated pair)."""
    transceivers = pc.getTransceivers()
    transport = transceivers[0].receiver.transport if transceivers else (pc.sctp.transport if pc.sctp else None)
    connection = getattr(getattr(transport, "transport", None), "_connection", None)
    pair = getattr(connection, "_nominated", {}).get(1)
    if pair is None:
        return None
    local, remote = pair.local_candidate, pair.remote_candidate
    return {"local": {"address": local.host, "port": local.port, "type": local.type},
            "remote": {"address": remote.host, "port": remote.port, "type": remote.type}}
