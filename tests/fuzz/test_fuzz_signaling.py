"""Every signaling event with generated payloads from every kind of session: the server answers
(ok, or an error with code and message that is not `server_error`) or closes that socket, never
hangs, and the real lesson running meanwhile keeps its frame rate."""

from __future__ import annotations

from fuzz_signaling import Message, SignalingTarget, messages
from fuzz_suite import SEED, Rig, fuzz_settings
from hypothesis import example, given, seed


def test_signaling_messages_are_answered_or_refused(rig: Rig) -> None:
    target = SignalingTarget(rig.server, rig.loop)
    started, baseline = rig.begin()

    @seed(SEED)
    @fuzz_settings(40)
    @given(messages())
    @example(Message("rural", "ice", {"target": "publish", "candidate": {"candidate": "", "sdpMid": ["x"]}}))
    @example(Message("observer", "subscribe", None, several_args=True))
    def fuzz(message: Message) -> None:
        target.check(message)

    try:
        fuzz()
    finally:
        target.close()
    print(f"signaling outcomes: {target.outcomes}")
    rig.finish(started, baseline)


def test_an_event_with_two_arguments_is_answered(rig: Rig) -> None:
    """Found by the fuzzer: `subscribe` sent with two socket.io arguments made python-socketio call
    the handler with one argument too many (a TypeError logged as "Task exception was never
    retrieved"), and the client never got an answer."""
    target = SignalingTarget(rig.server, rig.loop)
    try:
        outcome = target.check(Message("observer", "subscribe", {}, several_args=True))
    finally:
        target.close()
    assert outcome.closed or outcome.code is not None or outcome.ok, outcome
