"""When the server restarts the page says so, reconnects by itself, and the lesson comes back.

(A network loss, the server killed with -9, is tests/e2e/test_restart.py.)"""

from __future__ import annotations

from harness import ClassroomLauncher, ServerProcess, wait_for
from lesson_page import LessonPages, restart_server, start_classroom


def test_page_reconnects_after_the_server_comes_back(
    server: ServerProcess, classrooms: ClassroomLauncher, pages: LessonPages
) -> None:
    master = start_classroom(classrooms, "master", "master", "--duration", "40")
    rural = pages.open_as(server, "rural-1", "rural", label="rural")
    rural.wait_connected(timeout=25)
    rural.wait_video_playing('#stage video[data-slot="master:camera"]', timeout=25)

    server.stop()  # SIGTERM: the server tells the page it is stopping, then closes the socket
    wait_for(lambda: rural.connection_state() == "reconnecting", 10, "reconnecting shown")
    assert "正在重新连接" in rural.text("#conn-status")
    assert "服务器正在重启" in rural.text("#banners")
    assert "正在重新连接" in rural.text('.tile[data-tile="master"]')
    rural.screenshot("rural-reconnecting")

    restart_server(server, down_s=1.0)
    rural.wait_connected(timeout=30)
    banners = '#banners [data-kind="reconnecting"], #banners [data-kind="server-restarting"]'
    assert rural.page.locator(banners).count() == 0
    rural.wait_video_playing('#stage video[data-slot="master:camera"]', timeout=30)
    # and the master classroom sees this rural classroom again
    frames = master.remote("rural-1").get("frames_decoded", 0)
    wait_for(lambda: master.remote("rural-1").get("frames_decoded", 0) > frames + 30, 20, "master sees rural again")
