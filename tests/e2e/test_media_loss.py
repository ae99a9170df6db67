"""A classroom's media connection lost while its socket.io session stays up, on a real `twinclass serve`.

The rural classroom's terminal runs in this process (so the test can break its connections); the
master's is a `twinclass classroom` process writing its stats JSON. One connection is broken at a
time, three ways:

- "consent expired": our consent checks go unanswered (our requests never leave), and aioice
  closes the connection ("Consent to send expired"): ICE "failed", then the connection closes by
  itself. The server's side still answers our checks and sees nothing wrong; the terminal makes the
  connection again and the server takes the new one in place of the old.
- "ice stopped": our ICE transport is stopped under aiortc: our side is "closed" at once (not by
  our close()), the server's sees nothing for ~30 s. Made again and replaced, as above.
- "dtls close": our side sends a DTLS close_notify while our connection stays up; the server's
  side closes at once and it tells us (`media_lost`); the terminal makes the connection again.

Each time, on the same session (no new socket, no rejoin): the server no longer holds the dead
connection (its publication's tracks, its peer connection), the master decodes the rural
classroom's pattern again (or the rural classroom the master's), the recorder kept capturing.

A lesson page in Chromium whose publishing connection is closed under it (Chrome's DTLS close
reaches the server) is told, and publishes again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aioice.ice
import aioice.stun
import pytest
from aiortc import RTCDtlsTransport, RTCPeerConnection
from harness import ClassroomLauncher, ClassroomProcess, ServerProcess, mint_token, start_server, wait_for
from lesson_page import LessonPages

from classroom_client.session import ClassroomClient, ClientConfig
from classroom_client.sources import SourceSpec
from recorder.timeline import load_capture
from sfu.media.aiortc_adapter import core

FPS = 15
BACK_WITHIN_S = 5.0  # from the break to frames decoded again on the far side
STARTUP_S = 40.0


def dtls_of(pc: RTCPeerConnection) -> RTCDtlsTransport:
    transport = pc.getTransceivers()[0].receiver.transport  # max-bundle: one transport for all
    assert transport is not None
    return transport


async def expire_consent(pc: RTCPeerConnection, monkeypatch: pytest.MonkeyPatch) -> None:
    """Our consent checks on `pc` stop reaching the server, and expire after one unanswered check
    (aioice's rule is six, about 30 s: the same path, sooner); returns once aioice gave up. The
    rules are aioice's module constants: put back at once, our other connection keeps aioice's."""
    connection: Any = dtls_of(pc).transport._connection
    for protocol in connection._protocols:
        original = protocol.send_stun

        def send(message: aioice.stun.Message, addr: Any, original: Any = original) -> None:
            if message.message_class != aioice.stun.Class.REQUEST:  # we still answer the server's
                original(message, addr)

        protocol.send_stun = send
    with monkeypatch.context() as quick:
        quick.setattr(aioice.ice, "CONSENT_INTERVAL", 0.2)
        quick.setattr(aioice.ice, "CONSENT_FAILURES", 1)
        quick.setattr(core, "CONSENT_RETRANSMISSIONS", 0)
        connection._query_consent_task.cancel()  # the check under way waits ~5 s: start again, quick
        connection._query_consent_task = asyncio.ensure_future(connection.query_consent())
        await until(lambda: pc.connectionState != "connected", 5, "consent to expire")


async def stop_ice(pc: RTCPeerConnection, monkeypatch: pytest.MonkeyPatch) -> None:
    await dtls_of(pc).transport.stop()


async def send_dtls_close(pc: RTCPeerConnection, monkeypatch: pytest.MonkeyPatch) -> None:
    """A DTLS close_notify from our side, our connection left as it is (aiortc has no call for
    this: it sends one only when it closes the whole connection)."""
    dtls = dtls_of(pc)
    dtls._ssl.shutdown()  # type: ignore[union-attr]
    await dtls._write_ssl()  # type: ignore[attr-defined]


BREAKS: dict[str, Callable[[RTCPeerConnection, pytest.MonkeyPatch], Awaitable[None]]] = {
    "consent expired": expire_consent, "ice stopped": stop_ice, "dtls close": send_dtls_close}


async def api(server: ServerProcess, path: str, admin: str) -> dict[str, Any]:
    """The server's JSON API, off the event loop the rural terminal runs in."""
    code, body = await asyncio.to_thread(server.api, path, token=admin)
    assert code == 200, body
    return dict(body)


async def until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s: {what}"
        await asyncio.sleep(interval)


async def until_async(predicate: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s: {what}"
        await asyncio.sleep(0.25)


def remote(cp: ClassroomProcess, classroom: str, key: str) -> int:
    return int(cp.remote(classroom).get(key, 0))


def captured_packets(recording: Path, key: str) -> int:
    return sum(t.packets for t in load_capture(recording).tracks if t.key == key)


async def lose_and_recover(server: ServerProcess, master: ClassroomProcess, target: str, how: str,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    admin = mint_token(server, role="admin")
    rural = ClassroomClient(ClientConfig(server=server.url, token=mint_token(server, role="rural", classroom="rural-1"),
                                         sources=SourceSpec(width=320, height=240, fps=FPS)))
    await rural.start()
    try:
        master_view = rural.reception.remote("master")
        await until(lambda: remote(master, "rural-1", "frames_verified") > 2 * FPS
                    and master_view.frames_verified > 2 * FPS, STARTUP_S, "the two classrooms see each other")
        (recording,) = (await api(server, "/api/recordings?lesson=demo", admin))["recordings"]
        recording_dir = server.data_dir / "recordings" / recording["id"]
        await until(lambda: captured_packets(recording_dir, "rural-1:camera") > 0, 10, "the recorder captures rural-1")
        before = (await api(server, "/api/stats", admin))["lessons"]["demo"]
        baseline = await api(server, "/api/debug/counts", admin)
        sid = rural.sio.get_sid()
        pc = rural._pub if target == "publish" else rural._sub
        assert pc is not None and pc.connectionState == "connected"
        captured = captured_packets(recording_dir, "rural-1:camera")
        errors_before = remote(master, "rural-1", "decode_errors")

        broke = time.monotonic()
        await BREAKS[how](pc, monkeypatch)
        if target == "publish":  # the master's terminal decodes the rural classroom's pattern again
            seen = remote(master, "rural-1", "frames_verified")
            await until(lambda: remote(master, "rural-1", "frames_verified") > seen + FPS, 15,
                        "the master decodes rural-1 again")
        else:  # the rural classroom decodes the master's again
            seen = master_view.frames_verified
            await until(lambda: master_view.frames_verified > seen + FPS, 15, "rural-1 decodes the master again")
        took = time.monotonic() - broke
        print(f"{target} connection, {how}: {FPS} more frames verified {took:.2f} s after the break")
        assert took <= BACK_WITHIN_S, f"{took:.2f} s to decode again"

        # the same session, the one connection made again once; the old one is closed
        assert rural.sio.get_sid() == sid and rural.sessions == 1
        assert rural.media_restarts == {"publish": int(target == "publish"), "subscribe": int(target == "subscribe")}
        assert pc.connectionState == "closed"
        lost = [e for e in rural.events if e[1] == "media_lost"]
        assert [e[2]["connection"] for e in lost] == [target], lost
        if how == "dtls close":  # the server's side went first, and the server said so
            assert lost[0][2]["why"] == "the server's side closed", lost

        # the server holds the new connection alone: the lost one counted once, its pair and tracks gone
        after = (await api(server, "/api/stats", admin))["lessons"]["demo"]
        mine = {k: n for k, n in after["media_lost"].items() if k.startswith("rural-1/")}
        reason = "closed" if how == "dtls close" else "replaced"
        assert mine == {f"rural-1/{target}/{reason}": 1}, after["media_lost"]
        assert after["ice"]["rural-1"][target]["remote"] != before["ice"]["rural-1"][target]["remote"]
        other = "subscribe" if target == "publish" else "publish"
        assert after["ice"]["rural-1"][other] == before["ice"]["rural-1"][other]  # the other one untouched
        assert after["participants"] == before["participants"]
        for source in ("camera", "mic"):  # the new tracks feed every slot the old ones fed (master, recorder)
            track = after["tracks"][f"rural-1/{source}"]
            assert track["subscribers"] == before["tracks"][f"rural-1/{source}"]["subscribers"] >= 2
        if target == "publish":  # the pattern checks out after the switch: no corrupted picture
            assert remote(master, "rural-1", "decode_errors") == errors_before

        # nothing leaked: as many peer connections as before, no more tasks than a few
        def clean(counts: dict[str, Any]) -> bool:
            return (counts["peer_connections"] == baseline["peer_connections"]
                    and counts["signaling_sessions"] == baseline["signaling_sessions"]
                    and counts["tasks"] <= baseline["tasks"] + 5)

        await until_async(lambda: _counts_if(clean, server, admin), 10, f"counts back to {baseline}")

        # the recorder kept capturing rural-1's camera across the switch (a file that keeps growing)
        await until(lambda: captured_packets(recording_dir, "rural-1:camera") > captured + 3 * FPS, 10,
                    "the recording goes on with rural-1's camera")
    finally:
        await rural.close()


async def _counts_if(clean: Callable[[dict[str, Any]], bool], server: ServerProcess, admin: str) -> bool:
    return clean(await api(server, "/api/debug/counts", admin))


@pytest.mark.parametrize("how", list(BREAKS))
@pytest.mark.parametrize("target", ["publish", "subscribe"])
def test_a_lost_media_connection_is_made_again_on_the_same_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   target: str, how: str) -> None:
    with start_server(tmp_path / "var") as server, ClassroomLauncher(server, tmp_path) as launcher:
        master = launcher.start("master", "master", "--fps", str(FPS),
                                token=mint_token(server, role="master", classroom="master"))
        asyncio.run(lose_and_recover(server, master, target, how, monkeypatch))


# The page's publishing connection (the one whose senders carry tracks), closed from outside the
# page's code: Chrome sends a DTLS close_notify, the server's side closes; the page itself hears
# nothing (a closed RTCPeerConnection fires no state change), only the server's `media_lost`.
CLOSE_PAGE_PUBLISHER = """() => {
  const pc = window.__media.peerConnections.find(
    (pc) => pc.connectionState === 'connected' && pc.getSenders().some((s) => s.track));
  if (!pc) return false;
  pc.close();
  return true;
}"""


def test_the_page_publishes_again_when_the_server_loses_its_publishing_connection(tmp_path: Path,
                                                                                 pages: LessonPages) -> None:
    with start_server(tmp_path / "var") as server, ClassroomLauncher(server, tmp_path) as launcher:
        admin = mint_token(server, role="admin")
        master = launcher.start("master", "master", "--fps", str(FPS),
                                token=mint_token(server, role="master", classroom="master"))
        page = pages.open_as(server, "rural-2", "rural", label="rural-2")
        page.wait_video_playing('#stage video[data-slot="master:camera"]', timeout=STARTUP_S)
        wait_for(lambda: remote(master, "rural-2", "frames_decoded") > 30, STARTUP_S, "the master sees the page")

        assert page.page.evaluate(CLOSE_PAGE_PUBLISHER)
        broke = time.monotonic()
        seen = remote(master, "rural-2", "frames_decoded")

        def lost() -> dict[str, int]:
            code, body = server.api("/api/stats", token=admin)
            return dict(body["lessons"]["demo"]["media_lost"]) if code == 200 else {}

        # (the page then starts its session again, its receiving connection closed first: that
        # one may be counted too, just before the socket goes)
        wait_for(lambda: lost().get("rural-2/publish/closed") == 1, 10, "the server to see the page's connection close")
        wait_for(lambda: remote(master, "rural-2", "frames_decoded") > seen + 30, 20, "the master sees the page again")
        took = time.monotonic() - broke
        print(f"the page published again; the master decodes it {took:.2f} s after its connection closed")
        assert page.connection_state() in ("media", "connected")
