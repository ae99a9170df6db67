"""The lesson page in a cluster (web/static/js/failover.js), in real Chromium against two real
`serve` nodes and a private redis-server (tests/e2e/cluster_nodes.py):

- a listening classroom's page and an observer's page on the edge node B show the master's test
  pattern; B is killed (-9); from the same page and token they show the master's picture again
  from the origin A within 3 s;
- a listening page on B that the master brings in is sent to A mid-session (`redirect`), goes
  there from the same page, publishes its camera and still sees the master.
"""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from pathlib import Path

from cluster_nodes import cluster, lesson_stats
from harness import RedisProcess, ServerProcess, mint_token, wait_for
from lesson_page import LessonPage, LessonPages, video_picture

from classroom_client.pattern import PatternInfo, source_tag

FPS = 15
STARTUP_S = 90  # a loaded machine takes its time to start a terminal or a page
RESUME_S = 3.0
MASTER_VIDEO = '#stage video[data-slot="m1:camera"]'


def connect_sources(node: ServerProcess) -> list[str]:
    """The connect-src of the node's pages (its Content-Security-Policy header)."""
    with urllib.request.urlopen(f"{node.url}/static/js/main.js", timeout=30) as resp:
        policy = resp.headers["Content-Security-Policy"]
    return next(d.split()[1:] for d in (p.strip() for p in policy.split(";")) if d.startswith("connect-src"))


def nodes_know_each_other(nodes: list[ServerProcess]) -> None:
    """Each node lists the others as members (its pages may connect there; it takes their Origin)."""
    def known() -> bool:
        return all(f"ws://{other.url.removeprefix('http://')}" in connect_sources(node)
                   for node in nodes for other in nodes)
    wait_for(known, 30, "the nodes name each other in connect-src")


def master_picture(page: LessonPage) -> PatternInfo | None:
    """The master's test pattern in the page's large picture (None: no picture, or not the master's)."""
    info, _ = video_picture(page.page, MASTER_VIDEO)
    return info if info is not None and info.tag == source_tag("m1") else None


def master_counter(page: LessonPage) -> int | None:
    info = master_picture(page)
    return None if info is None else info.counter


def sent_after(info: PatternInfo, wall_ms: int) -> bool:
    """The frame was sent after `wall_ms` (ms since the epoch; the pattern keeps them mod 2^32)."""
    return 0 < (info.sent_ms - wall_ms) & 0xFFFFFFFF < 0x80000000


def sees_master(page: LessonPage) -> int:
    first = wait_for(lambda: master_counter(page), STARTUP_S, f"{page.label}: the master's pattern")
    return int(wait_for(lambda: (n := master_counter(page)) is not None and n > first + FPS and n, 30,
                        f"{page.label}: the master's pattern moving on"))


def server_of(page: LessonPage) -> str:
    """The node the page's socket is on (its own origin unless it moved)."""
    return str(page.page.evaluate("() => window.twinclass.sig.server || location.origin"))


def page_origin(page: LessonPage) -> str:
    return str(page.page.evaluate("() => location.origin"))


def no_policy_violation(page: LessonPage) -> None:
    bad = [line for line in page.console if "Content Security Policy" in line or "[pageerror]" in line]
    assert not bad, bad


def test_viewer_pages_on_a_dead_edge_show_the_master_again_from_the_origin_within_3_s(
        tmp_path: Path, redis_server: RedisProcess, pages: LessonPages) -> None:
    with cluster(tmp_path, redis_server, 2, "L1") as c:
        (a, b), tokens, admin = c.nodes, c.tokens, c.admin
        master = c.terminals[0].start("m1", "master", "--fps", str(FPS), token=tokens["m1"], lesson="mingshi")
        wait_for(lambda: master.stats().get("sessions", 0) >= 1, STARTUP_S, "the master joined on A")
        nodes_know_each_other([a, b])
        observer_token = mint_token(b, role="observer", lesson="mingshi", name="李老师（教研员）")
        viewers = [pages.open(b, tokens["L1"], label="listener-on-b", lesson="mingshi"),
                   pages.open(b, observer_token, label="observer-on-b", lesson="mingshi")]
        for page in viewers:
            page.wait_connected(timeout=STARTUP_S)
            sees_master(page)
            assert server_of(page) == b.url
            assert sorted(page.page.evaluate("() => window.twinclass.failover.nodes")) == sorted([a.url, b.url])
        # both on the edge B, which takes the lesson from A over one relay link
        assert lesson_stats(b, admin)["participants"] == 2 and lesson_stats(b, admin)["edge"]["origin"] == a.url
        assert lesson_stats(a, admin)["relays"] == [b.url]

        killed_at = time.monotonic()
        killed_ms = int(time.time() * 1000)
        os.kill(b.pid, signal.SIGKILL)
        b.proc.wait(10)
        resumed: dict[str, float] = {}
        noticed: dict[str, float] = {}  # when the page showed the loss (its connection indicator)

        def all_resumed() -> bool:
            for page in viewers:
                if page.label not in noticed and page.connection_state() != "connected":
                    noticed[page.label] = round(time.monotonic() - killed_at, 2)
                info = master_picture(page) if page.label not in resumed else None
                # a frame the master sent after the kill (its pattern's send time): it came from A
                if info is not None and sent_after(info, killed_ms):
                    resumed[page.label] = round(time.monotonic() - killed_at, 2)
            return len(resumed) == len(viewers)

        wait_for(all_resumed, 30, f"the pages show the master again (so far {resumed})", interval=0.1)
        print(f"after the kill: the page showed the loss {noticed} s, the master's picture again {resumed} s")
        for page in viewers:
            assert server_of(page) == a.url and page_origin(page) == b.url  # the same page, its socket on A now
            sees_master(page)
            page.wait_connected(timeout=20)
            no_policy_violation(page)
        # on A now, receiving there: both viewers (beside the master and the recorder); B's relay link went with B
        seen: list[object] = []

        def settled() -> bool:
            stats = lesson_stats(a, admin)
            receivers = sorted({key.split("<-")[0] for key in stats["slots"]})
            seen.append((stats["relays"], receivers))
            return stats["relays"] == [] and "L1" in receivers and any(r.startswith("observer-") for r in receivers)

        try:
            wait_for(settled, 20, "A holds both viewers, no relay")
        except AssertionError:
            raise AssertionError(f"A shows (relays, receivers) {seen[-1]}") from None
        viewers[0].screenshot("failover-listener-on-a")
        assert all(t <= RESUME_S for t in resumed.values()), resumed


def test_a_listening_page_brought_in_on_an_edge_moves_to_the_origin_and_publishes_there(
        tmp_path: Path, redis_server: RedisProcess, pages: LessonPages) -> None:
    with cluster(tmp_path, redis_server, 2, "L1") as c:
        (a, b), tokens, admin = c.nodes, c.tokens, c.admin
        nodes_know_each_other([a, b])
        master = pages.open(a, tokens["m1"], label="master-on-a", lesson="mingshi")
        master.wait_connected(timeout=STARTUP_S)
        listener = pages.open(b, tokens["L1"], label="listener-on-b", lesson="mingshi")
        listener.wait_connected(timeout=STARTUP_S)
        listener.wait_video_playing(MASTER_VIDEO, timeout=STARTUP_S)
        assert server_of(listener) == b.url and lesson_stats(b, admin)["participants"] == 1
        assert not listener.page.evaluate("() => window.twinclass.state.publishing")

        listener.page.click("#btn-hand")  # the hand goes up on B, reaches the master on A
        bring_in = '#hand-queue li[data-classroom="L1"] [data-action="bring-in"]'
        wait_for(lambda: master.page.locator(bring_in).count(), 30, "L1's hand in the master's queue")
        master.page.click(bring_in)
        # B sends the page to A (`redirect` mid-session); it publishes there, from the same page
        wait_for(lambda: server_of(listener) == a.url, 20, "the listening page moved to A")
        assert page_origin(listener) == b.url  # not reloaded: the same page talks to A
        wait_for(lambda: listener.page.evaluate("() => window.twinclass.state.publishing"), 30, "the page sends")
        master.wait_video_playing('video[data-slot="guest-1:camera"]', timeout=30)
        assert {"L1/camera", "L1/mic"} <= set(lesson_stats(a, admin)["tracks"])
        listener.wait_connected(timeout=30)
        listener.wait_video_playing(MASTER_VIDEO, timeout=30)  # still the master, now from A
        wait_for(lambda: lesson_stats(a, admin)["relays"] == [], 30, "B dropped its link to A")
        listener.screenshot("brought-in-on-edge-moved-to-origin")
        for page in (master, listener):
            no_policy_violation(page)
