"""The archive builder on captures written by the recorder's own writer (no server needed).

A synthetic lesson: the master talks, falls quiet while rural-2 answers (a tone that starts
and stops), rural-1 makes one short noise, then the master shares slides. The archive must cut
to rural-2 while it speaks, ignore the short noise, show the slides large, never cut faster than
every 2 s — and `verify` must notice when a file no longer matches the manifest.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import pytest
from archive_checks import LARGE_4_3, cli, large_pictures
from synthetic import Classroom, SyntheticLesson, write_capture

from classroom_client.pattern import read_pattern, source_tag
from recorder.build import BuildOptions, build_archive
from recorder.manifest import verify
from recorder.timeline import CaptureError, load_capture

SLIDES_TAG = source_tag("master/courseware")


def _between(a: float, b: float):  # type: ignore[no-untyped-def]
    return lambda t: a <= t < b


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("rec") / "synth-20240101-080000"
    lesson = SyntheticLesson(
        duration=22.0,
        fps=10,
        classrooms=[
            Classroom("master", 440, loud=lambda t: not 6.0 <= t < 12.0),
            Classroom("rural-1", 660, joined=0.3, loud=_between(11.4, 11.9)),  # a 0.5 s noise: no cut
            Classroom("rural-2", 880, joined=0.6, loud=_between(7.0, 11.0)),  # answers while the master listens
        ],
        events=[(2.0, "hand_raised", {"classroom": "rural-2", "name": "rural-2"})],
        courseware=(15.0, 19.5),
    )
    write_capture(directory, lesson)
    build_archive(directory, BuildOptions(fps=10, workers=2))
    return directory


def test_director_cuts_to_the_speaker_and_to_the_slides(archive: Path) -> None:
    manifest = json.loads((archive / "manifest.json").read_text())
    shots = manifest["shots"]
    assert [(s["large"], s["reason"]) for s in shots] == [
        ("master:camera", "teacher"),
        ("rural-2:camera", "speaking"),
        ("master:camera", "teacher"),
        ("master:courseware", "courseware"),
        ("master:camera", "teacher"),
    ], shots
    speaking = shots[1]
    assert abs(speaking["start"] - 7.0) <= 0.3 and abs(speaking["end"] - 11.0) <= 0.6, speaking
    assert speaking["inset"] == "master:camera"
    assert abs(shots[3]["start"] - 15.2) <= 0.3 and abs(shots[3]["end"] - 19.5) <= 0.3, shots[3]
    assert all(s["end"] - s["start"] >= 2.0 for s in shots), shots

    # what a viewer sees, read back from the frames
    seen = {round(s.t, 1): s for s in large_pictures(archive / "lesson.mp4")}
    assert seen[4.0].classroom == "master"
    assert seen[9.0].classroom == "rural-2"
    assert seen[13.0].classroom == "master"  # rural-1's short noise did not take over
    with av.open(str(archive / "lesson.mp4")) as container:
        for frame in container.decode(video=0):
            if abs(float(frame.time or 0) - 17.0) < 0.05:
                luma = frame.to_ndarray(format="gray")
                break
    slides = read_pattern(luma)  # 16:9 slides fill the whole frame
    assert slides is not None and slides.tag == SLIDES_TAG
    inset = read_pattern(luma[720 - 24 - 240:720 - 24, 1280 - 24 - 320:1280 - 24])
    assert inset is not None and inset.tag == source_tag("master")


def test_manifest_describes_every_file_and_verify_catches_changes(archive: Path, tmp_path: Path) -> None:
    manifest = json.loads((archive / "manifest.json").read_text())
    assert manifest["duration_s"] == pytest.approx(22.0, abs=0.05)
    assert manifest["lesson"]["id"] == "synth" and len(manifest["classrooms"]) == 3
    assert [e["event"] for e in manifest["events"]].count("classroom_joined") == 3
    assert [(e["event"], e["on"]) for e in manifest["events"] if e["event"] == "courseware"] == [
        ("courseware", True), ("courseware", False)]
    hand = next(e for e in manifest["events"] if e["event"] == "hand_raised")
    assert hand["t"] == pytest.approx(2.0, abs=0.01) and hand["classroom"] == "rural-2"
    with av.open(str(archive / "lesson.mp4")) as container:
        assert float(container.duration or 0) / 1e6 == pytest.approx(22.0, abs=0.5)
    roles = [f["role"] for f in manifest["files"]]
    assert roles.count("track") == 7 and "poster" in roles and roles.count("thumbnail") >= 4
    assert len(manifest["thumbnails"]) == roles.count("thumbnail")
    assert verify(archive).ok

    copy = tmp_path / "copy"
    shutil.copytree(archive, copy)
    track = next(f["path"] for f in manifest["files"] if f["role"] == "track")
    data = bytearray((copy / track).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / track).write_bytes(bytes(data))
    report = verify(copy)
    assert not report.ok and any("SHA-256" in p and track in p for p in report.problems), report.problems
    result = cli("archive", "verify", str(copy))
    assert result.returncode == 1 and "SHA-256" in result.stderr


def test_a_capture_cut_short_builds_from_what_is_complete(tmp_path: Path) -> None:
    directory = tmp_path / "crashed"
    lesson = SyntheticLesson(duration=8.0, fps=10, classrooms=[Classroom("master", 440),
                                                                Classroom("rural-1", 660, joined=0.2)])
    epoch = write_capture(directory, lesson, complete=False)
    # the tail of one file never reached the disk (as after kill -9 mid-cluster)
    victim = directory / "capture" / "tracks" / "rural-1.camera.01.mkv"
    victim.write_bytes(victim.read_bytes()[: int(victim.stat().st_size * 0.6)])
    capture = load_capture(directory)
    assert not capture.complete
    ends = {t.key: t.end for t in capture.tracks}
    assert ends["master:camera"] == pytest.approx(8.0, abs=0.3) and ends["rural-1:camera"] < 6.5
    manifest = build_archive(directory, BuildOptions(fps=10, workers=1))
    assert manifest["complete"] is False and manifest["started_at"] == pytest.approx(epoch, abs=0.01)
    assert manifest["duration_s"] == pytest.approx(8.0, abs=0.3)
    assert verify(directory).ok
    pictures = large_pictures(directory / "lesson.mp4", LARGE_4_3, step=5)
    assert [s.classroom for s in pictures if s.t > 1].count("master") >= 0.9 * len([s for s in pictures if s.t > 1])


def test_nothing_recorded_is_a_clear_error(tmp_path: Path) -> None:
    directory = tmp_path / "empty"
    (directory / "capture").mkdir(parents=True)
    (directory / "capture" / "session.json").write_text(json.dumps({"epoch": 1.0, "lesson": {"id": "x"}}))
    with pytest.raises(CaptureError, match="nothing was recorded"):
        build_archive(directory)
    result = cli("archive", "build", str(directory))
    assert result.returncode == 2 and "nothing was recorded" in result.stderr
