"""An observer (inspector, researcher) watches from a browser and sends nothing."""

from __future__ import annotations

from harness import ClassroomLauncher, ServerProcess, mint_token, wait_for
from lesson_page import LessonPages, start_classroom


def test_observer_page_receives_video_and_sends_none(
    server: ServerProcess, classrooms: ClassroomLauncher, pages: LessonPages
) -> None:
    start_classroom(classrooms, "master", "master", "--duration", "25")
    start_classroom(classrooms, "rural-1", "rural", "--duration", "25")
    observer = pages.open_as(server, "observer", "observer", label="observer")

    observer.wait_connected(timeout=25)
    observer.wait_video_playing('#stage video[data-slot="master:camera"]', timeout=25)
    observer.wait_video_playing('video[data-slot="rural-1:camera"]', timeout=25)
    assert observer.stage_tile() == "master"
    assert "观摩模式" in observer.text("#banners")
    assert observer.page.locator("#toolbar").is_hidden()
    assert observer.page.locator("#self-panel").is_hidden()

    # nothing asked of the camera or microphone, no track sent, no RTP out
    calls = observer.media_calls()
    assert calls["getUserMedia"] == 0 and calls["getDisplayMedia"] == 0, calls
    assert observer.senders_with_tracks() == 0
    assert observer.outbound_rtp() == 0
    # and the server agrees: only the two classrooms publish
    status, stats = server.api("/api/stats", token=mint_token(server, role="admin"))
    assert status == 200, stats
    tracks = sorted(stats["lessons"]["demo"]["tracks"])
    assert tracks == ["master/camera", "master/mic", "rural-1/camera", "rural-1/mic"], tracks
    observer.screenshot("observer-view")


def test_admin_link_patrols_as_observer(server: ServerProcess, classrooms: ClassroomLauncher,
                                        pages: LessonPages) -> None:
    """An education-bureau patrol (巡课) opens a lesson with an admin token: watch-only too."""
    start_classroom(classrooms, "master", "master", "--duration", "20")
    patrol = pages.open(server, mint_token(server, role="admin"), label="patrol", lang="en")
    patrol.wait_video_playing('#stage video[data-slot="master:camera"]', timeout=25)
    assert patrol.text("#my-role") == "Observer"
    assert "Observer mode" in patrol.text("#banners")
    wait_for(lambda: patrol.connection_state() == "connected", 10, "connected")
    assert patrol.media_calls()["getUserMedia"] == 0
