"""A rural classroom in a browser, the master classroom as a Python terminal."""

from __future__ import annotations

from harness import ClassroomLauncher, ServerProcess, wait_for
from lesson_page import LessonPages, decoded_fps, start_classroom


def test_browser_rural_receives_python_master(
    server: ServerProcess, classrooms: ClassroomLauncher, pages: LessonPages
) -> None:
    master = start_classroom(classrooms, "master", "master", "--duration", "30")
    rural = pages.open_as(server, "rural-1", "rural", label="rural")

    rural.wait_connected(timeout=25)
    # the master is the large picture, playing, with its sound
    playing = rural.wait_video_playing('#stage video[data-slot="master:camera"]', timeout=25)
    assert (playing["width"], playing["height"]) == (320, 240), playing
    assert rural.stage_tile() == "master"
    audio = rural.page.evaluate(
        "() => { const a = document.querySelector('audio[data-slot=\"master:mic\"]');"
        " return a && {paused: a.paused, time: a.currentTime}; }")
    assert audio and not audio["paused"], audio
    # own preview small, and the Python master decodes our camera
    rural.wait_video_playing("#self-video", timeout=10)
    wait_for(lambda: master.remote("rural-1").get("frames_decoded", 0) > 30, 25, "master decodes the browser rural")
    fps = decoded_fps([master], "rural-1", window_s=3)
    print(f"browser rural camera decoded by the Python master: {fps}")
    assert fps[master.name] >= 20, fps

    # raise the hand: the master's queue has it; lower it again
    rural.page.click("#btn-hand")
    wait_for(lambda: master.stats().get("hands") == ["rural-1"], 10, "hand in the master's queue")
    assert rural.page.locator('#hand-queue li[data-classroom="rural-1"]').count() == 1
    assert rural.text("#btn-hand") == "放下手"
    rural.screenshot("rural-view")
    rural.page.click("#btn-hand")
    wait_for(lambda: master.stats().get("hands") == [], 10, "hand lowered")

    # mute/unmute self: the button says what it will do
    rural.page.click("#btn-mute")
    assert rural.text("#btn-mute") == "打开麦克风"
    assert rural.page.evaluate("() => window.twinclass.local.mic.enabled") is False
    rural.page.click("#btn-mute")
    assert rural.page.evaluate("() => window.twinclass.local.mic.enabled") is True

    # choose the other camera in the device settings: sent without renegotiation, the master keeps seeing us
    rural.page.click("#btn-settings")
    select = rural.page.locator("#select-camera")
    assert select.locator("option").all_inner_texts() == ["fake_device_0", "fake_device_1", "fake_device_2"]
    rural.screenshot("rural-device-settings")
    # (Chromium's fake_device_1 is a Y16 depth camera that its encoder does not take; _2 is MJPEG)
    select.select_option(label="fake_device_2")
    sent_label = "() => window.twinclass.pub.transceivers.get('camera').sender.track.label"
    wait_for(lambda: rural.page.evaluate(sent_label) == "fake_device_2", 10, "the new camera is sent")
    rural.page.click('#settings button[value="done"]')
    frames = master.remote("rural-1")["frames_decoded"]
    wait_for(lambda: master.remote("rural-1")["frames_decoded"] > frames + 30, 10, "master decodes the new camera")
    assert rural.page.evaluate("() => localStorage.getItem('twinclass.camera')")  # remembered for next time
