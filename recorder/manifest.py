"""``manifest.json``: what an archive holds, and checking an archive against it.

The manifest is written last (atomically), so an archive directory either has a manifest that
describes every file in it, or none. `verify` re-hashes every file and decodes a sample of the
lesson video and its sound.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

MANIFEST = "manifest.json"
FORMAT = "twinclass-archive/1"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_entry(directory: Path, rel: str, role: str) -> dict[str, Any]:
    path = directory / rel
    return {"path": rel, "role": role, "size": path.stat().st_size, "sha256": sha256_of(path)}


def read_manifest(directory: Path) -> dict[str, Any] | None:
    path = directory / MANIFEST
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@dataclass
class VerifyReport:
    ok: bool = True
    checked: int = 0
    problems: list[str] = field(default_factory=list)
    video_frames: int = 0
    audio_seconds: float = 0.0
    duration: float = 0.0

    def fail(self, message: str) -> None:
        self.ok = False
        self.problems.append(message)


def verify(directory: Path, *, sample_s: float = 3.0) -> VerifyReport:
    """Check every listed file's size and SHA-256, then decode a few seconds of the lesson video."""
    report = VerifyReport()
    manifest = read_manifest(directory)
    if manifest is None:
        report.fail(f"{directory}: no {MANIFEST} (not built yet?)")
        return report
    if manifest.get("format") != FORMAT:
        report.fail(f"unknown manifest format {manifest.get('format')!r}")
    root = directory.resolve()
    for entry in manifest.get("files", []):
        path = (directory / entry["path"]).resolve()
        if root not in path.parents:
            report.fail(f"{entry['path']}: outside the archive")
            continue
        if not path.is_file():
            report.fail(f"{entry['path']}: missing")
            continue
        size = path.stat().st_size
        if size != entry["size"]:
            report.fail(f"{entry['path']}: size {size}, manifest says {entry['size']}")
            continue
        if sha256_of(path) != entry["sha256"]:
            report.fail(f"{entry['path']}: SHA-256 differs from the manifest")
            continue
        report.checked += 1
    video = directory / manifest.get("video", {}).get("file", "lesson.mp4")
    try:
        _decode_sample(video, manifest, report, sample_s)
    except (av.FFmpegError, OSError, ValueError) as exc:
        report.fail(f"{video.name}: cannot decode ({exc})")
    return report


def _decode_sample(video: Path, manifest: dict[str, Any], report: VerifyReport, sample_s: float) -> None:
    with av.open(str(video)) as container:
        vs = container.streams.video[0]
        if container.streams.audio:
            report.audio_seconds = float((container.streams.audio[0].duration or 0)
                                         * (container.streams.audio[0].time_base or 0))
        report.duration = float(container.duration or 0) / 1_000_000
        expected = float(manifest.get("duration_s", 0))
        if abs(report.duration - expected) > 0.5:
            report.fail(f"{video.name}: lasts {report.duration:.2f} s, manifest says {expected:.2f} s")
        # a few seconds from the start, the middle and the end
        for at in (0.0, max(0.0, report.duration / 2 - sample_s / 2), max(0.0, report.duration - sample_s)):
            container.seek(int(at * 1_000_000), any_frame=False, backward=True)
            got = 0
            for frame in container.decode(vs):
                if frame.time is not None and frame.time > at + sample_s:
                    break
                got += 1
            if got == 0:
                report.fail(f"{video.name}: no frame decoded near {at:.1f} s")
            report.video_frames += got
