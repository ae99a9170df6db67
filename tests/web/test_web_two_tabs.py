"""The issue's "done when": the master link in one tab, a rural link in another; they see and hear
each other, the rural classroom raises its hand, the teacher gives it the floor; a third (Python)
rural classroom then sees and hears the one that has the floor."""

from __future__ import annotations

from harness import ClassroomLauncher, ServerProcess, wait_for
from lesson_page import LessonPages, start_classroom


def test_master_and_rural_tabs_see_hear_raise_hand_and_give_the_floor(
    server: ServerProcess, classrooms: ClassroomLauncher, pages: LessonPages
) -> None:
    master = pages.open_as(server, "master", "master")
    rural = pages.open_as(server, "rural-1", "rural")
    other = start_classroom(classrooms, "rural-2", "rural", "--duration", "40")
    master.wait_connected(timeout=25)
    rural.wait_connected(timeout=25)

    # see and hear each other
    master.wait_video_playing('video[data-slot="rural-1:camera"]', timeout=25)
    rural.wait_video_playing('#stage video[data-slot="master:camera"]', timeout=25)
    master.wait_hearing("rural-1:mic")
    rural.wait_hearing("master:mic")

    # the rural classroom raises its hand; the teacher sees it first in the queue and gives the floor
    rural.page.click("#btn-hand")
    entry = master.page.locator('#hand-queue li[data-classroom="rural-1"]')
    entry.wait_for(timeout=10_000)
    entry.locator('button[data-action="give-floor"]').click()
    wait_for(lambda: master.stage_classroom() == "rural-1", 10, "rural-1 large on the master page")
    banner = rural.page.locator('#banners [data-kind="floor"]')
    banner.wait_for(timeout=10_000)
    assert "你有发言权" in banner.inner_text()
    assert rural.text("#btn-hand") == "举手"  # the hand went down with the floor
    rural.screenshot("rural-has-floor")

    # the other rural classroom receives the speaking classroom through its floor slot
    wait_for(lambda: other.remote("rural-1").get("frames_decoded", 0) > 20, 20, "rural-2 sees rural-1 (floor)")
    wait_for(lambda: other.remote("rural-1").get("audio_packets", 0) > 20, 10, "rural-2 hears rural-1 (floor)")
    floor_slots = [s for s in other.stats()["slots"].values() if s["group"] == "floor"]
    assert floor_slots and all(s["classroom"] == "rural-1" for s in floor_slots), floor_slots

    # the teacher takes the floor back: the rural page says so
    master.page.click("#btn-take-floor")
    wait_for(lambda: rural.page.locator('#banners [data-kind="floor"]').count() == 0, 10, "floor banner gone")
