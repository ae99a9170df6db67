"""The connection indicators on the master's page: a Python rural classroom on a healthy link, then
on a lossy one (`twinclass classroom --impair-loss`, short for `--link loss=PCT%`: datagrams dropped
both ways in user space)."""

from __future__ import annotations

from harness import ClassroomLauncher, ServerProcess, wait_for
from lesson_page import Indicator, LessonPages, start_classroom

RURAL_TILE = '.tile[data-tile="rural-1"] .quality'
OWN_UPLINK = "#self-stats"


def healthy(i: Indicator) -> bool:
    """A plausible bitrate for a camera or the 320x240 test pattern, little loss, an RTT, green."""
    return (i.kbps is not None and 50 < i.kbps < 5000 and i.loss_pct is not None and 0 <= i.loss_pct <= 2
            and i.rtt_ms is not None and i.quality == "good" and i.colour == "green")


def lossy(i: Indicator) -> bool:
    return (i.kbps is not None and i.kbps > 0 and i.loss_pct is not None and i.loss_pct > 2
            and i.quality in ("fair", "poor") and i.colour in ("amber", "red"))


def test_indicators_show_a_healthy_link_then_the_loss_of_a_bad_one(
    server: ServerProcess, classrooms: ClassroomLauncher, pages: LessonPages
) -> None:
    master = pages.open_as(server, "master", "master", label="master")
    rural = start_classroom(classrooms, "rural-1", "rural", "--duration", "60")
    master.wait_connected(timeout=25)
    master.wait_video_playing('video[data-slot="rural-1:camera"]', timeout=25)

    tile = master.wait_indicator(RURAL_TILE, healthy, 20, "healthy (green, 50 kbps-5 Mbps, loss <= 2 %, an RTT)")
    uplink = master.wait_indicator(OWN_UPLINK, healthy, 20, "healthy (green, 50 kbps-5 Mbps, loss <= 2 %, an RTT)")
    print(f"healthy: rural-1 tile {tile.text!r}, own uplink {uplink.text!r}")
    assert uplink.text.startswith("上行"), uplink  # the side panel's line is the uplink's
    master.screenshot("indicators-healthy")

    # the same classroom comes back on a bad link: 15 % of its datagrams are lost, each way
    rural.stop()
    wait_for(lambda: master.indicator(RURAL_TILE).quality == "none", 20, "rural-1's indicator cleared")
    bad = start_classroom(classrooms, "rural-1", "rural", "--duration", "60", "--impair-loss", "15")
    tile = master.wait_indicator(RURAL_TILE, lossy, 30, "lossy (amber or red, loss > 2 %)")
    link = bad.stats().get("link_stats") or {}
    print(f"lossy: rural-1 tile {tile.text!r} ({tile.colour}); link {link}")
    # the stats file is rewritten once a second: wait for the one that counts the drops the tile shows
    wait_for(lambda: bad.stats().get("link") == "loss=15%"
             and (bad.stats().get("link_stats") or {}).get("uplink", {}).get("dropped_loss", 0) > 0,
             10, "rural-1's stats counting its dropped packets")
    master.screenshot("indicators-lossy")
