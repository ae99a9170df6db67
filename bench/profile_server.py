"""py-spy on a running server: a flame graph SVG and a table of the functions with most own time.

    .venv/bin/python bench/profile_server.py --pid PID --seconds 30 --out DIR/name   # DIR/name.svg, .txt
    .venv/bin/python bench/profile_server.py --top DIR/name.txt [--n 20]

py-spy samples from outside the process (`--nonblocking`: the server is never paused, so its CPU
figures stay fair) and records only samples where a thread is running Python, not idle in the
event loop's select: the shares below are shares of the server's busy time.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

RATE_HZ = 200
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return found if Path(found).exists() else None


class Profile:
    """Two py-spy runs side by side: one writes the flame graph, one the collapsed stacks."""

    def __init__(self, procs: list[subprocess.Popen[bytes]]) -> None:
        self.procs = procs

    def wait(self, timeout: float) -> None:
        for p in self.procs:
            p.wait(timeout=timeout)


def record_profile(pid: int, out: Path, seconds: float) -> Profile | None:
    """Start sampling `pid` for `seconds` into `out`.svg and `out`.txt; None when py-spy is not installed."""
    exe = py_spy()
    if exe is None:
        print("py-spy is not installed (pip install py-spy): no profile", file=sys.stderr)
        return None
    common = ["record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", str(RATE_HZ),
              "--nonblocking"]
    procs = [subprocess.Popen([exe, *common, "--format", fmt, "--output", f"{out}{ext}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for fmt, ext in (("flamegraph", ".svg"), ("raw", ".txt"))]
    return Profile(procs)


def _name(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    for marker in ("site-packages/", "wt-forward/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{m.group('func')} ({path})"


def profile_top(collapsed: Path, n: int = 20) -> str:
    """The `n` functions with most own ("self") samples, with their share and inclusive share."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for text in collapsed.read_text().splitlines():
        stack, _, count = text.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = [_name(f) for f in stack.split(";")]
        total += samples
        own[frames[-1]] += samples
        for name in set(frames):
            inclusive[name] += samples
    if total == 0:
        return "  (no samples)"
    lines = [f"  {'own %':>6} {'incl %':>6}  function", f"  {'-' * 6} {'-' * 6}  {'-' * 40}"]
    for name, samples in own.most_common(n):
        lines.append(f"  {100 * samples / total:>6.1f} {100 * inclusive[name] / total:>6.1f}  {name}")
    lines.append(f"  ({total} samples at {RATE_HZ} Hz)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pid", type=int)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--top", type=Path, help="print the table of a collapsed-stacks file")
    parser.add_argument("--n", type=int, default=20)
    args = parser.parse_args()
    if args.top:
        print(profile_top(args.top, args.n))
        return
    if args.pid is None or args.out is None:
        parser.error("--pid and --out, or --top")
    profile = record_profile(args.pid, args.out, args.seconds)
    if profile is not None:
        profile.wait(timeout=args.seconds + 60)
        print(profile_top(Path(f"{args.out}.txt"), args.n))


if __name__ == "__main__":
    main()
