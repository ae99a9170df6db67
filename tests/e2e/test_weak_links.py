"""Lessons on rural links: real `twinclass serve` and classroom processes, one of them behind
`--link` (a user-space impairment of both directions of its connection).

What a pupil sees is read from each classroom's stats file, sampled during the run: frames
decoded per second, freezes, audio holes, unreadable pictures and the tier the server sends.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from harness import ClassroomLauncher, ClassroomProcess, ServerProcess, mint_token, wait_until

from sfu.media.bandwidth import CAMERA_MAX_BPS


def _sample(procs: dict[str, ClassroomProcess], seconds: float, every: float = 0.5) -> list[tuple[float, dict]]:
    """(time, {name: stats}) every `every` seconds for `seconds`."""
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        out.append((time.monotonic(), {name: p.stats() for name, p in procs.items()}))
        time.sleep(every)
    return out


def _fps_windows(samples: list[tuple[float, dict]], who: str, remote: str, window: float = 1.0) -> list[float]:
    """Frames `who` decoded of `remote` per second, over consecutive windows of at least `window`
    seconds of the stats file's own clock (it is rewritten about once a second)."""
    points = sorted({(s[who]["updated_at"], s[who].get("remotes", {}).get(remote, {}).get("frames_decoded", 0))
                     for _, s in samples if "updated_at" in s[who]})
    rates = []
    i = 0
    for j in range(1, len(points)):
        if points[j][0] - points[i][0] >= window:
            rates.append((points[j][1] - points[i][1]) / (points[j][0] - points[i][0]))
            i = j
    return rates


def _remote(stats: dict[str, Any], remote: str) -> dict[str, Any]:
    return dict(stats.get("remotes", {}).get(remote, {}))


def test_weak_rural_classroom_follows_while_the_urban_one_keeps_its_full_lesson(
        server: ServerProcess, classrooms: ClassroomLauncher) -> None:
    """3 % loss, 150 ms RTT, 1 Mbps: the rural classroom decodes the master at >= 15 fps with no
    freeze over 1 s and no audio hole over 200 ms; a clean rural classroom keeps >= 25 fps at full
    size; the master is still told to send at its full rate."""
    admin = mint_token(server, role="admin")
    procs = {
        "master": classrooms.start("master", "master", "--duration", "60"),
        "weak": classrooms.start("rural-1", "rural", "--duration", "60",
                                 "--link", "loss=3%,delay=75ms,jitter=10ms,rate=1mbit"),
        "clean": classrooms.start("rural-2", "rural", "--duration", "60"),
    }
    wait_until(lambda: all(_remote(procs[n].stats(), "master").get("frames_verified", 0) > 30
                           for n in ("weak", "clean")), 40, message="both rural classrooms receiving")
    time.sleep(3)
    start = {n: p.stats() for n, p in procs.items()}
    samples = _sample(procs, 15)
    end = samples[-1][1]
    weak_fps = _fps_windows(samples, "weak", "master")
    clean_fps = _fps_windows(samples, "clean", "master")
    weak, clean = _remote(end["weak"], "master"), _remote(end["clean"], "master")
    print(f"weak rural <- master: fps per s {[round(f, 1) for f in weak_fps]}, {weak}")
    print(f"clean rural <- master: fps per s {[round(f, 1) for f in clean_fps]}")
    assert min(weak_fps) >= 15, weak_fps
    assert weak["max_freeze_ms"] < 1000 and weak["audio_max_gap_ms"] < 200, weak
    assert weak["decode_errors"] == _remote(start["weak"], "master")["decode_errors"], "an unreadable picture shown"
    assert end["weak"]["link"] == "loss=3%,delay=75ms,jitter=10ms,rate=1mbit"
    assert end["weak"]["link_stats"]["downlink"]["dropped_loss"] > 0  # the impairment really acted
    assert min(clean_fps) >= 25 and clean["tier"] == "full" and clean["height"] == 240, (clean_fps, clean)
    assert clean["decode_errors"] == 0 and clean["freezes"] == 0, clean
    # the master's uplink is told its full rate: the weak classroom does not drag it down
    _status, stats = server.api("/api/stats", token=admin)
    master_camera = stats["lessons"]["demo"]["tracks"]["master/camera"]
    assert master_camera["uplink"]["remb_bps"] == CAMERA_MAX_BPS, master_camera
    assert end["master"]["encoder_restarts"] <= 1, end["master"]  # at most the first REMB's step up


def test_a_blackout_heals_by_itself_and_spares_the_others(server: ServerProcess,
                                                          classrooms: ClassroomLauncher) -> None:
    """rural-1 loses its line for 10 s; within 3 s of its return media flows both ways again,
    and rural-2 never noticed."""
    procs = {
        "master": classrooms.start("master", "master", "--duration", "60"),
        "rural-1": classrooms.start("rural-1", "rural", "--duration", "60", "--link", "blackout=12s+10s"),
        "rural-2": classrooms.start("rural-2", "rural", "--duration", "60"),
    }
    started = time.monotonic()  # the link's clock starts a little after this (process start-up)
    samples = _sample(procs, 32, every=0.25)

    def decoded(t_from: float, t_to: float, who: str, remote: str) -> int:
        inside = [s[who].get("remotes", {}).get(remote, {}).get("frames_decoded", 0)
                  for t, s in samples if t_from <= t - started <= t_to]
        return inside[-1] - inside[0] if len(inside) > 1 else 0

    def back_at(who: str, remote: str) -> float | None:
        """Seconds after start when `who` decoded a new frame of `remote` after the blackout."""
        last = None
        for t, s in samples:
            n = s[who].get("remotes", {}).get(remote, {}).get("frames_decoded", 0)
            if t - started > 23 and last is not None and n > last:
                return t - started
            if t - started > 14:
                last = n
        return None

    assert decoded(8, 11, "rural-1", "master") > 40, "rural-1 received the master before the blackout"
    assert decoded(15, 21, "rural-1", "master") == 0 and decoded(15, 21, "master", "rural-1") == 0
    down, up = back_at("rural-1", "master"), back_at("master", "rural-1")
    print(f"after the blackout (ends at ~22-23 s): rural-1 sees the master at {down} s, the master sees rural-1 "
          f"at {up} s; sessions {samples[-1][1]['rural-1'].get('sessions')}")
    assert down is not None and down <= 22 + 1.5 + 3, down  # + up to 1.5 s of process start-up
    assert up is not None and up <= 22 + 1.5 + 3, up
    # flowing again (the server may keep rural-1 at the low tier, 15 fps, until its probe succeeds)
    assert decoded(26, 32, "rural-1", "master") >= 6 * 12 and decoded(26, 32, "master", "rural-1") >= 6 * 25
    fps = [f for f in _fps_windows([x for x in samples if 8 < x[0] - started < 32], "rural-2", "master")]
    assert min(fps) >= 25, f"rural-2 noticed: {fps}"
    assert _remote(samples[-1][1]["rural-2"], "master")["freezes"] == 0


def test_bursty_loss_recovers_pictures_by_keyframe(server: ServerProcess, classrooms: ClassroomLauncher) -> None:
    """10 % loss in bursts (both ways): NACK repairs what it can, a keyframe the rest; the
    classroom never shows a picture decoded on a broken reference (the issue's "no unreadable
    frame shown"). Known defect, asserted as it is: a freeze here can last up to ~1.6 s (the
    terminal gives up on a gap after a fixed 600 ms, whatever the round trip, then waits for the
    keyframe), seen in one CI run of six and in the bench's burst10 row; the bound is 2 s. The
    master's view of rural-1 froze 2.8 s once (CI, 2026-12-03): the server re-asked for a lost
    uplink packet only every 200 ms, so a repair lost twice came after the master had given up;
    it now re-asks after twice the round trip (`NackTracker.follow_rtt`), and that view no longer
    freezes (0 ms in 5 runs)."""
    procs = {
        "master": classrooms.start("master", "master", "--duration", "60"),
        "rural-1": classrooms.start("rural-1", "rural", "--duration", "60", "--link", "burst=10%,burstlen=4"),
    }
    wait_until(lambda: _remote(procs["rural-1"].stats(), "master").get("frames_verified", 0) > 30, 40,
               message="rural-1 receiving")
    samples = _sample(procs, 20)
    end = samples[-1][1]
    for who, remote in (("rural-1", "master"), ("master", "rural-1")):
        stats = _remote(end[who], remote)
        fps = _fps_windows(samples, who, remote)
        print(f"{who} <- {remote}: fps per s {[round(f, 1) for f in fps]}, {stats}")
        assert stats["decode_errors"] == 0, f"{who} showed an unreadable picture of {remote}: {stats}"
        assert stats["max_freeze_ms"] < 2000, stats
        assert sum(fps) / len(fps) >= 12, fps  # at the low tier (15 fps) if the server judged the loss too high
    assert end["rural-1"]["link_stats"]["downlink"]["dropped_loss"] > 0


def test_the_tier_follows_a_cap_put_on_and_lifted(server: ServerProcess, classrooms: ClassroomLauncher,
                                                  tmp_path: Path) -> None:
    """A 230 kbit cap put on rural-1's line mid-lesson moves the master's camera to the low tier
    for it (small, slower, still readable); lifting the cap brings the full stream back. The
    clean rural classroom keeps the full stream throughout."""
    spec = tmp_path / "rural-1.link"
    spec.write_text("none")
    procs = {  # the master at 640x360 sends ~220 kbps of video: more than the cap leaves after audio
        "master": classrooms.start("master", "master", "--duration", "90", size="640x360"),
        # rural-1 only listens here (no camera), so the cap tests what it receives
        "rural-1": classrooms.start("rural-1", "rural", "--duration", "90", "--link-file", str(spec),
                                    "--video", "none"),
        "rural-2": classrooms.start("rural-2", "rural", "--duration", "90"),
    }

    def master_at(who: str) -> dict[str, Any]:
        return _remote(procs[who].stats(), "master")

    wait_until(lambda: master_at("rural-1").get("frames_verified", 0) > 60, 40, message="rural-1 receiving")
    assert master_at("rural-1")["tier"] == "full" and master_at("rural-1")["height"] == 360  # as sent
    spec.write_text("rate=230kbit")
    put_on = time.monotonic()
    wait_until(lambda: master_at("rural-1").get("tier") == "low" and master_at("rural-1").get("height") == 180,
               20, message="the low tier under the cap")
    print(f"low tier {time.monotonic() - put_on:.1f} s after the cap")
    low0 = master_at("rural-1")
    time.sleep(4)
    low1 = master_at("rural-1")
    assert low1["frames_verified"] - low0["frames_verified"] >= 4 * 10, (low0, low1)  # readable, >= 10 fps
    assert master_at("rural-2")["tier"] == "full" and master_at("rural-2")["video_fps"] >= 25
    spec.write_text("none")
    lifted = time.monotonic()
    wait_until(lambda: master_at("rural-1").get("tier") == "full" and master_at("rural-1").get("height") == 360,
               40, message="the full stream back after the cap is lifted")
    print(f"full tier {time.monotonic() - lifted:.1f} s after the cap was lifted")
    time.sleep(3)
    assert master_at("rural-1")["video_fps"] >= 25
    assert master_at("rural-2")["freezes"] == 0
