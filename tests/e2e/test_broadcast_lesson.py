"""A broadcast lesson (名师课堂): the master, one interactive rural classroom and listening classrooms
(听课教室) that join with their own listener tokens. Listeners see and hear the master, raise hands,
and publish only while the master has brought them in; the master sees a brought-in classroom,
gives it the floor (every other classroom then sees it), and sends it back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from harness import ClassroomLauncher, ServerProcess, mint_token, raw_client, wait_until

from classroom_client.session import ClassroomClient, ClientConfig
from classroom_client.sources import SourceSpec

LESSON = {"id": "mingshi", "kind": "broadcast", "title": "名师课堂 · 数学", "subject": "数学", "grade": "5",
          "master": {"id": "m1", "name": "名师工作室"}, "rurals": [{"id": "r1", "name": "山口教学点"}]}


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait without blocking the loop: the master terminal publishes from this one."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out: {what}"
        await asyncio.sleep(0.1)


def tracks(server: ServerProcess, admin: str) -> set[str]:
    return set(server.api("/api/stats", token=admin)[1]["lessons"].get("mingshi", {}).get("tracks", {}))


def test_listeners_follow_raise_hands_and_are_brought_in_and_sent_back(
        server: ServerProcess, classrooms: ClassroomLauncher) -> None:
    admin = mint_token(server, role="admin")
    status, body = server.api("/api/lessons", method="POST", body=LESSON, token=admin)
    assert status == 201 and body["kind"] == "broadcast", body
    status, body = server.api("/api/lessons/mingshi/tokens?listeners=L1,L2", method="POST", token=admin)
    assert status == 200 and set(body["tokens"]) == {"m1", "r1", "observer", "L1", "L2"}, body
    listener_tokens = body["tokens"]

    rural = classrooms.start("r1", "rural", "--fps", "10", token=listener_tokens["r1"], lesson="mingshi")
    l1 = classrooms.start("L1", "listener", "--fps", "10", "--raise-hand-at", "3", token=listener_tokens["L1"],
                          lesson="mingshi")
    l2 = classrooms.start("L2", "listener", "--fps", "10", token=listener_tokens["L2"], lesson="mingshi")

    for terminal in (rural, l1, l2):  # a loaded machine takes its time to start a terminal
        wait_until(lambda t=terminal: t.stats().get("sessions", 0) >= 1, 90,  # type: ignore[misc]
                   message=f"{terminal.name} joined")

    async def master_side() -> None:
        master = ClassroomClient(ClientConfig(server=server.url, token=listener_tokens["m1"],
                                              sources=SourceSpec(width=320, height=240, fps=10)))
        await master.start()
        try:
            # listeners see and hear the master; nobody sees a listener; the server holds no track of theirs
            for listener in (l1, l2):
                await until(lambda ls=listener: ls.remote("m1").get("frames_verified", 0) > 20, 20,  # type: ignore[misc]
                            "a listener sees the master")
                assert listener.remote("m1")["audio_peak_hz"] == 440.0
            assert "L1" not in master.remotes and tracks(server, admin) == {
                "m1/camera", "m1/mic", "r1/camera", "r1/mic"}

            # L1 raises its hand: the master's queue names it; brought in, it publishes and the master sees it
            await until(lambda: [h["classroom"] for h in master.hands] == ["L1"], 15, "L1's hand in the queue")
            await master.bring_in("L1")
            await until(lambda: master.reception.remote("L1").frames_verified > 20, 20, "the master sees L1")
            assert master.hands == []  # answered
            assert {"L1/camera", "L1/mic"} <= tracks(server, admin)
            assert not l2.remote("L1").get("frames_decoded")  # not on the floor yet: others do not see it

            # the floor: the other listener and the rural classroom see and hear L1
            await master.give_floor("L1")
            for other in (l2, rural):
                await until(lambda o=other: o.remote("L1").get("frames_verified", 0) > 20, 20,  # type: ignore[misc]
                            "the floor holder L1 is seen by the others")
            assert l2.remote("L1")["audio_peak_hz"] == rural.remote("L1")["audio_peak_hz"] > 0

            # sent back: its tracks end, the floor returns to the master, nobody receives it any longer
            await master.send_back("L1")
            await until(lambda: not {"L1/camera", "L1/mic"} & tracks(server, admin), 10, "L1's tracks closed")
            await until(lambda: master.floor is None, 5, "the floor back with the master")
            seen = master.reception.remote("L1").frames_decoded
            await asyncio.sleep(2.0)
            assert master.reception.remote("L1").frames_decoded <= seen + 2
            assert l1.remote("m1")["frames_verified"] > 20  # and it goes on listening

            # brought in again, it publishes again
            await master.bring_in("L1")
            again = master.reception.remote("L1").frames_verified
            await until(lambda: master.reception.remote("L1").frames_verified > again + 20, 20, "L1 publishes again")
        finally:
            await master.close()

    asyncio.run(master_side())


def test_listener_tokens_and_actions_are_checked(server: ServerProcess) -> None:
    admin = mint_token(server, role="admin")
    assert server.api("/api/lessons", method="POST", body=LESSON, token=admin)[0] == 201
    status, body = server.api("/api/lessons", method="POST", token=admin,
                              body={**LESSON, "id": "bad", "kind": "lecture"})
    assert status == 400 and "kind" in body["error"], body
    status, body = server.api("/api/lessons/demo/tokens?listeners=L1", method="POST", token=admin)
    assert status == 400 and "listeners" in body["error"], body  # the demo lesson is a twinning lesson

    async def scenario() -> None:
        # a listener token for a twinning lesson is refused with the reason
        refused = await raw_client(server.url)
        reply = await refused.call("join", {"token": mint_token(server, role="listener", classroom="L9")})
        assert not reply["ok"] and "broadcast" in reply["error"]["message"], reply
        await refused.disconnect()

        listener = await raw_client(server.url)
        token = mint_token(server, role="listener", classroom="L1", lesson="mingshi")
        assert (await listener.call("join", {"token": token}))["ok"]
        reply = await listener.call("publish", {"sdp": "v=0\r\n", "sources": {}})
        assert not reply["ok"] and "brings it in" in reply["error"]["message"], reply
        reply = await listener.call("bring_in", {"classroom": "L1"})
        assert not reply["ok"] and "only the master" in reply["error"]["message"], reply
        assert (await listener.call("raise_hand", {}))["ok"]

        master = await raw_client(server.url)
        assert (await master.call("join", {"token": mint_token(server, role="master", classroom="m1",
                                                                  lesson="mingshi")}))["ok"]
        reply = await master.call("bring_in", {"classroom": "nobody"})
        assert not reply["ok"] and "not a listening classroom" in reply["error"]["message"], reply
        guests = []
        for place in range(7):  # eight interactive classrooms at most: r1 and seven guests
            guest = await raw_client(server.url)
            guests.append(guest)
            guest_token = mint_token(server, role="listener", classroom=f"G{place}", lesson="mingshi")
            assert (await guest.call("join", {"token": guest_token}))["ok"]
            assert (await master.call("bring_in", {"classroom": f"G{place}"}))["ok"]
        reply = await master.call("bring_in", {"classroom": "L1"})
        assert not reply["ok"] and reply["error"]["code"] == "limit_guests", reply
        assert (await master.call("send_back", {"classroom": "G0"}))["ok"]
        assert (await master.call("bring_in", {"classroom": "L1"}))["ok"]
        for client in (listener, master, *guests):
            await client.disconnect()

    asyncio.run(scenario())
