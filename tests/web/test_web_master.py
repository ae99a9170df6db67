"""The master classroom in a browser, two rural classrooms as Python terminals."""

from __future__ import annotations

from harness import ClassroomLauncher, ServerProcess, wait_for
from lesson_page import LessonPages, decoded_fps, start_classroom


def test_browser_master_sees_two_python_rurals_and_is_seen(
    server: ServerProcess, classrooms: ClassroomLauncher, pages: LessonPages
) -> None:
    master = pages.open_as(server, "master", "master", label="master")
    rural1 = start_classroom(classrooms, "rural-1", "rural", "--duration", "30")
    rural2 = start_classroom(classrooms, "rural-2", "rural", "--duration", "30")

    master.wait_connected(timeout=25)
    # the page shows both rural classrooms playing
    for rural in ("rural-1", "rural-2"):
        playing = master.wait_video_playing(f'video[data-slot="{rural}:camera"]', timeout=25)
        assert playing["width"] == 320 and playing["height"] == 240, playing

    # the Python classrooms decode the browser's camera at >= 20 fps (after warm-up)
    for rural in (rural1, rural2):
        wait_for(lambda r=rural: r.remote("master").get("frames_decoded", 0) > 30, 25,
                 f"{rural.name}: frames from the browser")
    fps = decoded_fps([rural1, rural2], "master")
    sizes = {r.name: (r.remote("master")["width"], r.remote("master")["height"]) for r in (rural1, rural2)}
    print(f"browser camera decoded by Python classrooms: fps={fps} sizes={sizes}")
    assert all(v >= 20 for v in fps.values()), fps
    assert all(s[0] > 0 for s in sizes.values()), sizes
    # the browser hears them too
    assert rural1.remote("master")["audio_packets"] > 50

    tiles = master.page.locator(".tile:not([hidden])")
    assert tiles.count() == 3  # rural-1, rural-2, and rural-3 shown as not connected
    assert "未连接" in master.text('.tile[data-tile="rural-3"]')
    master.screenshot("master-view")
