"""Hands and the floor: a Python rural classroom raises its hand, the browser master gives it the floor."""

from __future__ import annotations

import re

from harness import ClassroomLauncher, ServerProcess, wait_for
from lesson_page import LessonPages, start_classroom


def test_hand_queue_and_floor_from_the_master_page(
    server: ServerProcess, classrooms: ClassroomLauncher, pages: LessonPages
) -> None:
    master = pages.open_as(server, "master", "master", label="master")
    rural = start_classroom(classrooms, "rural-1", "rural", "--duration", "30", "--raise-hand-at", "1")
    master.wait_connected(timeout=25)

    # the raised hand appears in the master's queue, with how long it has waited
    entry = master.page.locator('#hand-queue li[data-classroom="rural-1"]')
    entry.wait_for(timeout=20_000)
    assert "教学点一" in entry.inner_text()
    wait_for(lambda: re.search(r"已等 0:0[2-9]", entry.inner_text()), 10, "waited time counting up")
    assert master.page.locator('.tile[data-tile="rural-1"] .badge').inner_text() == "举手"
    master.wait_video_playing('video[data-slot="rural-1:camera"]', timeout=20)
    master.screenshot("master-hand-raised")

    # give the floor from the queue: rural-1 becomes the large tile, the rural side learns it
    entry.locator('button[data-action="give-floor"]').click()
    wait_for(lambda: master.stage_classroom() == "rural-1", 10, "rural-1 on the stage")
    assert master.page.locator("#hand-queue li").count() == 0
    assert "正在发言" in master.text("#floor-text")
    wait_for(lambda: rural.stats().get("floor") == "rural-1", 10, "the rural classroom learns it has the floor")
    stage_video = master.video('#stage video[data-slot="rural-1:camera"]')
    assert stage_video["width"] > 0 and stage_video["visible"]
    master.screenshot("master-floor-given")

    # ask the classroom to mute: the request reaches it
    master.page.click('.tile[data-tile="rural-1"] button[data-action="ask-mute"]')
    wait_for(lambda: any(e["event"] == "mute_requested" and e["data"]["classroom"] == "rural-1"
                         for e in rural.stats().get("events", [])), 10, "mute request delivered")

    # take the floor back: no large tile any more, and the rural side knows
    master.page.click("#btn-take-floor")
    wait_for(lambda: master.stage_classroom() is None, 10, "stage cleared")
    wait_for(lambda: rural.stats().get("floor") is None, 10, "the rural classroom learns the floor was taken")
