"""What the stats file says per remote: pattern senders, tiers, the server's link report."""

from __future__ import annotations

import json
from pathlib import Path

from classroom_client.pattern import PatternInfo
from classroom_client.session import ClassroomClient, ClientConfig
from classroom_client.stats import RemoteStats


def test_frames_before_the_first_verified_one_are_not_judged() -> None:
    camera, pattern = RemoteStats(), RemoteStats()
    for _ in range(5):
        camera.on_video_frame(320, 240, None)  # a browser's real camera: never an error
    pattern.on_video_frame(320, 240, None)
    pattern.on_video_frame(320, 240, PatternInfo(1, 0, 7))
    pattern.on_video_frame(320, 240, None)  # now a sender of the pattern: unreadable is an error
    assert (camera.decode_errors, camera.frames_unjudged, camera.pattern_sender) == (0, 5, False)
    assert (pattern.decode_errors, pattern.frames_unjudged, pattern.pattern_sender) == (1, 1, True)


def test_tier_and_server_link_are_stored_and_their_absence_tolerated(tmp_path: Path) -> None:
    client = ClassroomClient(ClientConfig(server="http://127.0.0.1:1", token="t", stats_json=tmp_path / "s.json"))
    client._apply_slots([
        {"mid": "0", "key": "v0", "kind": "video", "group": "g", "source": "camera", "classroom": "rural-1",
         "tier": "low"},
        {"mid": "1", "key": "a0", "kind": "audio", "group": "g", "source": "mic", "classroom": "rural-1"},
        {"mid": "2", "key": "v1", "kind": "video", "group": "g", "source": "camera", "classroom": "rural-2"},
    ])
    client.write_stats()
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["server_link"] is None and data["encoder_restarts"] == 0
    assert data["remotes"]["rural-1"]["tier"] == "low" and data["remotes"]["rural-2"]["tier"] is None
    client.server_link = {"downlink_kbps": 850.0, "loss": 0.02, "rtt_ms": None, "state": "weak"}
    client._apply_slots([{"mid": "2", "key": "v1", "kind": "video", "group": "g", "source": "camera",
                          "classroom": None}])
    client.write_stats()
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["server_link"]["state"] == "weak"
    assert not client.remotes["rural-2"].visible and client.remotes["rural-1"].visible
