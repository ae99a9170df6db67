"""A lesson room whose classroom's media connection goes while the classroom stays, with real aiortc
peers over loopback (in process): the server's side of the connection is closed under the room (as
an exception inside aiortc, or the other side's DTLS close, leaves it), or a new connection comes
from the same session. The room ends that connection alone, says so (`media_lost`, naming the
classroom's connection by its ICE username fragment), and takes the new one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from peers import Received, _consume, until

from classroom_client.encoders import install_publisher_encoders
from classroom_client.pattern import source_tag
from classroom_client.sources import TestPatternTrack, ToneTrack
from sfu.lessons import Classroom, Lesson, Role
from sfu.media.aiortc_adapter import use_host_addresses
from sfu.media.endpoint import ice_ufrag, rtc_configuration
from sfu.room import LessonRoom, Participant, RoomDirectory


@pytest.fixture(autouse=True)
def loopback() -> Any:
    use_host_addresses(["127.0.0.1"])
    install_publisher_encoders()
    yield
    use_host_addresses(None)


@dataclass
class Rig:
    rooms: RoomDirectory
    room: LessonRoom
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    pcs: list[RTCPeerConnection] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def named(self, name: str) -> list[dict[str, Any]]:
        return [data for event, data in self.events if event == name]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    rooms = RoomDirectory([])
    room = rooms.get_or_create(Lesson(id="t", title="t", subject="英语", grade="3",
                                      master=Classroom("master", "M", "S"), rurals=[Classroom("rural-1", "R1", "S")]))
    rig = Rig(rooms, room)
    room.add_listener(lambda event, data: rig.events.append((event, data)))
    await room.join(Participant(sid="m", classroom="master", name="M", role=Role.MASTER))
    await room.join(Participant(sid="r", classroom="rural-1", name="R1", role=Role.RURAL))
    yield rig
    for task in rig.tasks:
        task.cancel()
    for pc in rig.pcs:
        await pc.close()
    await rooms.close()


async def publish(rig: Rig, sid: str, name: str) -> RTCPeerConnection:
    """A classroom's publishing connection (the test pattern and a tone), as the terminal makes it."""
    pc = RTCPeerConnection(rtc_configuration([]))
    rig.pcs.append(pc)
    pc.addTransceiver(TestPatternTrack(320, 240, 30, name, source_tag(name)), direction="sendonly")
    pc.addTransceiver(ToneTrack(440), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    answer = await rig.room.publish(sid, pc.localDescription.sdp, {"0": "camera", "1": "mic"})
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    return pc


async def subscribe(rig: Rig, sid: str) -> tuple[RTCPeerConnection, Received]:
    """A classroom's receiving connection; what its camera slots decode (the pattern's tags)."""
    offer, _slots = await rig.room.subscribe(sid)
    pc = RTCPeerConnection(rtc_configuration([]))
    rig.pcs.append(pc)
    video = Received()

    @pc.on("track")
    def on_track(track: Any) -> None:
        if track.kind == "video":
            rig.tasks.append(asyncio.ensure_future(_consume(track, video)))

    await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    await rig.room.subscribe_answer(sid, pc.localDescription.sdp)
    return pc, video


def ufrag_of(pc: RTCPeerConnection) -> str | None:
    return ice_ufrag(pc.localDescription.sdp)


def rural_frames(video: Received) -> int:
    return sum(1 for tag in video.tags if tag == source_tag("rural-1"))


async def test_a_publishing_connection_closed_under_the_server_ends_that_publication_alone(rig: Rig) -> None:
    old = await publish(rig, "r", "rural-1")
    master_pc, video = await subscribe(rig, "m")
    await until(lambda: rural_frames(video) > 20, 20, "the master decodes rural-1")
    rural = rig.room.participants["r"]
    endpoint = rural.publisher
    assert endpoint is not None
    dead = dict(rural.published)

    await endpoint.pc.close()  # not through the endpoint: as aiortc closes it after a DTLS close
    await until(lambda: rig.named("media_lost"), 5, "the room to see the connection go")
    assert rig.named("media_lost") == [{"sid": "r", "classroom": "rural-1", "target": "publish", "state": "closed",
                                        "ufrag": ufrag_of(old)}]
    assert rig.room.media_lost == {"rural-1/publish/closed": 1}
    assert rural.publisher is None and rural.published == {} and all(t.closed for t in dead.values())
    assert rig.named("unpublished") == [{"classroom": "rural-1", "sources": ["camera", "mic"]}]
    assert "r" in rig.room.participants and rig.room.participants["m"].subscriber is not None  # sessions stay
    slot = {s["key"]: s for s in rig.room.slots_json(rig.room.participants["m"])}["rural-1:camera"]
    assert slot["classroom"] is None  # the master's slot is freed, as when a classroom leaves
    await until(lambda: endpoint.closed, 5, "the lost endpoint closed")

    seen = rural_frames(video)
    await publish(rig, "r", "rural-1")  # the same session publishes again
    await until(lambda: rural_frames(video) > seen + 20, 10, "the master decodes rural-1 again")
    assert rig.room.media_lost == {"rural-1/publish/closed": 1}  # a new publication, not a replacement
    assert master_pc.connectionState == "connected"


async def test_a_new_connection_replaces_the_publishing_one_a_renegotiation_does_not(rig: Rig) -> None:
    first = await publish(rig, "r", "rural-1")
    master_pc, video = await subscribe(rig, "m")
    await until(lambda: rural_frames(video) > 10, 20, "the master decodes rural-1")
    endpoint = rig.room.participants["r"].publisher
    assert endpoint is not None

    # the same connection offers again (a browser adding its courseware does): kept
    await first.setLocalDescription(await first.createOffer())
    answer = await rig.room.publish("r", first.localDescription.sdp, {"0": "camera", "1": "mic"})
    await first.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    assert rig.room.participants["r"].publisher is endpoint and rig.room.media_lost == {}

    # a new connection of the same session (its last one died on its side; ours did not notice)
    seen = rural_frames(video)
    await publish(rig, "r", "rural-1")
    assert rig.room.participants["r"].publisher is not endpoint and endpoint.closed
    assert rig.room.media_lost == {"rural-1/publish/replaced": 1} and rig.named("media_lost") == []
    assert [e for e, _ in rig.events if e in ("published", "unpublished")] == [
        "published", "published", "unpublished", "published", "published"]
    await until(lambda: rural_frames(video) > seen + 20, 10, "the master decodes the new connection")
    assert master_pc.connectionState == "connected"


async def test_a_receiving_connection_closed_under_the_server_can_be_made_again(rig: Rig) -> None:
    await publish(rig, "r", "rural-1")
    old_pc, old_video = await subscribe(rig, "m")
    await until(lambda: rural_frames(old_video) > 10, 20, "the master decodes rural-1")
    master = rig.room.participants["m"]
    endpoint = master.subscriber
    assert endpoint is not None
    camera = rig.room.participants["r"].published["camera"]
    assert len(camera.slots) == 1

    await endpoint.pc.close()
    await until(lambda: rig.named("media_lost"), 5, "the room to see the connection go")
    assert rig.named("media_lost") == [{"sid": "m", "classroom": "master", "target": "subscribe", "state": "closed",
                                        "ufrag": ufrag_of(old_pc)}]
    assert master.subscriber is None
    await until(lambda: not camera.slots, 5, "the lost connection's slots let go of rural-1's camera")

    _pc, video = await subscribe(rig, "m")  # the same session subscribes again
    await until(lambda: rural_frames(video) > 20, 10, "the master decodes rural-1 on its new connection")
    assert len(camera.slots) == 1 and rig.room.media_lost == {"master/subscribe/closed": 1}
