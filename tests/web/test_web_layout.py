"""What each view shows, decided by web/static/js/layout.js (run in Node: it has no DOM)."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest
from harness import ROOT

LESSON = {
    "id": "demo", "title": "t",
    "master": {"id": "master", "name": "主讲"},
    "rurals": [{"id": "rural-1", "name": "一"}, {"id": "rural-2", "name": "二"}, {"id": "rural-3", "name": "三"}],
}


def slot(key: str, kind: str, classroom: str | None, mid: int) -> dict[str, Any]:
    group, source = key.split(":")
    return {"key": key, "mid": str(mid), "kind": kind, "source": source, "group": group, "classroom": classroom}


def layout(state: dict[str, Any]) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    full = {"connection": "connected", "hands": [], "floor": None, "courseware": False, "stats": {},
            "videoReady": [], "online": [], **state}
    script = f"""
import {{ computeLayout }} from "{ROOT / 'web/static/js/layout.js'}";
const s = {json.dumps(full)};
s.online = new Set(s.online); s.videoReady = new Set(s.videoReady); s.stats = new Map(Object.entries(s.stats));
const out = computeLayout(s);
console.log(JSON.stringify({{stage: out.stage, tiles: out.tiles.map(t => ({{key: t.key, classroom: t.classroom,
  visible: t.visible, placeholder: t.placeholder, badges: t.badges, actions: t.actions, tier: t.tier}}))}}));
"""
    result = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def tiles(out: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["key"]: t for t in out["tiles"]}


def test_master_view_floor_holder_is_large_and_offline_rurals_cannot_get_the_floor() -> None:
    slots = [slot(f"rural-{i}:{s}", k, f"rural-{i}", n) for i in (1, 2, 3)
             for n, (s, k) in enumerate((("camera", "video"), ("mic", "audio")), start=2 * i)]
    state = {"you": {"classroom": "master", "role": "master"}, "lesson": LESSON, "slots": slots,
             "online": ["master", "rural-1", "rural-2"], "videoReady": ["rural-1:camera"],
             "hands": [{"classroom": "rural-2", "raised_at": 0}]}
    out = layout(state)
    assert out["stage"] is None
    t = tiles(out)
    assert list(t) == ["rural-1", "rural-2", "rural-3"]
    assert t["rural-1"]["placeholder"] is None and t["rural-1"]["actions"] == ["give-floor", "ask-mute"]
    assert t["rural-2"]["placeholder"] == "tile.waiting" and t["rural-2"]["badges"] == ["tile.hand"]
    assert t["rural-3"]["placeholder"] == "tile.not_connected" and t["rural-3"]["actions"] == []
    out = layout({**state, "floor": "rural-1"})
    assert out["stage"] == "rural-1"
    assert tiles(out)["rural-1"]["actions"] == ["take-floor", "ask-mute"]
    assert tiles(out)["rural-1"]["badges"] == ["tile.has_floor"]


def test_rural_view_master_large_courseware_when_shared_floor_tile_when_someone_speaks() -> None:
    slots = [slot("master:camera", "video", "master", 0), slot("master:mic", "audio", "master", 1),
             slot("master:courseware", "video", None, 2), slot("floor:camera", "video", None, 3),
             slot("floor:mic", "audio", None, 4)]
    state = {"you": {"classroom": "rural-1", "role": "rural"}, "lesson": LESSON, "slots": slots,
             "online": ["master", "rural-1", "rural-2"]}
    out = layout(state)
    assert out["stage"] == "master"
    assert {k: v["visible"] for k, v in tiles(out).items()} == {"master": True, "courseware": False, "floor": False}
    shared = [dict(s, classroom="master") if s["key"] == "master:courseware" else s for s in slots]
    assert layout({**state, "slots": shared, "courseware": True})["stage"] == "courseware"
    speaking = [dict(s, classroom="rural-2") if s["group"] == "floor" else s for s in slots]
    out = layout({**state, "slots": speaking, "floor": "rural-2"})
    floor = tiles(out)["floor"]
    assert out["stage"] == "master" and floor["visible"] and floor["classroom"] == "rural-2"
    assert floor["badges"] == ["tile.has_floor"] and floor["actions"] == []
    assert layout({**state, "online": ["rural-1"]})["tiles"][0]["placeholder"] == "tile.waiting_master"


def test_rural_view_when_rurals_see_each_other_and_observer_view() -> None:
    slots = [slot("master:camera", "video", "master", 0), slot("master:mic", "audio", "master", 1),
             slot("master:courseware", "video", None, 2), slot("rural-2:camera", "video", "rural-2", 3),
             slot("rural-2:mic", "audio", "rural-2", 4), slot("rural-3:camera", "video", None, 5)]
    state = {"you": {"classroom": "rural-1", "role": "rural"}, "lesson": {**LESSON, "rural_see_each_other": True},
             "slots": slots, "online": ["master", "rural-1", "rural-2"]}
    t = tiles(layout(state))
    assert list(t) == ["master", "courseware", "rural-2", "rural-3"]
    assert t["rural-2"]["visible"] and t["rural-3"]["placeholder"] == "tile.not_connected"
    observer = layout({**state, "you": {"classroom": "observer-1", "role": "observer"}, "floor": "rural-2"})
    assert observer["stage"] == "master"
    assert all(not x["actions"] for x in observer["tiles"])
    assert tiles(observer)["rural-2"]["badges"] == ["tile.has_floor"]
    reconnecting = layout({**state, "connection": "reconnecting"})
    assert all(x["placeholder"] == "tile.reconnecting" for x in reconnecting["tiles"])


def test_a_tile_shows_the_tier_its_video_slot_says_the_server_sends() -> None:
    """The server decides tiers (sfu/media/bandwidth.py) and names one per slot; the layout only
    passes the video slot's on, and a slot without the field (an older server) counts as full."""
    slots = [dict(slot("master:camera", "video", "master", 0), tier="low"),
             dict(slot("master:mic", "audio", "master", 1), tier="full"),
             dict(slot("master:courseware", "video", "master", 2), tier="full"),
             slot("floor:camera", "video", "rural-2", 3)]
    state = {"you": {"classroom": "rural-1", "role": "rural"}, "lesson": LESSON, "slots": slots, "courseware": True,
             "online": ["master", "rural-1", "rural-2"], "floor": "rural-2"}
    t = tiles(layout(state))
    assert t["master"]["tier"] == "low" and t["master"]["badges"] == ["tile.low_tier"]
    assert t["courseware"]["tier"] == "full" and "tile.low_tier" not in t["courseware"]["badges"]
    assert t["floor"]["tier"] == "full" and t["floor"]["badges"] == ["tile.has_floor"]
