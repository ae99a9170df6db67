"""What a classroom sees when the camera or microphone cannot be used."""

from __future__ import annotations

from harness import ServerProcess, mint_token, wait_for
from lesson_page import LessonPages

# Make getUserMedia fail the way a browser does when the user blocks the permission, or when a
# kind of device is absent (the page must say so plainly and keep the lesson going).
DENY_ALL = """
navigator.mediaDevices.getUserMedia = async () => {
  throw new DOMException("Permission denied", "NotAllowedError");
};
"""
NO_CAMERA = """
(() => {
  const real = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (c) => {
    if (c && c.video) throw new DOMException("Requested device not found", "NotFoundError");
    return real(c);
  };
})();
"""


def published_tracks(server: ServerProcess) -> list[str]:
    status, stats = server.api("/api/stats", token=mint_token(server, role="admin"))
    assert status == 200, stats
    lesson = stats["lessons"].get("demo") or {"tracks": {}}
    return sorted(lesson["tracks"])


def test_permission_denied_is_explained_and_the_lesson_goes_on(server: ServerProcess, pages: LessonPages) -> None:
    rural = pages.open_as(server, "rural-1", "rural", label="denied", init_script=DENY_ALL)
    banner = rural.page.locator('#banners [data-kind="media.denied"]')
    banner.wait_for(timeout=15_000)
    assert "没有获得摄像头和麦克风的使用权限" in banner.inner_text()
    assert "刷新页面" in banner.inner_text()  # tells the teacher what to do
    rural.wait_connected(timeout=15)  # still receives the lesson
    assert rural.page.locator("#btn-hand").is_visible()  # and can still raise a hand
    assert published_tracks(server) == []
    rural.screenshot("rural-permission-denied")

    # English switch: every visible string changes language, including the banner
    rural.page.click("#btn-lang")
    wait_for(lambda: "permission was denied" in rural.text("#banners"), 5, "English banner")
    assert rural.text("#btn-hand") == "Raise hand"
    assert rural.text("#btn-lang") == "中文"
    rural.screenshot("rural-permission-denied-en")


def test_missing_camera_sends_sound_only(server: ServerProcess, pages: LessonPages) -> None:
    rural = pages.open_as(server, "rural-1", "rural", label="nocamera",
                       init_script=NO_CAMERA)
    rural.page.locator('#banners [data-kind="media.camera_missing"]').wait_for(timeout=15_000)
    rural.wait_connected(timeout=15)
    wait_for(lambda: published_tracks(server) == ["rural-1/mic"], 10, "microphone published alone")
    assert rural.text("#self-placeholder") == "未开启摄像头"
