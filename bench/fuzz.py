"""The fuzz suite's long version: every target of tests/fuzz/ with many inputs against one server.

    python bench/fuzz.py --inputs 10000            # every target
    python bench/fuzz.py --inputs 2000 --targets http,media

One `twinclass serve` on loopback runs the demo lesson (master + rural-1 terminals, test pattern)
for the whole run. Each target gets `--inputs` generated inputs (Hypothesis, not shrunk: a failure
is counted and the run goes on) and prints a row: inputs tried, crashes (hangs, internal errors,
dropped connections), 5xx answers, time, and the lesson's frame rate (min and median of the
terminals' 3-s windows) during that target. Distinct failures are printed after the table with
the input that made each; the server's leftovers (sessions, peer connections, tasks) at the end.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "fuzz")]

from fuzz_http import HttpTarget, ServerErrorAnswer, http_cases  # noqa: E402
from fuzz_media import MediaTarget, datagrams  # noqa: E402
from fuzz_rig import PATTERN_FPS, FuzzFailure, LessonWatch, LoopThread, debug_counts, wait_clean  # noqa: E402
from fuzz_sdp import IceTarget, SdpTarget, candidates, sdp_cases  # noqa: E402
from fuzz_signaling import SignalingTarget, messages  # noqa: E402
from fuzz_tokens import TokenTarget, token_cases  # noqa: E402
from harness import ServerProcess, mint_token, start_server  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@dataclass
class Row:
    target: str
    inputs: int = 0
    crashes: int = 0
    http_5xx: int = 0
    seconds: float = 0.0
    fps_min: float = 0.0
    fps_median: float = 0.0
    decode_errors: int = 0
    failures: dict[str, str] = field(default_factory=dict)  # first line of the failure -> the input
    sent: list[tuple[float, str]] = field(default_factory=list)  # (when, input): what ran before a dip

    def dips(self, lesson: LessonWatch, below: float) -> list[str]:
        """The inputs sent in the 3 s before each sample whose frame rate fell under `below`."""
        out = []
        for sample in lesson.samples:
            if self.sent and self.sent[0][0] <= sample.at <= self.sent[-1][0] + 3 and min(sample.fps.values()) < below:
                near = [text for at, text in self.sent if sample.at - 3.5 <= at <= sample.at]
                out.append(f"{min(sample.fps.values()):.1f} fps after: {near[-3:]}")
        return out


@dataclass
class Target:
    name: str
    strategy: st.SearchStrategy[Any]
    check: Callable[[Any], Any]
    close: Callable[[], None]
    after: Callable[[], None] = lambda: None  # a last check of the target's own (the media stream still counted)


def make_targets(server: ServerProcess, loop: LoopThread, names: list[str]) -> list[tuple[str, Callable[[], Target]]]:
    def signaling() -> Target:
        t = SignalingTarget(server, loop)
        return Target("signaling", messages(), t.check, t.close)

    def offers() -> Target:
        t = SdpTarget(server, loop)
        return Target("sdp offers", sdp_cases(), t.check_offer, t.close)

    def answers() -> Target:
        t = SdpTarget(server, loop)
        return Target("sdp answers", sdp_cases(), t.check_answer, t.close)

    def ice() -> Target:
        sdp = SdpTarget(server, loop)
        sdp.close()
        t = IceTarget(server, loop, sdp.offer)
        where = st.sampled_from(["publish", "publish", "subscribe"]) | st.text(max_size=5) | st.integers()
        return Target("ice candidates", st.tuples(where, candidates(t.real_candidate)), lambda c: t.check(*c), t.close)

    def tokens() -> Target:
        t = TokenTarget(server, loop)
        return Target("join tokens", token_cases(), t.check, t.close)

    def http() -> Target:
        t = HttpTarget(server, loop)
        return Target("http routes", http_cases(t.table), t.check, t.close)

    def media() -> Target:
        t = MediaTarget(server, loop)
        return Target("rtp/rtcp/udp", datagrams(), t.check, t.close, t.still_forwarding)

    every = {"signaling": signaling, "offers": offers, "answers": answers, "ice": ice, "tokens": tokens,
             "http": http, "media": media}
    return [(name, every[name]) for name in names]


def run_target(target: Target, inputs: int, lesson: LessonWatch, row: Row) -> None:
    started = time.monotonic()

    @settings(max_examples=inputs, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(target.strategy)
    def fuzz(value: Any) -> None:
        row.inputs += 1
        row.sent.append((time.monotonic(), repr(value)[:200]))
        try:
            target.check(value)
        except FuzzFailure as exc:
            first = str(exc).splitlines()[0]
            if isinstance(exc, ServerErrorAnswer):
                row.http_5xx += 1
            else:
                row.crashes += 1
            key = first[:160]
            row.failures.setdefault(key, repr(value)[:300])

    try:
        fuzz()
        target.after()
    except FuzzFailure as exc:
        row.crashes += 1
        row.failures.setdefault(str(exc).splitlines()[0][:160], "(after the run)")
    finally:
        target.close()
    row.seconds = time.monotonic() - started
    window = lesson.window(started)
    row.fps_min, row.fps_median, row.decode_errors = window.fps_min, window.fps_median, window.decode_errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=10_000, help="generated inputs per target (default 10000)")
    parser.add_argument("--targets", default="signaling,offers,answers,ice,tokens,http,media",
                        help="comma-separated subset of: signaling,offers,answers,ice,tokens,http,media")
    args = parser.parse_args()
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="twinclass-fuzz-") as tmp, start_server(Path(tmp) / "var") as server:
        lesson = LessonWatch(server, Path(tmp))
        loop = LoopThread()
        try:
            lesson.wait_running()
            admin = mint_token(server, role="admin")
            baseline = debug_counts(server, admin)
            for name, make in make_targets(server, loop, names):
                row = Row(name)
                rows.append(row)
                print(f"-- {name}: {args.inputs} inputs", flush=True)
                run_target(make(), args.inputs, lesson, row)
            try:
                leftover = f"clean: {wait_clean(server, admin, baseline)}"
            except FuzzFailure as exc:
                leftover = str(exc)
        finally:
            loop.stop()
            lesson.stop()
    print()
    print(f"{'target':16s} {'inputs':>7s} {'crashes':>8s} {'5xx':>5s} {'time s':>8s} {'fps min':>8s} "
          f"{'fps med':>8s} {'dec.err':>8s}")
    for r in rows:
        print(f"{r.target:16s} {r.inputs:7d} {r.crashes:8d} {r.http_5xx:5d} {r.seconds:8.1f} {r.fps_min:8.1f} "
              f"{r.fps_median:8.1f} {r.decode_errors:8d}")
    print(f"\nserver after the run: {leftover}")
    for r in rows:
        for dip in r.dips(lesson, 0.8 * PATTERN_FPS)[:10]:
            print(f"[{r.target}] dip: {dip}")
    for r in rows:
        for failure, value in r.failures.items():
            print(f"[{r.target}] {failure}\n    input: {value}")
    return 1 if any(r.crashes or r.http_5xx for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
