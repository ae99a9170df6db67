"""`twinclass archive build|verify|list` (also `python -m recorder build|verify|list`)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from recorder.build import BuildAborted, BuildBusy, BuildOptions, build_archive
from recorder.catalog import RecordingCatalog, RecordingFilter
from recorder.manifest import verify
from recorder.timeline import CaptureError


class ProgressBar:
    """A one-line text bar on stderr (a line per 10 % when stderr is not a terminal)."""

    def __init__(self, total_s: float | None = None, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.started = time.monotonic()
        self.tty = self.stream.isatty()
        self._last_step = -1
        self.total_s = total_s

    def __call__(self, stage: str, fraction: float) -> None:
        elapsed = time.monotonic() - self.started
        filled = int(self.width * fraction)
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"[{bar}] {fraction * 100:5.1f}%  {stage:<6}  {elapsed:6.1f} s"
        if self.tty:
            self.stream.write("\r" + line)
            self.stream.flush()
        elif int(fraction * 10) > self._last_step:
            self._last_step = int(fraction * 10)
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _data_dir_of(directory: Path) -> Path | None:
    """<data dir> when `directory` is <data dir>/recordings/<id> and the data dir has a database."""
    parent = directory.resolve().parent
    if parent.name == "recordings" and (parent.parent / "twinclass.db").exists():
        return parent.parent
    return None


def _terminated(signum: int, frame: Any) -> None:
    raise BuildAborted("terminated")


def run_build(args: argparse.Namespace) -> int:
    directory: Path = args.directory
    if args.nice:
        os.nice(args.nice)
    signal.signal(signal.SIGTERM, _terminated)  # stop the worker processes too, not just this one
    options = BuildOptions(fps=args.fps, workers=args.workers, preset=args.preset, parent_pid=args.parent_pid)
    bar = None if args.quiet else ProgressBar()
    try:
        manifest = build_archive(directory, options, bar)
    except (CaptureError, BuildBusy, BuildAborted) as exc:
        if bar:
            bar.close()
        print(f"twinclass archive build: {exc}", file=sys.stderr)
        return 2
    if bar:
        bar.close()
    data_dir = None if args.no_catalog else _data_dir_of(directory)
    if data_dir is not None:
        from recorder.service import apply_manifest, record_from_disk
        from sfu.store import make_engine, sqlite_url

        catalog = RecordingCatalog(make_engine(sqlite_url(data_dir)))
        record = catalog.get(directory.resolve().name) or record_from_disk(directory.resolve())
        apply_manifest(record, directory.resolve())
        catalog.save(record)
    if not args.quiet:
        b = manifest["build"]
        print(f"{directory}: lesson.mp4 {manifest['duration_s']:.1f} s, {len(manifest['shots'])} shots, "
              f"{len(manifest['events'])} events, built in {b['seconds']:.1f} s ({b['speed']:.1f}x real time)"
              + ("" if manifest["complete"] else "  [recording was interrupted]"))
        for warning in manifest.get("warnings", []):
            print(f"  warning: {warning}")
    return 0


def run_chunks(args: argparse.Namespace) -> int:
    """The chunk worker (started by the lesson server): builds chunks of the recordings in progress."""
    from recorder.live_build import ChunkWorker, lower_priority

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s chunks %(levelname)s %(message)s")
    applied = lower_priority() if args.priority == "idle" else []
    logging.getLogger(__name__).info("chunk worker %d: %s", os.getpid(), ", ".join(applied))
    ChunkWorker(args.root, BuildOptions(fps=args.fps, preset=args.preset, parent_pid=args.parent_pid),
                poll_s=args.poll).run()
    return 0


def run_verify(args: argparse.Namespace) -> int:
    report = verify(args.directory)
    if report.ok:
        print(f"{args.directory}: OK — {report.checked} files match the manifest; decoded {report.video_frames} "
              f"frames; {report.duration:.1f} s")
        return 0
    for problem in report.problems:
        print(f"{args.directory}: {problem}", file=sys.stderr)
    return 1


def run_list(args: argparse.Namespace) -> int:
    db = args.data_dir / "twinclass.db"
    if not db.exists():
        print(f"no database in {args.data_dir}", file=sys.stderr)
        return 1
    from sfu.store import make_engine, sqlite_url

    catalog = RecordingCatalog(make_engine(sqlite_url(args.data_dir)))
    records = catalog.list(RecordingFilter(lesson=args.lesson, subject=args.subject, grade=args.grade,
                                           classroom=args.classroom))
    if args.json:
        print(json.dumps([r.to_json() for r in records], ensure_ascii=False, indent=1))
        return 0
    if not records:
        print("no recordings")
        return 0
    print(f"{'recording':36s} {'lesson':12s} {'start (UTC)':19s} {'length':>8s} {'status':10s} {'size':>9s}  title")
    for r in records:
        length = f"{r.duration_s / 60:.1f} min" if r.duration_s else "-"
        size = f"{r.size_bytes / 1e6:.1f} MB" if r.size_bytes else "-"
        status = r.status + ("*" if r.interrupted else "")
        print(f"{r.id:36s} {r.lesson_id:12s} {r.started_at:%Y-%m-%d %H:%M:%S} {length:>8s} {status:10s} {size:>9s}"
              f"  {r.title}")
    if any(r.interrupted for r in records):
        print("* recorded up to a server crash")
    return 0


def _add_archive_commands(asub: Any) -> None:
    b = asub.add_parser("build", help="build (or rebuild) the archive of a recording directory")
    b.add_argument("directory", type=Path, help="a recording directory (<data dir>/recordings/<id>)")
    b.add_argument("--fps", type=int, default=15, help="frame rate of lesson.mp4")
    b.add_argument("--workers", type=int, default=0, help="worker processes (default: one per core)")
    b.add_argument("--preset", default="ultrafast", help="x264 preset")
    b.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    b.add_argument("--nice", type=int, default=0, help="lower this process's priority by N")
    b.add_argument("--no-catalog", action="store_true", help="do not update the data dir's recordings catalog")
    b.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)  # the server running us
    b.set_defaults(func=run_build)

    c = asub.add_parser("chunks", help="build the archives' chunks while lessons are recorded (lowest priority)")
    c.add_argument("--root", type=Path, required=True, help="the recordings directory (<data dir>/recordings)")
    c.add_argument("--fps", type=int, default=15, help="frame rate of lesson.mp4 (as the final build's)")
    c.add_argument("--preset", default="ultrafast", help="x264 preset (as the final build's)")
    c.add_argument("--poll", type=float, default=1.0, help="seconds between looks when nothing is due")
    c.add_argument("--priority", choices=("idle", "normal"), default="idle",
                   help="idle: SCHED_IDLE, nice 19, idle I/O (default); normal: as started (tests on a busy machine)")
    c.add_argument("--verbose", action="store_true")
    c.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    c.set_defaults(func=run_chunks)

    v = asub.add_parser("verify", help="check an archive against its manifest and decode a sample")
    v.add_argument("directory", type=Path)
    v.set_defaults(func=run_verify)

    ls = asub.add_parser("list", help="list the recordings of a data directory")
    ls.add_argument("--data-dir", type=Path, default=Path("./var"))
    ls.add_argument("--lesson")
    ls.add_argument("--subject")
    ls.add_argument("--grade")
    ls.add_argument("--classroom")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=run_list)


def add_commands(sub: Any) -> None:
    p = sub.add_parser("archive", help="lesson archives: build, verify, list")
    _add_archive_commands(p.add_subparsers(dest="archive_command", required=True))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recorder", description="lesson archives")
    _add_archive_commands(parser.add_subparsers(dest="archive_command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)
