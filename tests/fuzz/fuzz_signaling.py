"""Fuzz target: every socket.io signaling event with generated payloads (sfu/signaling.py).

Payloads are built from each event's real field names with hostile values (wrong types, huge
strings, deep nesting, unicode, big numbers, real classroom ids) plus stray keys, or are not
objects at all. They are sent from sessions of every role: a rural classroom and an observer of
the demo lesson (never its master or rural-1: those are the real lesson the run must not
disturb), an admin, the master of a second lesson, and a socket that never joined.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fuzz_client import FuzzClient, Outcome
from fuzz_rig import LoopThread
from harness import ServerProcess, mint_token
from hypothesis import strategies as st

OTHER_LESSON = "fuzz-other"

EVENTS: dict[str, tuple[str, ...]] = {  # event -> the fields its handler reads
    "join": ("token", "lesson"),
    "publish": ("sdp", "sources"),
    "subscribe": (),
    "subscribe_answer": ("sdp",),
    "ice": ("target", "candidate"),
    "raise_hand": (),
    "lower_hand": ("classroom",),
    "give_floor": ("classroom",),
    "take_floor": (),
    "request_mute": ("classroom",),
    "courseware": ("on",),
    "bring_in": ("classroom",),
    "send_back": ("classroom",),
    "leave": (),
}
SENDERS = ("rural", "observer", "admin", "other_master", "unjoined")

CLASSROOMS = ("rural-1", "rural-2", "rural-3", "master", "observer", "m-other", "r-other", "")


def huge_text() -> st.SearchStrategy[str]:
    return st.builds(lambda piece, n: piece * n, st.sampled_from(["a", "课", "\x00", "😀", "v=0\r\n", "%"]),
                     st.integers(1000, 300_000))


def nasty_scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(), st.booleans(),
        st.integers(), st.sampled_from([2**31, 2**63, -(2**63) - 1, 10**30, -1, 0]),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=64), st.sampled_from(CLASSROOMS), st.sampled_from(["publish", "subscribe", "camera", "mic",
                                                                            "courseware", "v=0", "candidate:"]),
        huge_text(),
    )


def nasty_values() -> st.SearchStrategy[Any]:
    return st.recursive(
        nasty_scalars(),
        lambda inner: st.one_of(st.lists(inner, max_size=5),
                                st.dictionaries(st.text(max_size=12), inner, max_size=5)),
        max_leaves=12,
    ) | st.builds(Deep, st.integers(10, 400))


@dataclass(frozen=True)
class Deep:
    """A value nested `depth` deep, built only when sent (Hypothesis' printer would recurse into it).
    Deeper than ~900 is beyond what the client's own JSON encoder takes: raw frames go deeper."""

    depth: int

    def build(self) -> Any:
        value: Any = "deep"
        for i in range(self.depth):
            value = [value] if i % 2 else {"x": value}
        return value


def materialize(value: Any) -> Any:
    """The payload as sent: every Deep built."""
    if isinstance(value, Deep):
        return value.build()
    if isinstance(value, list):
        return [materialize(v) for v in value]
    if isinstance(value, dict):
        return {k: materialize(v) for k, v in value.items()}
    return value


@st.composite
def payloads(draw: st.DrawFn, event: str) -> Any:
    fields = EVENTS[event]
    if draw(st.integers(0, 9)) == 0:  # not an object at all
        return draw(nasty_values())
    body: dict[str, Any] = {}
    for name in fields:
        if draw(st.booleans()):
            body[name] = draw(nasty_values())
    if draw(st.integers(0, 3)) == 0:
        body.update(draw(st.dictionaries(st.text(max_size=12), nasty_values(), max_size=3)))
    return body


@dataclass(frozen=True)
class Message:
    sender: str
    event: str
    data: Any
    several_args: bool = False  # sent as two socket.io arguments instead of one

    def __repr__(self) -> str:
        data = repr(self.data)
        data = data if len(data) <= 300 else f"{data[:300]}... ({len(data)} chars)"
        return f"Message({self.sender!r}, {self.event!r}, {data}, several_args={self.several_args})"


RAW_EVENT = "<raw frame>"  # Message.data is then one socket.io frame, written as it is


def raw_frames() -> st.SearchStrategy[str]:
    """Socket.io frames no client library would write: truncated JSON, wrong packet types, odd ids,
    arrays of the wrong shape, nesting deeper than any JSON parser's recursion limit."""
    pieces = st.sampled_from(["2", "21", "42", "421", "43", "4", "45", "46", "40", "41", "49", "2/x,", "42/nope,"])
    bodies = st.sampled_from(["[]", "[", '["join"', '["join",', '[1]', '[null]', '["subscribe",{}', "{}", '"x"',
                              '["raise_hand",{}]', '["ice",{"candidate":{"sdpMLineIndex":1e999}}]', "", "[[[["])
    deep = st.builds(lambda n: '["join",' + "[" * n + "]" * n + "]", st.integers(1000, 100_000))
    return st.builds(lambda a, b: a + b, pieces, bodies | st.text(max_size=40)) | deep


@st.composite
def messages(draw: st.DrawFn) -> Message:
    if draw(st.integers(0, 9)) == 0:
        return Message(draw(st.sampled_from(["rural", "observer", "unjoined"])), RAW_EVENT, draw(raw_frames()))
    event = draw(st.sampled_from(sorted(EVENTS)))
    sender = draw(st.sampled_from(SENDERS))
    several = draw(st.integers(0, 19)) == 7  # ~5 % (Hypothesis favours the bounds: 0 comes far more often)
    return Message(sender, event, draw(payloads(event)), several_args=several)


def ensure_other_lesson(server: ServerProcess, admin: str) -> None:
    """A second lesson, so a fuzzer can be a master (floor, mute, courseware) without touching the demo."""
    status, _ = server.api(f"/api/lessons/{OTHER_LESSON}", token=admin)
    if status == 200:
        return
    body = {"id": OTHER_LESSON, "title": "fuzz", "subject": "英语", "grade": "3", "record": False,
            "master": {"id": "m-other", "name": "M"}, "rurals": [{"id": "r-other", "name": "R"}]}
    status, created = server.api("/api/lessons", method="POST", body=body, token=admin)
    assert status == 201, created


class SignalingTarget:
    """Sends generated messages from one client per sender role."""

    def __init__(self, server: ServerProcess, loop: LoopThread) -> None:
        admin = mint_token(server, role="admin")
        ensure_other_lesson(server, admin)
        self.loop = loop
        url = server.url
        self.clients: dict[str, FuzzClient] = {
            "rural": FuzzClient(url, mint_token(server, role="rural", classroom="rural-3")),
            "observer": FuzzClient(url, mint_token(server, role="observer", name="fuzz observer")),
            "admin": FuzzClient(url, mint_token(server, role="admin", name="fuzz admin"), lesson="demo"),
            "other_master": FuzzClient(url, mint_token(server, role="master", classroom="m-other",
                                                       lesson=OTHER_LESSON)),
            "unjoined": FuzzClient(url),
        }
        self.outcomes: dict[str, int] = {}

    def check(self, message: Message) -> Outcome:
        client = self.clients[message.sender]
        join = message.sender != "unjoined" and message.event != "join"
        if message.event == RAW_EVENT:
            outcome = self.loop.run(client.send_raw(str(message.data), join=join), timeout=60)
            self.outcomes[outcome.kind] = self.outcomes.get(outcome.kind, 0) + 1
            return outcome
        data = materialize(message.data)
        args = (data, data) if message.several_args else None
        outcome = self.loop.run(client.send(message.event, data, join=join, args=args), timeout=60)
        self.outcomes[outcome.kind] = self.outcomes.get(outcome.kind, 0) + 1
        return outcome

    def close(self) -> None:
        for client in self.clients.values():
            self.loop.run(client.close())
