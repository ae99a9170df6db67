"""subscribe's `mode`, in process (signaling, tokens, rooms and endpoints real; socket.io recorded):
"patrol" gives an observer camera slots only, each keyframes-only; anyone else, or an unknown mode,
is refused with a code and a message naming the field."""

from __future__ import annotations

import asyncio
from pathlib import Path

from test_signaling_errors import Setup


async def test_an_observer_subscribes_in_patrol_mode_to_low_frame_camera_slots(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    assert (await s.join("sid-obs", "observer", "observer"))["ok"]
    reply = await asyncio.wait_for(s.sio.handlers["subscribe"]("sid-obs", {"mode": "patrol"}), 10)
    assert reply["ok"], reply
    assert {slot["key"] for slot in reply["slots"]} == {"master:camera", "rural-1:camera", "rural-2:camera"}
    assert reply["sdp"].count("m=video") == 3 and "m=audio" not in reply["sdp"]
    room = s.rooms.get("demo")
    assert room is not None
    sub = room.participants["sid-obs"].subscriber
    assert sub is not None and not sub.adaptive
    assert all(slot.low_frame for slot in sub.slots.values())
    # a full observer keeps every slot, every frame
    assert (await s.join("sid-full", "observer", "observer"))["ok"]
    full = await asyncio.wait_for(s.sio.handlers["subscribe"]("sid-full", {}), 10)
    assert len(full["slots"]) == 7  # master camera, mic, courseware; two rurals' camera and mic
    full_sub = room.participants["sid-full"].subscriber
    assert full_sub is not None and not any(slot.low_frame for slot in full_sub.slots.values())
    await room.close()


async def test_patrol_mode_is_for_observers_and_modes_are_checked(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    assert (await s.join("sid-rural", "rural-1", "rural"))["ok"]
    reply = await asyncio.wait_for(s.sio.handlers["subscribe"]("sid-rural", {"mode": "patrol"}), 10)
    assert reply["ok"] is False and reply["error"]["code"] == "forbidden"
    assert reply["error"]["message"].startswith("mode: patrol subscriptions are for observers")
    assert (await s.join("sid-obs", "observer", "observer"))["ok"]
    reply = await asyncio.wait_for(s.sio.handlers["subscribe"]("sid-obs", {"mode": "fast"}), 10)
    assert reply["ok"] is False and reply["error"]["code"] == "bad_request"
    assert reply["error"]["message"] == "mode: expected one of full, patrol, not 'fast'"
    reply = await asyncio.wait_for(s.sio.handlers["subscribe"]("sid-obs", {"mode": 3}), 10)
    assert reply["ok"] is False and reply["error"]["code"] == "protocol_error"
    assert "mode: expected str" in reply["error"]["message"]
    # nothing was made for the refused requests
    room = s.rooms.get("demo")
    assert room is not None and all(p.subscriber is None for p in room.participants.values())
    await room.close()
