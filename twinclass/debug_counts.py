"""`GET /api/debug/counts` (admin): what a leak would grow, counted live, and where tasks wait.

The fuzz suite (tests/fuzz/) and its long version (bench/fuzz.py) read it before and after a run:
every session, peer connection and task that hostile input made must be gone again. Peer
connections are counted by walking the garbage collector's objects for open `RTCPeerConnection`s,
so one that lost every reference from the rooms (the leak this looks for) still counts; that walk
takes tens of milliseconds, which is why it is a debug route and never polled by pages.
"""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from pathlib import Path
from typing import Any

import socketio
from aiohttp import web
from aiortc import RTCPeerConnection

from sfu.http_api import require_admin
from sfu.room import RoomDirectory
from sfu.signaling import Signaling
from sfu.tokens import TokenIssuer


def open_peer_connections() -> int:
    """RTCPeerConnections in this process that are not closed (referenced or not)."""
    return sum(1 for obj in gc.get_objects()
               if isinstance(obj, RTCPeerConnection) and obj.connectionState != "closed")


def task_places() -> dict[str, int]:
    """Where the event loop's tasks wait: each task's coroutine and the innermost frame it awaits in."""
    places: Counter[str] = Counter()
    for task in asyncio.all_tasks():
        coro: Any = task.get_coro()
        name = getattr(coro, "__qualname__", type(coro).__name__)
        frame = None
        while coro is not None and getattr(coro, "cr_frame", None) is not None:
            frame = coro.cr_frame
            coro = getattr(coro, "cr_await", None)
        where = f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno}" if frame is not None else "?"
        places[f"{name} @ {where}"] += 1
    return dict(places.most_common(40))


def counts(rooms: RoomDirectory, signaling: Signaling, sio: socketio.AsyncServer) -> dict[str, Any]:
    participants = {lesson_id: len(room.participants) for lesson_id, room in rooms.rooms.items()}
    return {
        "tasks": len(asyncio.all_tasks()),
        "task_places": task_places(),
        "peer_connections": open_peer_connections(),
        "signaling_sessions": len(signaling.sessions),
        # engine.io drops a closed socket from its table on its next ping round (up to ~20 s later)
        "sockets": sum(1 for s in list(sio.eio.sockets.values()) if not getattr(s, "closed", False)),
        "sockets_closed": sum(1 for s in list(sio.eio.sockets.values()) if getattr(s, "closed", False)),
        "unjoined_sockets": [r for r in sio.socket_report() if not r["joined"] and not r["closed"]][:20]
        if hasattr(sio, "socket_report") else [],
        "rooms": len(rooms.rooms),
        "participants": participants,
    }


def debug_routes(tokens: TokenIssuer, rooms: RoomDirectory, signaling: Signaling,
                 sio: socketio.AsyncServer) -> list[web.RouteDef]:
    async def debug_counts(request: web.Request) -> web.Response:
        require_admin(request, tokens)
        return web.json_response(counts(rooms, signaling, sio))

    return [web.get("/api/debug/counts", debug_counts)]
