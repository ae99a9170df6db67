"""Fuzz targets: SDP offers and answers mutated from real aiortc ones, and trickled ICE candidates.

The offer is a classroom terminal's (VP8 test pattern + Opus tone, made by aiortc in this
process); the answer is aiortc's answer to the server's own subscribe offer. Mutations drop,
duplicate and swap lines, duplicate whole m-sections, put hostile values into m=, rtpmap, fmtp,
ssrc, fingerprint, ice-ufrag/pwd, mid, candidate and extmap lines, and truncate. The server must
either answer or refuse with a clean error (the session's `protocol_error`, a `bad_request`):
never `server_error`, never a hang.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from fuzz_client import FuzzClient, Outcome
from fuzz_rig import FuzzFailure, LoopThread
from harness import ServerProcess, mint_token
from hypothesis import strategies as st

from classroom_client.sources import TestPatternTrack, ToneTrack
from sfu.media.aiortc_adapter import use_host_addresses
from sfu.media.endpoint import rtc_configuration

HOSTILE = ("", "0", "-1", "4294967296", "18446744073709551616", "9" * 400, "abc", "😀", "\x00", "%s%n",
           "1 2 3 4 5 6 7 8 9", " ", "a" * 5000, "sha-256", "::::", "96 VP8/0", "VP8/90000/2/x")
VALUED = ("m=", "a=rtpmap:", "a=fmtp:", "a=ssrc:", "a=ssrc-group:", "a=fingerprint:", "a=ice-ufrag:", "a=ice-pwd:",
          "a=mid:", "a=candidate:", "a=extmap:", "a=rtcp-fb:", "a=msid:", "a=group:BUNDLE", "a=setup:", "c=", "o=")


async def real_offer() -> str:
    """What a classroom terminal offers when it publishes (its pc then closed: only the text is used)."""
    use_host_addresses(["127.0.0.1"])
    pc = RTCPeerConnection(rtc_configuration([]))
    pc.addTransceiver(TestPatternTrack(320, 240, 30, "fuzz", 7), direction="sendonly")
    pc.addTransceiver(ToneTrack(440), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = str(pc.localDescription.sdp)
    await pc.close()
    return sdp


async def real_answer(server_offer: str) -> str:
    use_host_addresses(["127.0.0.1"])
    pc = RTCPeerConnection(rtc_configuration([]))
    await pc.setRemoteDescription(RTCSessionDescription(server_offer, "offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    sdp = str(pc.localDescription.sdp)
    await pc.close()
    return sdp


@dataclass(frozen=True)
class Mutation:
    """One edit of an SDP's lines (kept small so Hypothesis prints and shrinks them well)."""

    op: str  # drop | dup | swap | value | dup_media | truncate | insert
    index: int
    other: int = 0
    value: str = ""

    def apply(self, lines: list[str]) -> list[str]:
        if not lines:
            return lines
        i = self.index % len(lines)
        out = list(lines)
        if self.op == "drop":
            del out[i]
        elif self.op == "dup":
            out.insert(i, out[i])
        elif self.op == "swap":
            j = self.other % len(lines)
            out[i], out[j] = out[j], out[i]
        elif self.op == "insert":
            out.insert(i, self.value)
        elif self.op == "truncate":
            out[i] = out[i][: self.other % (len(out[i]) + 1)]
            del out[i + 1:]
        elif self.op == "dup_media":
            starts = [k for k, line in enumerate(out) if line.startswith("m=")]
            if starts:
                start = starts[self.index % len(starts)]
                end = next((k for k in starts if k > start), len(out))
                out[end:end] = out[start:end]
        elif self.op == "value":
            prefixed = [k for k, line in enumerate(out) if line.startswith(VALUED[self.other % len(VALUED)])]
            if prefixed:
                k = prefixed[self.index % len(prefixed)]
                prefix = VALUED[self.other % len(VALUED)]
                words = out[k][len(prefix):].split(" ")
                words[self.index % len(words)] = self.value
                out[k] = prefix + " ".join(words)
        return out


def mutations() -> st.SearchStrategy[Mutation]:
    values = st.sampled_from(HOSTILE) | st.text(max_size=30) | st.integers(-(2**70), 2**70).map(str)
    return st.one_of(
        st.builds(Mutation, st.sampled_from(["drop", "dup", "swap", "dup_media", "truncate"]),
                  st.integers(0, 200), st.integers(0, 200)),
        st.builds(Mutation, st.just("value"), st.integers(0, 200), st.integers(0, 200), values),
        st.builds(Mutation, st.just("insert"), st.integers(0, 200), st.just(0),
                  st.sampled_from(VALUED).flatmap(lambda p: values.map(lambda v: p + v)) | values),
    )


@dataclass(frozen=True)
class SdpCase:
    edits: tuple[Mutation, ...]
    line_end: str = "\r\n"
    renegotiate: bool = False  # sent on a session whose publisher connection already took an offer

    def apply(self, sdp: str) -> str:
        lines = sdp.split("\r\n")
        for edit in self.edits:
            lines = edit.apply(lines)
        return self.line_end.join(lines)


def sdp_cases() -> st.SearchStrategy[SdpCase]:
    return st.builds(SdpCase, st.lists(mutations(), min_size=1, max_size=4).map(tuple),
                     st.sampled_from(["\r\n", "\r\n", "\n", "\r"]), st.booleans())


def _refused_cleanly(outcome: Outcome, what: str) -> None:
    if not outcome.ok and outcome.code not in (None, "protocol_error", "bad_request"):
        raise FuzzFailure(f"{what}: refused with {outcome.code!r}: {outcome.reply}")


class SdpTarget:
    """Publishes mutated offers as rural-3 of the demo lesson; answers mutated answers as an observer."""

    def __init__(self, server: ServerProcess, loop: LoopThread) -> None:
        self.loop = loop
        self.offer = loop.run(real_offer())
        self.publisher = FuzzClient(server.url, mint_token(server, role="rural", classroom="rural-3"))
        self.observer = FuzzClient(server.url, mint_token(server, role="observer", name="fuzz sdp observer"))
        self.answer = loop.run(self._first_answer())
        self.accepted = 0

    async def _first_answer(self) -> str:
        reply = (await self.observer.send("subscribe", {})).reply
        answer = await real_answer(reply["sdp"])
        await self.observer.send("leave", {})
        return answer

    async def _offer(self, case: SdpCase) -> Outcome:
        if case.renegotiate:
            first = await self.publisher.send("publish", {"sdp": self.offer, "sources": {}})
            if not first.ok:
                raise FuzzFailure(f"the real offer was refused: {first.reply}")
        outcome = await self.publisher.send("publish", {"sdp": case.apply(self.offer), "sources": {}})
        _refused_cleanly(outcome, "offer")
        if outcome.ok:
            self.accepted += 1
            answer = outcome.reply.get("sdp")
            if not isinstance(answer, str) or not answer.startswith("v=0"):
                raise FuzzFailure(f"an accepted offer got no answer SDP: {outcome.reply}")
        await self.publisher.send("leave", {})
        return outcome

    async def _answer(self, case: SdpCase) -> Outcome:
        offer = await self.observer.send("subscribe", {})
        if not offer.ok:
            raise FuzzFailure(f"subscribe refused: {offer.reply}")
        outcome = await self.observer.send("subscribe_answer", {"sdp": case.apply(self.answer)})
        _refused_cleanly(outcome, "answer")
        self.accepted += outcome.ok
        await self.observer.send("leave", {})
        return outcome

    def check_offer(self, case: SdpCase) -> Outcome:
        return self.loop.run(self._offer(case), timeout=60)

    def check_answer(self, case: SdpCase) -> Outcome:
        return self.loop.run(self._answer(case), timeout=60)

    def close(self) -> None:
        self.loop.run(self.publisher.close())
        self.loop.run(self.observer.close())


# -- ICE candidates ------------------------------------------------------------------------------

CANDIDATE = re.compile(r"^a=(candidate:.*)$", re.MULTILINE)


@st.composite
def candidates(draw: st.DrawFn, real: str) -> dict[str, Any]:
    """A trickled candidate message: a real candidate line edited word by word, or anything at all."""
    words = real.split(" ")
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(words)))
        word = draw(st.sampled_from(HOSTILE) | st.text(max_size=20) | st.integers(-(2**70), 2**70).map(str))
        if i == len(words) or draw(st.booleans()):
            words.insert(i, word)
        else:
            words[i] = word
    text: Any = " ".join(words) if draw(st.integers(0, 5)) else draw(
        st.none() | st.integers() | st.text(max_size=200) | st.lists(st.text(max_size=5), max_size=3))
    scalar = st.none() | st.integers() | st.sampled_from([10**30, -1, 2**63]) | st.text(max_size=10) | \
        st.sampled_from(["0", "1", "x"]) | st.lists(st.text(max_size=3), max_size=2) | st.floats(allow_nan=False)
    out: dict[str, Any] = {"candidate": text}
    if draw(st.booleans()):
        out["sdpMid"] = draw(scalar)
    if draw(st.booleans()):
        out["sdpMLineIndex"] = draw(scalar)
    if draw(st.integers(0, 4)) == 0:
        out["usernameFragment"] = draw(scalar)
    return out


class IceTarget:
    """Trickles generated candidates into rural-3's publisher connection (one real offer per session)."""

    def __init__(self, server: ServerProcess, loop: LoopThread, offer: str) -> None:
        self.loop = loop
        self.offer = offer
        self.real_candidate = CANDIDATE.findall(offer)[0]
        self.publisher = FuzzClient(server.url, mint_token(server, role="rural", classroom="rural-3"))
        self.published = False

    async def _send(self, target: Any, candidate: dict[str, Any]) -> Outcome:
        if not self.published or not self.publisher.joined:
            first = await self.publisher.send("publish", {"sdp": self.offer, "sources": {}})
            if not first.ok:
                raise FuzzFailure(f"the real offer was refused: {first.reply}")
            self.published = True
        outcome = await self.publisher.send("ice", {"target": target, "candidate": candidate})
        _refused_cleanly(outcome, "ice")
        if outcome.closed or not outcome.ok:
            self.published = False
        return outcome

    def check(self, target: Any, candidate: dict[str, Any]) -> Outcome:
        return self.loop.run(self._send(target, candidate), timeout=60)

    def close(self) -> None:
        self.loop.run(self.publisher.close())
