"""Generated join tokens: accepted only when valid by the contract, refused with a reason otherwise."""

from __future__ import annotations

from fuzz_suite import SEED, Rig, fuzz_settings
from fuzz_tokens import NOW, TokenCase, TokenTarget, token_cases
from hypothesis import example, given, seed


def test_join_tokens_are_refused_unless_valid(rig: Rig) -> None:
    target = TokenTarget(rig.server, rig.loop)
    started, baseline = rig.begin()

    @seed(SEED)
    @fuzz_settings(60)
    @given(token_cases())
    @example(TokenCase({"alg": "none", "typ": "JWT"}, {"lesson": "demo", "role": "observer", "exp": NOW + 3600},
                       "empty"))
    @example(TokenCase({"alg": "HS256", "typ": "JWT"}, {"lesson": "demo", "role": "observer", "exp": 10**30},
                       "right"))
    @example(TokenCase({"alg": "HS256", "typ": "JWT"}, {"lesson": "fuzz-other", "role": "observer",
                                                        "exp": NOW + 3600}, "right", lesson_field="demo"))
    def fuzz(case: TokenCase) -> None:
        target.check(case)

    try:
        fuzz()
    finally:
        target.close()
    print(f"tokens accepted: {target.accepted}")
    rig.finish(started, baseline)


def test_an_exp_that_is_a_string_is_refused(rig: Rig) -> None:
    """Found by the fuzzer: PyJWT turns `"exp": "9999999999"` into a number, so a token whose expiry
    is not a NumericDate (RFC 7519) was let in. Refused with the claim named."""
    target = TokenTarget(rig.server, rig.loop)
    case = TokenCase({"alg": "HS256", "typ": "JWT"}, {"lesson": "demo", "role": "observer", "exp": "9999999999"},
                     "right")
    try:
        outcome = target.check(case)
    finally:
        target.close()
    assert outcome.code == "bad_token", outcome
