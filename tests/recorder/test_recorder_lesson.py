"""A 20-second lesson through a real server is recorded, auto-directed and archived.

Master (an in-test classroom client, so the test can give and take the floor) and two rural
classrooms (`twinclass classroom` processes) publish the test pattern (frame counter, send time,
classroom tag) and their own tones. After the lesson the archive must say, by its own content,
what happened: which classroom was large when, what was heard, and the events.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from archive_checks import (
    LARGE_4_3,
    audio_of,
    cli,
    first_pattern,
    large_pictures,
    onset,
    tone_strength,
    wait_for_recording,
)
from harness import ClassroomLauncher, ServerProcess, start_server
from playwright.sync_api import sync_playwright

from classroom_client.pattern import read_pattern
from classroom_client.session import ClassroomClient, ClientConfig
from classroom_client.sources import SourceSpec

TONES = {"master": 440.0, "rural-1": 660.0, "rural-2": 880.0}
CHROMIUM = Path(os.environ.get("TWINCLASS_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture
def recorded_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ServerProcess:
    monkeypatch.setenv("TWINCLASS_RECORDER_IDLE_S", "2")  # the lesson is over 2 s after everyone left
    monkeypatch.setenv("TWINCLASS_RECORDER_KEYFRAME_S", "4")
    srv = start_server(tmp_path / "var")
    yield srv
    srv.stop()


def _fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


async def _lesson(server: ServerProcess, launcher: ClassroomLauncher) -> dict[str, float]:
    """Everyone joins; courseware on/off, a mute request, a raised hand, the floor to rural-1 and
    back; the rural classrooms leave after 18 s, the master a moment later (a ~20 s lesson)."""
    # tokens first: minting runs a subprocess, which would stall the in-test master's media
    tokens = {c: server.token(classroom=c, role=r) for c, r in (("master", "master"), ("rural-1", "rural"),
                                                                 ("rural-2", "rural"))}
    quiet_token = server.token(lesson="quiet", classroom="rural-1", role="rural")
    wall: dict[str, float] = {"launched": time.time()}
    rurals = [launcher.start(r, "rural", "--duration", "18", "--no-receive", *extra, token=tokens[r])
              for r, extra in (("rural-1", ()), ("rural-2", ("--raise-hand-at", "4")))]
    # a lesson with recording turned off, live at the same time, must leave nothing behind
    quiet = launcher.start("rural-1", "rural", "--duration", "4", "--video", "none", "--no-receive",
                           lesson="quiet", name="quiet-rural", token=quiet_token)
    master = ClassroomClient(ClientConfig(
        server=server.url, token=tokens["master"],
        sources=SourceSpec(width=320, height=240), receive=False, reconnect=False,
    ))
    await master.start()
    await asyncio.wait_for(master.joined.wait(), 20)
    wall["master_joined"] = time.time()
    deadline = time.monotonic() + 30
    while not all(p.stats().get("sessions") for p in rurals):  # process start-up takes a while
        assert time.monotonic() < deadline, "rural classrooms did not join"
        await asyncio.sleep(0.2)
    start = time.time()

    async def at(offset: float) -> None:
        await asyncio.sleep(max(0.0, start + offset - time.time()))

    await at(1)
    await master.call("courseware", {"on": True})
    await at(2)
    await master.call("request_mute", {"classroom": "rural-2"})
    await at(3)
    await master.call("courseware", {"on": False})
    await at(4.5)
    wall["floor_given"] = time.time()
    await master.give_floor("rural-1")
    await at(11.5)
    wall["floor_taken"] = time.time()
    await master.take_floor()
    for proc in [*rurals, quiet]:
        await asyncio.get_running_loop().run_in_executor(None, proc.wait, 40)
    await asyncio.sleep(1)
    wall["master_left"] = time.time()
    await master.close()
    return wall


def test_lesson_is_recorded_and_archived(recorded_server: ServerProcess, tmp_path: Path) -> None:
    server = recorded_server
    admin = server.admin_token()
    code, _ = server.api("/api/lessons", method="POST", token=admin, body={
        "id": "quiet", "title": "不录制 Not recorded", "subject": "美术", "grade": "2", "record": False,
        "master": "m2", "rurals": ["rural-1"],
    })
    assert code == 201
    launcher = ClassroomLauncher(server, tmp_path)
    try:
        wall = asyncio.run(_lesson(server, launcher))
    finally:
        launcher.stop_all()

    # -- the catalog lists it once it is built ----------------------------------------------
    rec = wait_for_recording(server, admin, lesson="demo")
    code, body = server.api("/api/recordings", token=admin)
    assert [r["lesson"] for r in body["recordings"]] == ["demo"], "the lesson with record=false was recorded"
    today = time.strftime("%Y-%m-%d")
    for query, expect in ((f"?lesson=demo&date={today}", 1), ("?classroom=rural-1&grade=3", 1),
                          ("?subject=%E8%8B%B1%E8%AF%AD", 1), ("?lesson=quiet", 0), ("?date=2001-01-01", 0)):
        code, found = server.api(f"/api/recordings{query}", token=admin)
        assert code == 200 and len(found["recordings"]) == expect, (query, found)
    code, manifest = server.api(f"/api/recordings/{rec['id']}", token=admin)
    assert code == 200 and manifest["recording"]["status"] == "ready"
    assert manifest["complete"] is True

    # -- who may watch ------------------------------------------------------------------------
    rural_token = server.token(classroom="rural-1", role="rural")
    other_lesson = server.token(lesson="quiet", classroom="rural-1", role="rural")
    video_url = f"{server.url}{manifest['urls']['video']}"
    assert _fetch(video_url)[0] == 401
    assert _fetch(f"{video_url}?token={other_lesson}")[0] == 403
    code, listed = server.api("/api/recordings", token=other_lesson)
    assert code == 200 and listed["recordings"] == []
    status, headers, data = _fetch(f"{video_url}?token={rural_token}")
    assert status == 200 and headers["Content-Type"] == "video/mp4"
    video = tmp_path / "lesson.mp4"
    video.write_bytes(data)
    status, headers, part = _fetch(f"{video_url}?token={rural_token}", {"Range": "bytes=1000-1999"})
    assert status == 206 and len(part) == 1000 and part == data[1000:2000], headers
    assert headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"
    by_path = {f["path"]: f for f in manifest["files"]}
    assert by_path["lesson.mp4"]["size"] == len(data)
    assert 0 < data.find(b"moov") < data.find(b"mdat"), "the index is not at the front: browsers cannot seek early"

    # -- duration: the lesson as the server saw it ----------------------------------------------
    t0 = manifest["started_at"]
    events = manifest["events"]
    joins = [e for e in events if e["event"] == "classroom_joined"]
    lefts = [e for e in events if e["event"] == "classroom_left"]
    assert {e["classroom"] for e in joins} == {"master", "rural-1", "rural-2"}
    assert {e["classroom"] for e in lefts} == {"master", "rural-1", "rural-2"}
    lesson_s = max(e["t"] for e in lefts) - min(e["t"] for e in joins)
    assert abs(manifest["duration_s"] - lesson_s) < 0.2, (manifest["duration_s"], lesson_s)
    # ...and as the test saw it: somewhere between the master's stay and the whole test lesson
    assert wall["master_left"] - wall["master_joined"] - 0.5 < manifest["duration_s"]
    assert manifest["duration_s"] < wall["master_left"] - wall["launched"] + 0.5
    import av

    with av.open(str(video)) as container:
        mp4_s = float(container.duration or 0) / 1e6
        assert {s.type: s.codec_context.name for s in container.streams} == {"video": "h264", "audio": "aac"}
        vs = container.streams.video[0]
        assert (vs.codec_context.width, vs.codec_context.height) == (1280, 720)
    assert abs(mp4_s - lesson_s) <= 0.5, (mp4_s, lesson_s)

    # -- events, on the video's clock -----------------------------------------------------------
    floor = [e for e in events if e["event"] == "floor"]
    assert [(e["classroom"], e["by"]) for e in floor] == [("rural-1", "master"), (None, "master")]
    t_give, t_take = floor[0]["t"], floor[1]["t"]
    assert abs(t_give - (wall["floor_given"] - t0)) < 0.5
    assert abs(t_take - (wall["floor_taken"] - t0)) < 0.5
    names = [e["event"] for e in events]
    assert "hand_raised" in names and [e["classroom"] for e in events if e["event"] == "hand_raised"] == ["rural-2"]
    assert [e["classroom"] for e in events if e["event"] == "mute_requested"] == ["rural-2"]
    assert [e["on"] for e in events if e["event"] == "courseware"] == [True, False]
    assert all(0 <= e["t"] <= manifest["duration_s"] + 0.01 for e in events)
    assert [e["t"] for e in events] == sorted(e["t"] for e in events)

    # -- the picture follows the floor (read from the frames themselves) --------------------------
    seen = large_pictures(video)
    readable = [s for s in seen if s.info is not None]
    assert len(readable) > 0.9 * len([s for s in seen if s.t > 1.5]), "pattern unreadable in the large area"

    def who(a: float, b: float) -> list[str | None]:
        return [s.classroom for s in seen if a <= s.t < b]

    before, during, after = who(1.5, t_give - 0.2), who(t_give + 0.3, t_take - 0.2), who(t_take + 0.3, lesson_s - 2)
    assert before and before.count("master") >= 0.95 * len(before), before
    assert during and during.count("rural-1") >= 0.95 * len(during), during
    assert after and after.count("master") >= 0.95 * len(after), after
    switch = next(s.t for s in seen if s.t > t_give - 1 and s.classroom == "rural-1")
    assert abs(switch - t_give) <= 0.25, (switch, t_give)
    shots = manifest["shots"]
    assert all(s["end"] - s["start"] >= 2.0 for s in shots[:-1]), shots
    assert [s["large"] for s in shots if s["reason"] == "floor"] == ["rural-1:camera"]
    # frames are on time: each shows the picture sent at that moment, and the counter runs at 30 fps
    lags = []
    for s in readable:
        if s.classroom == "master" and s.info is not None:
            lags.append(((round((t0 + s.t) * 1000) - s.info.sent_ms + 2**31) % 2**32 - 2**31) / 1000)
    assert -0.03 <= float(np.median(lags)) < 0.12, f"video is {np.median(lags):.3f} s behind the lesson clock"
    master_seen = [s for s in readable if s.classroom == "master" and 2 < s.t < t_give - 0.5]
    rate = (master_seen[-1].info.counter - master_seen[0].info.counter) / (master_seen[-1].t - master_seen[0].t)
    assert 27 <= rate <= 33, f"master's frame counter advances {rate:.1f}/s in the archive"

    # -- sound: every classroom's tone, in sync with its picture ----------------------------------
    samples, rate_hz = audio_of(video)
    assert abs(samples.shape[0] / rate_hz - lesson_s) < 0.5
    mid = samples[int(6 * rate_hz): int(14 * rate_hz)]
    for classroom, hz in TONES.items():
        assert tone_strength(mid, rate_hz, hz) > 200, f"{classroom}'s {hz} Hz tone is not in the mix"
    # rural-1's camera and microphone started together; in the archive they start together too
    camera = next(f for f in manifest["files"] if f["path"].endswith("rural-1.camera.01.mkv"))
    status, _, track = _fetch(f"{server.url}/api/recordings/{rec['id']}/files/{camera['path']}?token={admin}")
    assert status == 200 and len(track) == camera["size"]
    first = first_pattern(track, tmp_path / "rural-1.camera.mkv")
    video_start = ((first.sent_ms - round(t0 * 1000)) % 2**32) / 1000 - first.counter / 30
    audio_start = onset(samples, rate_hz, TONES["rural-1"])
    assert audio_start is not None and abs(audio_start - video_start) < 0.1, (audio_start, video_start)

    # -- poster, thumbnails, the classrooms' own tracks ---------------------------------------------
    roles = {f["role"] for f in manifest["files"]}
    assert {"video", "poster", "thumbnail", "track", "capture"} <= roles
    tracks = {(t["classroom"], t["source"]): t for t in manifest["tracks"]}
    for c in TONES:
        assert tracks[(c, "camera")]["codec"] == "VP8" and tracks[(c, "mic")]["codec"] == "opus"
    status, _, poster = _fetch(f"{server.url}{manifest['urls']['poster']}?token={rural_token}")
    img = cv2.imdecode(np.frombuffer(poster, np.uint8), cv2.IMREAD_COLOR)
    assert status == 200 and img.shape == (720, 1280, 3)
    assert len(manifest["thumbnails"]) >= 3

    # -- the command line ---------------------------------------------------------------------------
    directory = server.data_dir / "recordings" / rec["id"]
    result = cli("archive", "verify", str(directory))
    assert result.returncode == 0, result.stderr
    result = cli("archive", "list", "--data-dir", str(server.data_dir))
    assert result.returncode == 0 and rec["id"] in result.stdout and "ready" in result.stdout

    # -- a browser plays it and seeks into the floor -------------------------------------------------
    _browser_seek(server, f"{video_url}?token={rural_token}", (t_give + t_take) / 2, lesson_s)


def _browser_seek(server: ServerProcess, url: str, at: float, duration: float) -> None:
    """Chromium loads the archive, seeks, plays; the frame it shows is rural-1's (read by pattern)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`make test` does; the test needs it)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required"])
        try:
            page = browser.new_page()
            page.goto(f"{server.url}/healthz")  # same origin as the video: the canvas can be read
            page.set_content(f'<video id="v" src="{url}" muted preload="auto"></video><canvas id="c"></canvas>')
            result = page.evaluate("""async (at) => {
                const v = document.getElementById('v');
                const wait = (ev) => new Promise((ok, ko) => {
                    v.addEventListener(ev, ok, {once: true});
                    v.addEventListener('error', () => ko(v.error && v.error.message), {once: true});
                    setTimeout(() => ko('timeout waiting for ' + ev), 15000);
                });
                if (v.readyState < 1) await wait('loadedmetadata');
                const duration = v.duration;
                v.currentTime = at;
                await wait('seeked');
                const c = document.getElementById('c');
                c.width = v.videoWidth; c.height = v.videoHeight;
                c.getContext('2d').drawImage(v, 0, 0);
                const png = c.toDataURL('image/png');
                await v.play();
                const t1 = v.currentTime;
                await new Promise(r => setTimeout(r, 1200));
                return {duration, png, t1, t2: v.currentTime};
            }""", at)
        finally:
            browser.close()
    assert abs(result["duration"] - duration) < 0.5
    assert result["t2"] > result["t1"] + 0.5, "the video does not play on after seeking"
    img = cv2.imdecode(np.frombuffer(base64.b64decode(result["png"].split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    x, y, w, h = LARGE_4_3
    info = read_pattern(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[y:y + h, x:x + w])
    from archive_checks import TAGS

    assert info is not None and TAGS.get(info.tag) == "rural-1", "the browser shows the wrong picture after seeking"
