"""The live watch page in Chromium: hls.js plays the HLS stream of a running broadcast lesson and the
picture shows the master's test pattern (read back from the <video> element's pixels)."""

from __future__ import annotations

from browser import SCREENSHOTS, save_console_log
from harness import ClassroomLauncher, ServerProcess, mint_token, wait_until
from lesson_page import video_picture
from playwright.sync_api import Browser

from classroom_client.pattern import PatternInfo, source_tag

LESSON = {"id": "live2", "kind": "broadcast", "title": "名师课堂 · 直播观看", "subject": "数学", "grade": "5",
          "master": {"id": "m1", "name": "名师工作室"}, "rurals": []}

def test_the_watch_page_plays_the_live_stream(server: ServerProcess, classrooms: ClassroomLauncher,
                                              chromium: Browser) -> None:
    admin = mint_token(server, role="admin")
    assert server.api("/api/lessons", method="POST", body=LESSON, token=admin)[0] == 201
    classrooms.start("m1", "master", "--fps", "15", lesson="live2", token=mint_token(
        server, role="master", classroom="m1", lesson="live2"))
    viewer = mint_token(server, role="observer", classroom="observer", lesson="live2")

    context = chromium.new_context()
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"[{msg.type}] {msg.text}"))
    page.on("pageerror", lambda exc: console.append(f"[pageerror] {exc}"))
    loaded: list[str] = []
    page.on("requestfinished", lambda request: loaded.append(request.url))
    try:
        page.goto(f"{server.url}/live/live2?token={viewer}")  # before the stream exists: the page waits
        assert page.text_content("#lesson-title") == LESSON["title"]
        assert page.evaluate("window.twinclassPlayer.kind") == "hls.js"  # MSE: hls.js, not the native player
        wait_until(lambda: page.evaluate("document.getElementById('live-video').currentTime") > 2.0, 150,
                   message="the video plays")
        t0 = page.evaluate("document.getElementById('live-video').currentTime")
        wait_until(lambda: page.evaluate("document.getElementById('live-video').currentTime") > t0 + 3.0, 30,
                   message="the video keeps playing")
        assert page.text_content("#live-status") == "直播中 Live"

        readings: list[tuple[PatternInfo, int]] = []

        def pattern_seen() -> bool:
            info, now_ms = video_picture(page, "#live-video")
            if info is not None:
                readings.append((info, now_ms))
            return len(readings) >= 5

        wait_until(pattern_seen, 30, interval=0.3, message="the master's pattern on the page")
        page.screenshot(path=str(SCREENSHOTS / "live-hls-watch-page.png"))
        assert {info.tag for info, _ in readings} == {source_tag("m1")}
        assert readings[-1][0].counter > readings[0][0].counter  # the picture moves on
        latencies = sorted((now - info.sent_ms) & 0xFFFFFFFF for info, now in readings)
        print(f"glass-to-playback latency (master's camera to the page's picture): median "
              f"{latencies[len(latencies) // 2]} ms, range {latencies[0]}..{latencies[-1]} ms")
        assert latencies[len(latencies) // 2] < 20_000
        assert not [line for line in console if "Content Security Policy" in line or "Refused" in line], console
        # hls.js works in its worker, loaded from this origin (the CSP needs no blob: worker)
        assert f"{server.url}/vendor/hls.js/hls.worker.js" in loaded, loaded
    finally:
        save_console_log("test_the_watch_page_plays_the_live_stream", "viewer", console)
        context.close()

    # the watch page itself is refused without a token and to another lesson's
    assert server.api("/live/live2")[0] == 401
    assert server.api("/live/live2", token=mint_token(server, role="rural", classroom="rural-1"))[0] == 403
    assert "/live/live2/index.m3u8?token=[redacted]" in server.log.read_text()  # hls.js's requests, logged
    assert viewer not in server.log.read_text()  # ... without the token
