"""Hostile signaling against a real `twinclass serve` (issue 10, item 5): malformed socket.io frames,
ICE candidates of the wrong types, foreign `Origin`s. Each closes (or refuses) that connection
only, with a clear error; the log has no traceback and at most one line per bad connection; a
lesson going on beside it does not notice."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from harness import ClassroomLauncher, ServerProcess, mint_token, raw_client, start_server, wait_until

MALFORMED: list[str | bytes] = [
    "421[]",  # an event with no name
    '42["join",{"token":"tk-marker-9f3a',  # truncated JSON (with what looks like a token)
    b"\x00\x01\x02",  # binary where this protocol sends text
    "x",  # not an engine.io packet
    "",  # an empty one
    '42["connect"]',  # a reserved event name
    '42["join",1,2,3]',  # more arguments than an event takes
    "42" + "[" * 60000,  # nested too deep for the JSON decoder
    "4" + "[" * 60000,  # the same as an engine.io message that is no socket.io packet (engine.io parses it)
    "2" + "{" * 60000,  # a ping carrying it
    "43[1]",  # an ack the server never asked for
    '451-["join",{"_placeholder":true,"num":0}]',  # a binary event
]


def log_lines(server: ServerProcess) -> list[str]:
    return server.log.read_text(errors="replace").splitlines()


async def send_malformed(url: str, frame: str | bytes, *, repeat: int = 3) -> list[Any]:
    """Open a websocket, join the namespace, send `frame` `repeat` times; what came back until it closed."""
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket")
        assert (await ws.receive()).data.startswith("0{")
        await ws.send_str("40")
        assert (await ws.receive()).data.startswith("40{")
        for _ in range(repeat):
            if ws.closed:
                break
            try:
                await (ws.send_bytes(frame) if isinstance(frame, bytes) else ws.send_str(frame))
            except ConnectionResetError:
                break
        received = [msg.data async for msg in ws]
        return received


def test_malformed_frames_close_their_connection_with_one_warning_and_no_traceback(tmp_path: Path) -> None:
    with start_server(tmp_path / "var", env={"TWINCLASS_RECORDER": "0"}) as server, \
            ClassroomLauncher(server, tmp_path) as classrooms:
        check_malformed_frames(server, classrooms)


def check_malformed_frames(server: ServerProcess, classrooms: ClassroomLauncher) -> None:
    master = classrooms.start("master", "master", "--duration", "60", "--fps", "15", size="160x120")
    rural = classrooms.start("rural-1", "rural", "--duration", "60", "--fps", "15", size="160x120")
    wait_until(lambda: rural.remote("master").get("frames_verified", 0) > 30, 30, message="rural-1 sees the master")
    before = rural.remote("master")["frames_verified"]

    async def flood() -> list[list[Any]]:
        results = []
        for frame in MALFORMED * 2:
            results.append(await asyncio.wait_for(send_malformed(server.url, frame), 10))
        return results

    started = time.monotonic()
    results = asyncio.run(flood())
    assert time.monotonic() - started < 30
    for frame, received in zip(MALFORMED * 2, results, strict=True):
        if isinstance(frame, str) and frame[:2].startswith("4") and frame[1:2].isdigit():  # socket.io: told why
            errors = [json.loads(m[2:])[1] for m in received if isinstance(m, str) and m.startswith('42["error"')]
            assert errors and errors[0]["code"] == "malformed_frame", (frame[:40], received)
    # polling: a body that is not engine.io packets is a 400, and the same one line
    with urllib.request.urlopen(server.url + "/socket.io/?EIO=4&transport=polling", timeout=10) as resp:
        sid = json.loads(resp.read().decode()[1:])["sid"]
    post = urllib.request.Request(f"{server.url}/socket.io/?EIO=4&transport=polling&sid={sid}", data=b"\xff\xfe",
                                  method="POST", headers={"Content-Type": "text/plain"})
    with pytest.raises(urllib.error.HTTPError) as bad:
        urllib.request.urlopen(post, timeout=10)
    assert bad.value.code == 400

    # the lesson beside it kept going, and nothing asked it to reconnect
    wait_until(lambda: rural.remote("master").get("frames_verified", 0) > before + 45, 20,
               message="rural-1 still receiving the master")
    assert rural.stats()["sessions"] == 1 and master.stats()["sessions"] == 1
    lines = log_lines(server)
    assert not [line for line in lines if "Traceback" in line or " ERROR " in line], "\n".join(lines[-40:])
    warnings = [line for line in lines if "malformed socket.io frame" in line]
    assert 1 <= len(warnings) <= len(MALFORMED) * 2 + 1, "at most one line per connection"
    assert len(warnings) <= 5 * (int((time.monotonic() - started) / 10) + 1), "rate-limited"
    assert not [line for line in lines if "tk-marker-9f3a" in line], "frame content (a token) reached the log"


async def test_ice_candidates_of_the_wrong_type_are_a_protocol_error_naming_the_field(tmp_path: Path) -> None:
    with start_server(tmp_path / "var", env={"TWINCLASS_RECORDER": "0"}) as server:
        master = await raw_client(server.url)
        assert (await master.call("join", {"token": mint_token(server, role="master", classroom="master")}))["ok"]
        host = "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host"
        cases = {
            "sdpMid": {"candidate": host, "sdpMid": ["x"], "sdpMLineIndex": 0},
            "sdpMLineIndex": {"candidate": host, "sdpMid": "0", "sdpMLineIndex": 10**30},
            "candidate.candidate": {"candidate": 5, "sdpMid": "0"},
            "candidate.sdpMLineIndex": {"candidate": host, "sdpMLineIndex": True},
            "too long": {"candidate": "candidate:" + "1" * 5000, "sdpMid": "0"},
        }
        for i, (name, candidate) in enumerate(cases.items()):
            client = await raw_client(server.url)
            assert (await client.call("join", {"token": mint_token(server, role="observer", name=f"o{i}")}))["ok"]
            assert (await client.call("subscribe", {}))["ok"]
            fine = await client.call("ice", {"target": "subscribe", "candidate": {"candidate": host, "sdpMid": "0"}})
            assert fine["ok"], fine
            reply = await client.call("ice", {"target": "subscribe", "candidate": candidate})
            assert reply["ok"] is False and reply["error"]["code"] == "protocol_error", (name, reply)
            message = reply["error"]["message"]
            assert message.startswith("ice: candidate."), message
            assert name in message or (name == "too long" and "too long" in message), (name, message)
            deadline = time.monotonic() + 5
            while client.connected and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert not client.connected, f"{name}: the session stayed open"
        assert master.connected and (await master.call("subscribe", {}))["ok"], "another session was affected"
        await master.disconnect()
        assert not [line for line in log_lines(server) if "Traceback" in line]


def refused_origin(url: str, origin: str | None) -> int | None:
    """The HTTP status a polling handshake gets with this Origin (None: accepted)."""
    request = urllib.request.Request(url + "/socket.io/?EIO=4&transport=polling",
                                     headers={"Origin": origin} if origin else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.read().startswith(b"0{")
            return None
    except urllib.error.HTTPError as exc:
        body = exc.read().decode()
        assert '"bad_origin"' in body, body
        return exc.code


async def test_socketio_from_a_foreign_origin_is_refused(tmp_path: Path) -> None:
    with start_server(tmp_path / "var", "--allowed-origin", "https://school.example",
                      env={"TWINCLASS_RECORDER": "0"}) as server:
        port = server.port
        assert refused_origin(server.url, "http://evil.example") == 403
        assert refused_origin(server.url, "null") == 403
        assert refused_origin(server.url, f"http://127.0.0.1:{port}.evil.example") == 403
        assert refused_origin(server.url, f"http://localhost:{port}") == 403  # not the Host this came to
        assert refused_origin(server.url, None) is None  # the headless terminal sends no Origin
        assert refused_origin(server.url, f"http://127.0.0.1:{port}") is None  # the server's own pages
        assert refused_origin(server.url, "https://school.example") is None  # --allowed-origin
        # the Host a request came to is the server's own origin, whatever name reached it
        request = urllib.request.Request(f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling",
                                         headers={"Origin": f"http://localhost:{port}", "Host": f"localhost:{port}"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200
            assert resp.headers["Access-Control-Allow-Origin"] == f"http://localhost:{port}"
            assert resp.headers.get("Access-Control-Allow-Credentials") is None

        # websocket upgrades too (browsers apply no CORS to them: the Origin check is the only guard)
        async with aiohttp.ClientSession() as http:
            ws_url = server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(ws_url, headers={"Origin": "http://evil.example"})
            assert refused.value.status == 403
        evil = socketio.AsyncClient(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await evil.connect(server.url, transports=["websocket"], headers={"Origin": "http://evil.example"},
                               wait_timeout=10)
        await evil.shutdown()
        terminal = await raw_client(server.url)
        assert (await terminal.call("join", {"token": mint_token(server, role="rural", classroom="rural-1")}))["ok"]
        await terminal.disconnect()
        lines = log_lines(server)
        assert not [line for line in lines if "Traceback" in line]
        assert len([line for line in lines if re.search(r"refused a socket.io request from Origin", line)]) <= 6
