"""Mutated real SDP offers (publish) and answers (subscribe_answer), and trickled ICE candidates:
an answer or a clean refusal, never `server_error` or a hang, and the real lesson plays on."""

from __future__ import annotations

from typing import Any

from fuzz_sdp import IceTarget, Mutation, SdpCase, SdpTarget, candidates, sdp_cases
from fuzz_suite import SEED, Rig, fuzz_settings
from hypothesis import example, given, seed
from hypothesis import strategies as st


def test_mutated_offers_and_answers_are_answered_or_refused_cleanly(rig: Rig) -> None:
    target = SdpTarget(rig.server, rig.loop)
    started, baseline = rig.begin()
    audio_line = next(i for i, line in enumerate(target.offer.split("\r\n")) if line.startswith("m=audio"))

    @seed(SEED)
    @fuzz_settings(15)
    @given(sdp_cases())
    @example(SdpCase((Mutation("dup_media", 1),)))
    # the audio m= line gone: its attributes fall under the video section, whose mid then is the audio's,
    # and the BUNDLE group's first mid names no section (aiortc bundled onto no transport and hung the reply)
    @example(SdpCase((Mutation("drop", audio_line),)))
    @example(SdpCase((Mutation("value", 0, 1, "18446744073709551616"),)))  # a=rtpmap payload type
    def offers(case: SdpCase) -> None:
        target.check_offer(case)

    @seed(SEED)
    @fuzz_settings(10)
    @given(sdp_cases())
    @example(SdpCase((Mutation("drop", 3),)))
    def answers(case: SdpCase) -> None:
        target.check_answer(case)

    try:
        offers()
        answers()
    finally:
        target.close()
    print(f"offers/answers accepted: {target.accepted}")
    rig.finish(started, baseline)


def test_trickled_ice_candidates_are_checked(rig: Rig) -> None:
    offer_target = SdpTarget(rig.server, rig.loop)
    offer_target.close()
    target = IceTarget(rig.server, rig.loop, offer_target.offer)
    started, baseline = rig.begin()

    @seed(SEED)
    @fuzz_settings(40)
    @given(st.sampled_from(["publish", "publish", "subscribe"]) | st.text(max_size=5) | st.integers(),
           candidates(target.real_candidate))
    @example("publish", {"candidate": target.real_candidate, "sdpMid": ["x"]})
    @example("publish", {"candidate": target.real_candidate, "sdpMLineIndex": 10**30})
    def fuzz(where: Any, candidate: dict[str, Any]) -> None:
        target.check(where, candidate)

    try:
        fuzz()
    finally:
        target.close()
    rig.finish(started, baseline)
