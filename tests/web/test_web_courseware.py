"""Courseware: the browser master shares a screen; it reaches rural classrooms as a second video track."""

from __future__ import annotations

from harness import ClassroomLauncher, ServerProcess, wait_for
from lesson_page import LessonPages, start_classroom


def test_courseware_share_reaches_python_and_browser_rurals(
    server: ServerProcess, classrooms: ClassroomLauncher, pages: LessonPages
) -> None:
    master = pages.open_as(server, "master", "master", label="master")
    python_rural = start_classroom(classrooms, "rural-1", "rural", "--duration", "35")
    browser_rural = pages.open_as(server, "rural-2", "rural", label="rural")
    master.wait_connected(timeout=25)
    browser_rural.wait_connected(timeout=25)
    wait_for(lambda: python_rural.remote("master").get("frames_decoded", 0) > 10, 25, "master camera at rural-1")

    master.page.click("#btn-share")  # a click: getDisplayMedia needs a user gesture
    wait_for(lambda: master.text("#btn-share") == "停止共享", 10, "share button turns into stop")
    master.wait_video_playing("#share-video", timeout=10)

    # the Python rural classroom decodes the courseware as its own track, next to the camera
    wait_for(lambda: python_rural.remote("master/courseware").get("frames_decoded", 0) > 20, 25,
             "courseware frames at the Python rural classroom")
    cw = python_rural.remote("master/courseware")
    cam = python_rural.remote("master")
    print(f"courseware at rural-1: {cw['width']}x{cw['height']} {cw['video_fps']} fps; camera {cam['video_fps']} fps")
    assert (cw["width"], cw["height"]) != (cam["width"], cam["height"])  # really the screen, not the camera
    slots = python_rural.stats()["slots"].values()
    assert any(s["source"] == "courseware" and s["classroom"] == "master" for s in slots)
    camera_frames = cam["frames_decoded"]
    wait_for(lambda: python_rural.remote("master")["frames_decoded"] > camera_frames + 30, 10, "camera still flowing")

    # the browser rural classroom shows the courseware large and the teacher small
    browser_rural.wait_video_playing('#stage video[data-slot="master:courseware"]', timeout=20)
    assert browser_rural.stage_tile() == "courseware"
    assert browser_rural.page.locator('#strip .tile[data-tile="master"]').is_visible()
    browser_rural.screenshot("rural-courseware")
    master.screenshot("master-sharing")

    # stop sharing: the rural page goes back to the teacher, large
    master.page.click("#btn-share")
    wait_for(lambda: browser_rural.stage_tile() == "master", 10, "master back on the rural stage")
    assert browser_rural.page.locator('.tile[data-tile="courseware"]').is_hidden()
