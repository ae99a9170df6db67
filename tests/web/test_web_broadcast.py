"""A broadcast lesson (名师课堂) in the browser: the master's page brings listening classrooms in
from its hand queue (a Python listening terminal, and a listening classroom's own page) and sends
one back; the listening page sees the master, raises its hand, and publishes once brought in."""

from __future__ import annotations

from harness import ClassroomLauncher, ServerProcess, mint_token, wait_for
from lesson_page import LessonPages

LESSON = {"id": "mingshi", "kind": "broadcast", "title": "名师课堂 · 科学", "subject": "科学", "grade": "4",
          "master": {"id": "m1", "name": "名师工作室"}, "rurals": []}


def test_the_master_brings_listening_classrooms_in_and_sends_them_back(
        server: ServerProcess, classrooms: ClassroomLauncher, pages: LessonPages) -> None:
    admin = mint_token(server, role="admin")
    assert server.api("/api/lessons", method="POST", body=LESSON, token=admin)[0] == 201

    def token(role: str, classroom: str, name: str = "") -> str:
        return mint_token(server, role=role, classroom=classroom, lesson="mingshi", name=name)

    def tracks() -> set[str]:
        return set(server.api("/api/stats", token=admin)[1]["lessons"].get("mingshi", {}).get("tracks", {}))

    terminal = classrooms.start("L1", "listener", "--fps", "10", "--raise-hand-at", "1",
                                token=token("listener", "L1", "东沟教学点"), lesson="mingshi")
    master = pages.open(server, token("master", "m1"), label="master", lesson="mingshi")
    listener = pages.open(server, token("listener", "L2", "西坡教学点"), label="listener", lesson="mingshi")
    master.wait_connected(timeout=40)
    listener.wait_connected(timeout=40)

    # the listening page sees the master large, has a hand button, and sends nothing yet
    listener.wait_video_playing('#stage video[data-slot="m1:camera"]', timeout=30)
    assert listener.page.locator("#btn-hand").is_visible()
    assert not listener.page.evaluate("() => window.twinclass.state.publishing")
    assert listener.page.title() == "名师课堂 · 科学 · 名师课堂"  # a broadcast, not a twinning lesson (城乡结对课堂)

    # the terminal's hand: the master brings it in from the queue and sees it on a guest place
    wait_for(lambda: master.page.locator('#hand-queue li[data-classroom="L1"] [data-action="bring-in"]').count(),
             60, "L1's hand in the master's queue with a bring-in button")
    assert "东沟教学点" in master.text('#hand-queue li[data-classroom="L1"]')
    master.page.click('#hand-queue li[data-classroom="L1"] [data-action="bring-in"]')
    master.wait_video_playing('video[data-slot="guest-1:camera"]', timeout=30)
    assert "东沟教学点" in master.text('.tile[data-tile="guest-1"]')

    # the page's hand: brought in, it publishes its camera, seen on the second place
    listener.page.click("#btn-hand")
    wait_for(lambda: master.page.locator('#hand-queue li[data-classroom="L2"] [data-action="bring-in"]').count(),
             15, "L2's hand in the master's queue")
    master.page.click('#hand-queue li[data-classroom="L2"] [data-action="bring-in"]')
    wait_for(lambda: listener.page.evaluate("() => window.twinclass.state.publishing"), 20, "the listening page sends")
    master.wait_video_playing('video[data-slot="guest-2:camera"]', timeout=30)
    assert "西坡教学点" in master.text('.tile[data-tile="guest-2"]')
    master.screenshot("broadcast-master-two-guests")

    # sent back from its tile: its place empties, its tracks end, the terminal listens on
    master.page.click('.tile[data-tile="guest-1"] [data-action="send-back"]')
    wait_for(lambda: not master.tile("guest-1").is_visible(), 10, "the first place emptied")
    wait_for(lambda: "L1/camera" not in tracks(), 10, "L1's tracks closed")
    assert "L2/camera" in tracks()
    wait_for(lambda: any(e["event"] == "sent_back" for e in terminal.stats().get("events", [])), 10,
             "the terminal told it was sent back (its stats file is written once a second)")
    listener.screenshot("broadcast-listener-brought-in")
    for page in (master, listener):
        assert not [line for line in page.console if "[pageerror]" in line], page.console
