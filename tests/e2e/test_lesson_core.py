"""A real lesson through a real server process: media both ways, roles, tokens, leave/return.

Classrooms are `twinclass classroom` processes publishing the test pattern (frame counter, send
time, source tag) and a per-classroom tone; their stats JSON is what a user would see.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import jwt
from harness import ClassroomLauncher, ServerProcess, mint_token, raw_client, wait_until

# five terminals beside the server on two cores: each costs about a third of a core at 30 fps even
# with a small picture (aiortc's per-packet path and audio; py-spy shows no single hot spot), which
# saturates a slow 2-core machine and backs the master up (p95 latency 1.9 s, 16-20 fps: it failed
# so with the code of before the hardening too). The full lesson runs at 15 fps and is held to the
# same share of its rate as a 30 fps lesson (25/30).
SMALL = "160x120"
FPS = "15"
MIN_FPS = 12.5
TONE = {"master": 440.0, "rural-1": 660.0, "rural-2": 880.0, "rural-3": 1100.0}


def _assert_stream(stats: dict, who: str, *, min_fps: float = 25.0, tone: bool = True) -> None:
    assert stats, f"no stats for {who}"
    assert stats["video_fps"] >= min_fps, f"{who}: {stats['video_fps']} fps"
    assert stats["frames_verified"] >= 0.98 * stats["frames_decoded"], f"{who}: {stats}"
    assert stats["decode_errors"] == 0, f"{who}: {stats}"  # a clean link loses not one frame
    assert stats["counter_gaps"] == 0, f"{who}: {stats}"
    assert stats.get("freezes", 0) == 0, f"{who}: {stats}"
    if tone:
        assert stats["audio_packets"] > 200, f"{who}: audio {stats['audio_packets']}"
        assert stats["audio_peak_hz"] == TONE[who], f"{who}: heard {stats['audio_peak_hz']} Hz"


def test_full_lesson_master_three_rural_and_observer(server: ServerProcess, classrooms: ClassroomLauncher) -> None:
    """Everyone receives what their role allows at >= 5/6 of the sent frame rate; the server never decodes."""
    admin = mint_token(server, role="admin")
    _status, idle = server.api("/api/stats", token=admin)
    idle_os_threads = len(server.thread_names())
    procs = {
        "master": classrooms.start("master", "master", "--duration", "90", "--fps", FPS, size=SMALL),
        "rural-1": classrooms.start("rural-1", "rural", "--duration", "90", "--fps", FPS, size=SMALL),
        "rural-2": classrooms.start("rural-2", "rural", "--duration", "90", "--fps", FPS, size=SMALL),
        "rural-3": classrooms.start("rural-3", "rural", "--duration", "90", "--fps", FPS, size=SMALL),
        "observer": classrooms.start("observer-1", "observer", "--duration", "90", "--fps", FPS, size=SMALL),
    }
    expected = {"master": ["rural-1", "rural-2", "rural-3"], "rural-1": ["master"], "rural-2": ["master"],
                "rural-3": ["master"], "observer": ["master", "rural-1", "rural-2", "rural-3"]}

    def everyone_receiving() -> bool:
        return all(procs[name].remote(who).get("frames_verified", 0) > 30 for name in expected
                   for who in expected[name])

    wait_until(everyone_receiving, 40, message="every classroom receiving")

    def every_stream_full_quality() -> bool:
        # five terminals starting at once can stall the CPU for a few seconds, which the downlink
        # estimate reads as a long round trip and answers with the low tier (a known defect, see the
        # README's weak-link notes); on a clean link it must come back to full quality by itself
        return all(procs[name].remote(who).get("tier", "full") != "low" for name in expected for who in expected[name])

    wait_until(every_stream_full_quality, 30, message="every stream back at full quality")
    cpu0 = server.cpu_seconds()
    t0 = time.monotonic()
    time.sleep(8)  # fps is measured over the last 3 s of this window
    cpu = (server.cpu_seconds() - cpu0) / (time.monotonic() - t0)
    snapshot = {name: p.stats() for name, p in procs.items()}
    remotes = {name: s.get("remotes", {}) for name, s in snapshot.items()}

    for rural in ("rural-1", "rural-2", "rural-3"):
        _assert_stream(remotes["master"].get(rural, {}), rural, min_fps=MIN_FPS)
        _assert_stream(remotes[rural].get("master", {}), "master", min_fps=MIN_FPS)
        # without the floor and with rural_see_each_other off, rural classrooms do not see each other
        others = set(remotes[rural]) - {"master"}
        assert not any(remotes[rural][o]["frames_decoded"] for o in others), remotes[rural]
    for who in ("master", "rural-1", "rural-2", "rural-3"):
        _assert_stream(remotes["observer"].get(who, {}), who, min_fps=MIN_FPS)
    # the observer is invisible: no classroom was told it joined, and nobody receives it
    for name in ("master", "rural-1"):
        joined = [e["data"]["classroom"] for e in snapshot[name]["events"] if e["event"] == "classroom_joined"]
        assert not any(j.startswith("observer") for j in joined), joined
        assert not any(k.startswith("observer") for k in remotes[name])

    # the server forwarded without decoding: aiortc created no decoder, and no decoder thread runs.
    # aiortc would start one Python thread per received track ("video-decoder"/"audio-decoder"),
    # 8 here; Python 3.11 does not hand thread names to the OS, so /api/stats lists the server's
    # Python threads by name and the OS thread count (/proc/<pid>/task) catches codec-library threads.
    status, stats = server.api("/api/stats", token=admin)
    os_threads = len(server.thread_names())
    assert status == 200 and stats["decoders_created"] == 0
    assert not [n for n in stats["threads"] if n.endswith("-decoder")], stats["threads"]
    print(f"server threads: idle {idle_os_threads} OS / {idle['threads']}; in the lesson {os_threads} OS / "
          f"{stats['threads']}")
    native = os_threads - len(stats["threads"])
    idle_native = idle_os_threads - len(idle["threads"])
    assert native <= idle_native + 1, (os_threads, stats["threads"], idle_os_threads, idle["threads"])
    # besides the event loop: the loop's default executor workers (database calls; at most cores + 4
    # = 6 here; "uvloop_N" under uvloop, the server's default loop, "asyncio_N" under asyncio's) and
    # the recorder's disk writer. 8 decoder threads would not fit under this bound.
    others = {n for n in stats["threads"] if not n.startswith(("asyncio_", "uvloop_"))}
    assert others <= {"MainThread", "recorder-writer"}, stats["threads"]
    assert os_threads <= idle_os_threads + 7, (idle_os_threads, os_threads)
    tracks = stats["lessons"]["demo"]["tracks"]
    # three rural classrooms, the observer and the lesson's recorder (a hidden subscriber like any other)
    assert tracks["master/camera"]["subscribers"] == 5, tracks["master/camera"]
    fed_by_master = sorted(key.split("<-")[0].split("-")[0] if key.startswith("observer") else key.split("<-")[0]
                           for key, slot in stats["lessons"]["demo"]["slots"].items()
                           if slot["source"] == "master/camera")
    assert fed_by_master == ["observer", "recorder", "rural-1", "rural-2", "rural-3"], fed_by_master
    assert cpu < 1.0, f"server used {cpu:.2f} CPU-s/s"


def test_rural_classrooms_see_each_other_when_the_lesson_allows(server: ServerProcess,
                                                                 classrooms: ClassroomLauncher) -> None:
    """With `rural_see_each_other`, each rural classroom receives the other's own camera and mic (not
    the floor) besides the master's. The converse (the setting off) is asserted in the full lesson above."""
    admin = mint_token(server, role="admin")
    body = {"id": "see-each-other", "title": "互看课", "subject": "英语", "grade": "3",
            "master": {"id": "master", "name": "主讲"}, "rurals": [{"id": "rural-1", "name": "教学点 1"},
                                                                  {"id": "rural-2", "name": "教学点 2"}],
            "rural_see_each_other": True, "record": False}
    status, created = server.api("/api/lessons", method="POST", body=body, token=admin)
    assert status == 201 and created["rural_see_each_other"], created
    procs = {who: classrooms.start(who, role, "--duration", "45", lesson="see-each-other",
                                   token=mint_token(server, role=role, classroom=who, lesson="see-each-other"))
             for who, role in (("master", "master"), ("rural-1", "rural"), ("rural-2", "rural"))}
    expected = {"master": ["rural-1", "rural-2"], "rural-1": ["master", "rural-2"], "rural-2": ["master", "rural-1"]}

    def everyone_receiving() -> bool:
        return all(procs[name].remote(who).get("frames_verified", 0) > 30 for name in expected
                   for who in expected[name])

    wait_until(everyone_receiving, 40, message="every classroom receiving the others")
    time.sleep(5)  # fps is measured over the last 3 s of this window
    remotes = {name: p.stats().get("remotes", {}) for name, p in procs.items()}
    print({name: {who: (r.get("video_fps"), r.get("audio_peak_hz")) for who, r in remotes[name].items()}
           for name in remotes})
    for name, sees in expected.items():
        for who in sees:
            _assert_stream(remotes[name].get(who, {}), who, min_fps=20)
        assert set(remotes[name]) == set(sees), remotes[name]  # no floor slot, nothing else

    # the server feeds each rural classroom the other's tracks in that classroom's own slots
    status, stats = server.api("/api/stats", token=admin)
    assert status == 200
    slots = stats["lessons"]["see-each-other"]["slots"]
    for viewer, other in (("rural-1", "rural-2"), ("rural-2", "rural-1")):
        for source in ("camera", "mic"):
            assert slots[f"{viewer}<-{other}:{source}"]["source"] == f"{other}/{source}", slots
        assert not any(key.startswith(f"{viewer}<-floor:") for key in slots), slots


def test_observer_cannot_publish_and_bad_tokens_are_refused(server: ServerProcess) -> None:
    async def scenario() -> None:
        url = server.url
        # observer: joins, but publishing is refused with a reason
        obs = await raw_client(url)
        reply = await obs.call("join", {"token": server.token(classroom="insp", role="observer")})
        assert reply["ok"] and reply["you"]["role"] == "observer"
        reply = await obs.call("publish", {"sdp": "v=0\r\n", "sources": {}})
        assert not reply["ok"] and reply["error"]["code"] == "forbidden"
        assert "observer cannot publish" in reply["error"]["message"]
        await obs.disconnect()

        secret = (server.data_dir / "token-secret").read_text().strip()
        now = int(time.time())

        def signed(claims: dict, key: str = secret) -> str:
            return jwt.encode(claims, key, algorithm="HS256")

        good = {"lesson": "demo", "classroom": "rural-1", "name": "r1", "role": "rural", "exp": now + 600}
        cases = {
            "expired": (signed({**good, "exp": now - 5}), "token expired"),
            "forged": (signed(good, "not-the-server-secret-but-also-32-bytes-long"), "signature invalid"),
            "wrong lesson": (signed({**good, "lesson": "no-such-lesson"}), "not found"),
            "wrong role": (signed({**good, "role": "master"}), "does not match classroom's role rural"),
            "unknown role": (signed({**good, "role": "teacher"}), "role 'teacher' is unknown"),
            "not in lesson": (signed({**good, "classroom": "rural-9"}), "not part of this lesson"),
            "garbage": ("not.a.jwt", "malformed"),
        }
        for name, (token, reason) in cases.items():
            client = await raw_client(url)
            reply = await client.call("join", {"token": token})
            assert not reply["ok"], name
            assert reason in reply["error"]["message"], (name, reply)
            await asyncio.sleep(0.4)
            assert not client.connected, f"{name}: refused session still open"
        # a token for the right lesson used to join another lesson id
        client = await raw_client(url)
        reply = await client.call("join", {"token": signed(good), "lesson": "other"})
        assert not reply["ok"] and "another lesson" in reply["error"]["message"]
        await client.disconnect()

    asyncio.run(scenario())


def test_late_joiner_sees_picture_within_a_second(server: ServerProcess, classrooms: ClassroomLauncher) -> None:
    master = classrooms.start("master", "master", "--duration", "20")
    wait_until(lambda: master.stats().get("sessions", 0) >= 1, 10, message="master joined")
    time.sleep(4)  # the master's encoder is long past its first keyframe
    late = classrooms.start("rural-2", "rural", "--duration", "10")
    wait_until(lambda: late.remote("master").get("frames_verified", 0) > 30, 15, message="late joiner frames")
    assert late.remote("master")["first_frame_s"] <= 1.0, late.remote("master")
    wait_until(lambda: master.remote("rural-2").get("frames_verified", 0) > 30, 10, message="master sees late")
    assert master.remote("rural-2")["first_frame_s"] <= 1.0, master.remote("rural-2")


def test_classroom_that_leaves_stops_and_its_return_works(server: ServerProcess,
                                                          classrooms: ClassroomLauncher) -> None:
    master = classrooms.start("master", "master", "--duration", "40")
    rural = classrooms.start("rural-1", "rural", "--duration", "6")
    wait_until(lambda: master.remote("rural-1").get("frames_verified", 0) > 60, 15, message="rural-1 frames")
    rural.wait(20)
    wait_until(lambda: any(e["event"] == "classroom_left" and e["data"]["classroom"] == "rural-1"
                           for e in master.stats().get("events", [])), 5, message="master told rural-1 left")
    time.sleep(1.5)
    frozen = master.remote("rural-1")["frames_decoded"]
    time.sleep(2)
    assert master.remote("rural-1")["frames_decoded"] == frozen, "media kept flowing after the classroom left"
    _status, lesson = server.api("/api/lessons/demo", token=server.admin_token())
    assert [c["classroom"] for c in lesson["connected"]] == ["master"]

    back = classrooms.start("rural-1", "rural", "--duration", "8", name="rural-1-back")
    wait_until(lambda: master.remote("rural-1").get("frames_decoded", 0) > frozen + 60, 15,
               message="rural-1 forwarded again after coming back")
    wait_until(lambda: back.remote("master").get("frames_verified", 0) > 30, 10, message="returning sees master")
    assert master.remote("rural-1")["video_fps"] >= 25

    # a classroom that drops (its terminal killed, no goodbye) is noticed and announced too
    back.proc.kill()
    wait_until(lambda: sum(1 for e in master.stats().get("events", []) if e["event"] == "classroom_left"
                           and e["data"]["classroom"] == "rural-1") >= 2, 25, message="master told rural-1 dropped")


def test_malformed_messages_close_only_that_session(server: ServerProcess, classrooms: ClassroomLauncher) -> None:
    master = classrooms.start("master", "master", "--duration", "60")
    rural = classrooms.start("rural-1", "rural", "--duration", "60")
    wait_until(lambda: rural.remote("master").get("frames_verified", 0) > 60
               and master.remote("rural-1").get("frames_verified", 0) > 60, 15, message="lesson running")
    rural_2 = mint_token(server, role="rural", classroom="rural-2")

    async def refused(client: Any, event: str, data: object, code: str) -> dict[str, Any]:
        """`event` gets an answer (not silence), an `error` event and a closed session."""
        reply: dict[str, Any] = await client.call(event, data, timeout=10)
        await asyncio.sleep(0.5)
        assert not reply["ok"] and reply["error"]["code"] == code, (event, data, reply)
        assert [d for e, d in client.received if e == "error"] == [reply["error"]], client.received
        assert not client.connected, f"session stayed open after {event} {data!r}"
        return reply

    async def misbehave() -> None:
        for bad in ({"sdp": "this is not SDP"}, {"sdp": 42}, "just a string", {"sdp": "v=0\r\nm=video"}):
            client = await raw_client(server.url)
            reply = await client.call("join", {"token": rural_2})
            assert reply["ok"]
            await refused(client, "publish", bad, "protocol_error")
        # malformed joins; one the database itself fails on (a lone surrogate cannot be stored)
        for bad, code in (("just a string", "protocol_error"), ({"token": 42}, "bad_token"),
                          ({"token": mint_token(server, role="admin"), "lesson": "\ud800"}, "server_error")):
            client = await raw_client(server.url)
            await refused(client, "join", bad, code)
        # a receiving connection, then a candidate aiortc cannot parse / an answer it refuses
        for event, data in (("ice", {"target": "subscribe", "candidate": {"candidate": "candidate:1 1 udp",
                                                                           "sdpMid": "0"}}),
                            ("ice", {"target": "subscribe", "candidate": {"candidate": 7}}),
                            ("subscribe_answer", {"sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"}),
                            ("subscribe_answer", "offer")):
            client = await raw_client(server.url)
            assert (await client.call("join", {"token": rural_2}))["ok"]
            offer = await client.call("subscribe", {}, timeout=10)
            assert offer["ok"], offer
            if data == "offer":  # our own offer back as the answer: aiortc refuses it
                data = {"sdp": offer["sdp"]}
            reply = await refused(client, event, data, "protocol_error")
            assert reply["error"]["message"].startswith(f"{event}: "), reply

    before_m = master.remote("rural-1")["frames_decoded"]
    before_r = rural.remote("master")["frames_decoded"]
    asyncio.run(misbehave())
    time.sleep(3)
    assert master.remote("rural-1")["frames_decoded"] > before_m + 60
    assert rural.remote("master")["frames_decoded"] > before_r + 60
    assert master.remote("rural-1")["video_fps"] >= 25 and rural.remote("master")["video_fps"] >= 25
    assert master.proc.poll() is None and rural.proc.poll() is None
