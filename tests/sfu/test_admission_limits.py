"""Signaling limits against a real `twinclass serve` (issue 10, item 2): one token's 40 sockets, a
flood of joins, sockets that never join, connections per address, peer connections per session,
message sizes. Each refusal is a clear `limit_…` error, the socket is closed, attendance gets no
row for it, and the lesson's other sessions are untouched."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from harness import ClassroomLauncher, ServerProcess, mint_token, raw_client, start_server, wait_until


def serve(tmp_path: Path, *args: str) -> ServerProcess:
    """A server with these options; no recorder (fewer descriptors and processes to account for)."""
    return start_server(tmp_path / "var", *args, env={"TWINCLASS_RECORDER": "0"})


def fds(server: ServerProcess) -> int:
    return len(os.listdir(f"/proc/{server.pid}/fd"))


def attendance_rows(server: ServerProcess, role: str) -> int:
    with sqlite3.connect(server.data_dir / "twinclass.db") as db:
        return int(db.execute("SELECT count(*) FROM attendance WHERE role = ?", (role,)).fetchone()[0])


async def wait_async(predicate: Any, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(0.05)


def errors(client: Any) -> list[dict[str, Any]]:
    return [data for event, data in client.received if event == "error"]


async def test_one_token_holds_four_sockets_and_forty_subscribes_build_no_more_connections(tmp_path: Path) -> None:
    with serve(tmp_path, "--join-burst", "100", "--max-joins-per-second", "100") as server:
        token = mint_token(server, role="observer")
        clients = await asyncio.gather(*(raw_client(server.url) for _ in range(40)))
        before = fds(server)
        replies = await asyncio.gather(*(c.call("join", {"token": token}, timeout=20) for c in clients))
        joined = [c for c, r in zip(clients, replies, strict=True) if r["ok"]]
        refused = [(c, r) for c, r in zip(clients, replies, strict=True) if not r["ok"]]
        assert len(joined) == 4 and len(refused) == 36
        for _client, reply in refused:
            assert reply["error"]["code"] == "limit_token", reply
            assert "at most 4" in reply["error"]["message"]
        await wait_async(lambda: all(not c.connected for c, _ in refused), 10, "refused sockets closed")
        assert all(errors(c) and errors(c)[0]["code"] == "limit_token" for c, _ in refused)
        assert all(c.connected for c in joined)
        assert attendance_rows(server, "observer") == 4, "a refused join writes no attendance row"

        # peer connections per session: subscribe again and again re-offers the one connection
        first = await joined[0].call("subscribe", {})
        assert first["ok"] and first["type"] == "offer"
        after_one = fds(server)
        for _ in range(40):
            again = await joined[0].call("subscribe", {}, timeout=20)
            assert again["ok"]
        assert fds(server) <= after_one + 2, (before, after_one, fds(server))
        assert fds(server) < before + 20, "40 refused sockets and 41 subscribes left descriptors behind"

        # a socket of the token that leaves makes room for another (once the server has seen it go)
        await joined[1].disconnect()
        late = None
        for _ in range(40):
            candidate = await raw_client(server.url)
            reply = await candidate.call("join", {"token": token})
            if reply["ok"]:
                late = candidate
                break
            assert reply["error"]["code"] == "limit_token"
            await candidate.disconnect()
            await asyncio.sleep(0.1)
        assert late is not None, "the place a socket left was never given back"
        for c in [*joined, late]:
            await c.disconnect()


async def test_a_flood_of_joins_is_refused_beyond_the_rate_and_others_are_untouched(tmp_path: Path) -> None:
    with serve(tmp_path, "--max-joins-per-second", "2", "--join-burst", "5") as server:
        master = await raw_client(server.url)
        assert (await master.call("join", {"token": mint_token(server, role="master", classroom="master")}))["ok"]
        tokens = [mint_token(server, role="observer", name=f"o{i}") for i in range(12)]
        clients = await asyncio.gather(*(raw_client(server.url) for _ in tokens))
        replies = await asyncio.gather(*(c.call("join", {"token": t}) for c, t in zip(clients, tokens, strict=True)))
        ok = [r for r in replies if r["ok"]]
        limited = [r for r in replies if not r["ok"]]
        assert len(ok) <= 5 and len(limited) >= 7, replies  # the master's join took one of the burst
        assert {r["error"]["code"] for r in limited} == {"limit_join_rate"}
        assert "at most 2 a second" in limited[0]["error"]["message"]
        await wait_async(lambda: all(not c.connected for c, r in zip(clients, replies, strict=True) if not r["ok"]),
                         10, "rate-limited sockets closed")
        assert attendance_rows(server, "observer") == len(ok)
        # the master's session never noticed; after a second the bucket has refilled
        assert master.connected and (await master.call("raise_hand", {}))["error"]["code"] == "forbidden"
        await asyncio.sleep(1.0)
        again = await raw_client(server.url)
        assert (await again.call("join", {"token": mint_token(server, role="observer", name="later")}))["ok"]
        for c in [master, again, *clients]:
            await c.disconnect()


async def test_sockets_that_never_join_are_closed_after_the_join_timeout(tmp_path: Path) -> None:
    with serve(tmp_path, "--join-timeout", "1.5") as server:
        base = fds(server)
        member = await raw_client(server.url)
        assert (await member.call("join", {"token": mint_token(server, role="observer")}))["ok"]
        idle = await asyncio.gather(*(raw_client(server.url) for _ in range(20)))  # socket.io connected, no join
        async with aiohttp.ClientSession() as http:
            ws_url = server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
            bare = [await http.ws_connect(ws_url) for _ in range(20)]  # engine.io only, never a namespace

            async def until_closed(ws: aiohttp.ClientWebSocketResponse) -> float:
                async for msg in ws:
                    if msg.data == "2":
                        await ws.send_str("3")  # answer pings: only the deadline may close it
                return time.monotonic()

            opened = time.monotonic()
            closed_at = await asyncio.wait_for(asyncio.gather(*(until_closed(ws) for ws in bare)), 10)
        assert max(closed_at) - opened < 4.5, "bare sockets outlived the 1.5 s join timeout"
        await wait_async(lambda: all(not c.connected for c in idle), 5, "idle socket.io clients closed")
        assert all(errors(c)[0]["code"] == "limit_join_timeout" for c in idle)
        assert "within 1.5 s" in errors(idle[0])[0]["message"]
        await wait_async(lambda: fds(server) <= base + 6, 5, f"descriptors back near {base} (now {fds(server)})")
        await asyncio.sleep(1.0)
        assert member.connected, "a joined socket is never closed by the deadline"
        # a session that leaves must join again in time too
        assert (await member.call("leave", {}))["ok"]
        await wait_async(lambda: not member.connected, 5, "a socket idle after leaving closed")


async def test_connections_per_address_are_bounded(tmp_path: Path) -> None:
    with serve(tmp_path, "--max-sockets-per-address", "5") as server:
        clients = [await raw_client(server.url) for _ in range(5)]
        sixth = socketio.AsyncClient(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await sixth.connect(server.url, transports=["websocket"], wait_timeout=10)
        await sixth.shutdown()
        request = urllib.request.Request(server.url + "/socket.io/?EIO=4&transport=polling")
        with pytest.raises(urllib.error.HTTPError) as refused:
            await asyncio.to_thread(urllib.request.urlopen, request, timeout=5)
        assert refused.value.code == 429
        body = refused.value.read().decode()
        assert '"limit_address"' in body and "at most 5" in body
        await clients[0].disconnect()
        await asyncio.sleep(0.3)
        replacement = await raw_client(server.url)
        assert replacement.connected
        for c in [*clients[1:], replacement]:
            await c.disconnect()


async def test_messages_and_fields_over_their_size_are_refused(tmp_path: Path) -> None:
    with serve(tmp_path, "--max-message-bytes", "20000") as server:
        other = await raw_client(server.url)
        assert (await other.call("join", {"token": mint_token(server, role="observer", name="other")}))["ok"]
        big = await raw_client(server.url)
        with pytest.raises(socketio.exceptions.TimeoutError):
            await big.call("join", {"token": "x" * 30000}, timeout=3)
        await wait_async(lambda: not big.connected, 5, "the oversized message's socket closed")
        field = await raw_client(server.url)
        reply = await field.call("join", {"token": "x" * 5000})
        assert reply["error"] == {"code": "protocol_error", "message": "join: token: too long (at most 4096)"}
        sdp = await raw_client(server.url)
        assert (await sdp.call("join", {"token": mint_token(server, role="rural", classroom="rural-1")}))["ok"]
        reply = await sdp.call("publish", {"sdp": "v=0\r\n" + "m=audio 9 RTP/AVP 0\r\n" * 9, "sources": {}})
        assert reply["error"]["code"] == "protocol_error"
        assert "9 media sections (at most 8)" in reply["error"]["message"]
        assert other.connected and (await other.call("subscribe", {}))["ok"]
        await other.disconnect()


def test_the_terminal_retries_a_join_refused_by_the_rate_limit(tmp_path: Path) -> None:
    """A limit is not a verdict on the token: the headless classroom comes back and joins."""
    with serve(tmp_path, "--max-joins-per-second", "0.5", "--join-burst", "1") as server, \
            ClassroomLauncher(server, tmp_path) as classrooms:
        rural = classrooms.start("rural-1", "rural", "--video", "none", "--audio", "none", "--duration", "60")

        def refused_once() -> bool:
            return rural.log.exists() and "limit_join_rate" in rural.log.read_text()

        async def spend_joins_until_the_terminal_is_refused() -> None:
            deadline = time.monotonic() + 60
            while not refused_once():
                assert time.monotonic() < deadline, "the terminal never tried to join"
                other = await raw_client(server.url)
                await other.call("join", {"token": mint_token(server, role="observer")})
                await other.disconnect()
                await asyncio.sleep(0.2)

        asyncio.run(spend_joins_until_the_terminal_is_refused())
        wait_until(lambda: rural.stats().get("sessions", 0) >= 1, 30, message="rural-1 joined after a refusal")
        assert "join refused:" not in rural.log.read_text() and rural.proc.poll() is None, "the terminal gave up"
