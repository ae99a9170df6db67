"""The patrol wall in Chromium: a running lesson as a live tile (its cameras, who is connected), a
scheduled lesson nobody joined as a warning tile, and a click that opens the lesson as an observer.
A tile subscribes in patrol mode: its pictures change every few seconds (keyframes only)."""

from __future__ import annotations

from datetime import datetime, timedelta

from harness import ClassroomLauncher, ServerProcess, wait_for, wait_until
from study_pages import Pages, mint


def test_patrol_wall_shows_a_live_lesson_and_flags_a_missing_one(live_server: ServerProcess,
                                                                  launcher: ClassroomLauncher, pages: Pages) -> None:
    server = live_server
    admin = server.admin_token()
    now = datetime.now()
    lesson = {
        "id": "tt-music-4", "title": "音乐 四年级 · 张老师（同步课堂）", "subject": "音乐", "grade": "4",
        "master": {"id": "room-zhang", "name": "张老师", "school": "城关二小"},
        "rurals": [{"id": "shiqiao", "name": "石桥教学点", "school": "石桥教学点"}],
        "planned_start": (now - timedelta(minutes=5)).isoformat(timespec="seconds"),
        "planned_end": (now + timedelta(minutes=35)).isoformat(timespec="seconds"),
        "extra": {"county": "青山县"},
    }
    assert server.api("/api/lessons", method="POST", body=lesson, token=admin)[0] == 201
    later = {**lesson, "id": "tt-later", "title": "明天的课",
             "planned_start": (now + timedelta(days=1)).isoformat(timespec="seconds"),
             "planned_end": (now + timedelta(days=1, minutes=40)).isoformat(timespec="seconds")}
    assert server.api("/api/lessons", method="POST", body=later, token=admin)[0] == 201

    for classroom, role in (("master", "master"), ("rural-1", "rural")):
        launcher.start(classroom, role, "--size", "160x120", "--fps", "10", "--duration", "60")
    wait_until(lambda: len(server.api("/api/lessons/demo", token=admin)[1].get("connected", [])) == 2, 30,
               message="master and rural-1 connected")

    # who may patrol
    assert server.api("/api/patrol", token=mint(server, role="observer", name="督导"))[0] == 200
    assert server.api("/api/patrol", token=server.token(lesson="demo", classroom="rural-2", role="rural"))[0] == 403

    wall = pages.open(f"{server.url}/patrol?token={admin}", "patrol")
    tile = wall.locator(".tile.live[data-lesson='demo']")
    tile.wait_for()
    wait_for(lambda: tile.get_attribute("data-state") == "connected", 30, "the tile's own connection")
    wait_for(lambda: int(tile.get_attribute("data-paints") or 0) >= 2, 30, "the tile to paint the cameras")
    rooms = {li.get_attribute("data-classroom"): li.get_attribute("data-connected")
             for li in tile.locator(".tile-rooms li").all()}
    assert rooms == {"master": "1", "rural-1": "1", "rural-2": "0", "rural-3": "0"}
    assert "在线 2/4" in tile.inner_text()
    # the canvas shows the master's camera (the test pattern is not a flat colour)
    spread = wall.evaluate("""() => {
        const c = document.querySelector(".tile.live[data-lesson='demo'] canvas");
        const d = c.getContext("2d").getImageData(0, 0, c.width, Math.floor(c.height * 0.7)).data;
        let lo = 255, hi = 0;
        for (let i = 0; i < d.length; i += 4) {
          const v = (d[i] + d[i + 1] + d[i + 2]) / 3;
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
        return hi - lo; }""")
    assert spread > 60
    # the tile is a patrol subscription: its cameras' pictures keep changing, but keyframes only
    # (one every few seconds) instead of the cameras' 10 frames a second
    frames = """() => [...document.querySelectorAll('#sinks video')].map(
        (v) => v.getVideoPlaybackQuality().totalVideoFrames)"""
    before = wall.evaluate(frames)
    assert len(before) == 4, before  # the four classrooms' camera slots, no audio or courseware slot
    wall.wait_for_timeout(8000)
    after = wall.evaluate(frames)
    decoded = sorted(b - a for a, b in zip(before, after, strict=True))
    # master and rural-1 (10 fps cameras): a new picture every few seconds; rural-2 and -3 are away
    assert decoded[:2] == [0, 0] and all(1 <= n <= 8 for n in decoded[2:]), f"frames decoded in 8 s: {decoded}"

    missing = wall.locator(".tile.missing[data-lesson='tt-music-4']")
    missing.wait_for()
    assert "未开课" in missing.inner_text() and "石桥教学点" in missing.inner_text()
    assert wall.locator(".tile[data-lesson='tt-later']").count() == 0
    assert "正在上课 1 节；应上未上 1 节" in wall.inner_text("#patrol-summary")
    pages.screenshot(wall, "patrol")

    # click the tile: the lesson page opens as an observer
    with wall.expect_popup() as popup:
        tile.locator(".tile-watch").click()
    lesson_page = popup.value
    assert "/lesson/demo?token=" in lesson_page.url
    wait_for(lambda: lesson_page.get_attribute("#conn-status", "data-state") == "connected", 30,
             "the lesson page to connect as an observer")
    assert lesson_page.locator("#btn-hand").is_hidden(), "an observer raises no hand"
    lesson_page.close()

    # the lesson ends: its tile goes; a county filter keeps only that county's lessons
    launcher.stop_all()
    tile.wait_for(state="detached", timeout=30000)
    wall.fill("#county", "绿水县")
    wall.dispatch_event("#county", "change")
    missing.wait_for(state="detached", timeout=15000)
