"""Classroom analysis: synthetic speech (espeak-ng) through the recorder's capture files, and the S-T rules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import study_archive
import study_speech

from recorder.analysis import (
    AnalysisOptions,
    Room,
    analyze,
    analyze_archive,
    hand_raises,
    lesson_type,
    reanalyze,
    st_analysis,
)

pytestmark = pytest.mark.skipif(not study_speech.espeak_available(), reason="espeak-ng is not installed")


def truth_codes(spoken: list[tuple[float, float]], duration: float, options: AnalysisOptions) -> str:
    """The S-T sequence the placed speech itself gives under the same sampling rule."""
    return str(st_analysis(spoken, duration, options)["sequence"])


def test_seventy_thirty_lesson_through_a_recorder_archive(tmp_path: Path) -> None:
    duration = 120.0
    master, rural = study_speech.seventy_thirty(tmp_path / "speech", duration=duration, block=20.0)
    quiet = study_speech.room_noise(master.pcm.shape[0], seed=3)  # a classroom that never speaks
    directory = tmp_path / "rec"
    directory.mkdir()
    study_archive.write_capture(directory, {"master": master.pcm, "rural-1": rural.pcm, "rural-2": quiet}, [
        (30.0, "hand_raised", {"classroom": "rural-1", "name": "山口教学点"}),
        (33.5, "floor", {"classroom": "rural-1", "by": "master"}),
        (50.0, "hand_raised", {"classroom": "rural-2", "name": "河西村小"}),
        (55.0, "hand_lowered", {"classroom": "rural-2"}),
    ], camera=None)

    result = analyze_archive(directory)  # decodes the Opus tracks the recorder wrote
    by_id = {c["id"]: c for c in result["classrooms"]}
    true_master = 100 * master.speaking_s / duration
    true_rural = 100 * rural.speaking_s / duration
    print(f"master {by_id['master']['percent_of_lesson']:.1f} % (placed {true_master:.1f} %, nominal 70 %); "
          f"rural {by_id['rural-1']['percent_of_lesson']:.1f} % (placed {true_rural:.1f} %, nominal 30 %)")
    for measured, placed, nominal in ((by_id["master"]["percent_of_lesson"], true_master, 70.0),
                                      (by_id["rural-1"]["percent_of_lesson"], true_rural, 30.0)):
        assert abs(measured - nominal) <= 5.0
        assert abs(measured - placed) <= 5.0
    assert by_id["rural-2"]["speaking_s"] < 1.0, "room noise is not speech"

    # S-T at the default 30 s: every sample agrees with what the placed speech says
    st = result["st"]
    assert st["n"] == 4 and st["sequence"] == truth_codes(master.spoken, duration, AnalysisOptions())
    # samples at 15, 45, 75, 105 s: the master speaks 0-14 s of every 20 s -> S T S T, Rt 0.5, Ch 0.75
    assert (st["sequence"], st["rt"], st["ch"], st["type"]) == ("STST", 0.5, 0.75, "dialogue")
    # ...and at 5 s: Rt near the 70 % the master speaks, so a lecture by the thresholds (Rt >= 0.7)
    fine = reanalyze(result, AnalysisOptions(st_interval_s=5.0))["st"]
    expected = truth_codes(master.spoken, duration, AnalysisOptions(st_interval_s=5.0))
    agree = sum(a == b for a, b in zip(fine["sequence"], expected, strict=True)) / len(expected)
    print(f"S-T every 5 s: Rt {fine['rt']:.2f} Ch {fine['ch']:.2f} {fine['type']} (agreement {agree:.0%})")
    assert agree >= 0.95
    # every 20 s: samples at 2.5, 7.5, 12.5 in the master's 14 s, 17.5 in the rural 6 s -> (TTTS) x 6:
    # Rt 0.75 and Ch 11/24 -> a lecture (Rt >= 0.7) even if one sample came out otherwise
    assert expected == "TTTS" * 6
    assert abs(fine["rt"] - 0.75) <= 0.045 and abs(fine["ch"] - 11 / 24) <= 0.09
    assert fine["type"] == "lecture"

    # turns: six master blocks and six rural answers alternate
    assert result["turns"]["exchanges"] >= 10
    share = {r["id"]: r["share"] for r in result["turns"]["per_rural"]}
    assert share["rural-1"] > 0.95 and share["rural-2"] < 0.05
    hands = result["hands"]
    assert (hands["raised"], hands["answered"], hands["lowered"]) == (2, 1, 1)
    assert hands["items"][0]["wait_s"] == pytest.approx(3.5, abs=0.05)

    # the archive build makes the same analysis from its chunks' voice activity (30 s at a time,
    # each with a warm-up), so the recording page has it the moment the archive is ready
    manifest = study_archive.build(directory)
    assert manifest["analysis"] == "analysis.json"
    chunked = json.loads((directory / "analysis.json").read_text())
    for ours, whole in zip(chunked["classrooms"], result["classrooms"], strict=True):
        assert abs(ours["percent_of_lesson"] - whole["percent_of_lesson"]) <= 1.0, (ours, whole)
    assert chunked["st"]["sequence"] == st["sequence"]
    assert abs(chunked["turns"]["exchanges"] - result["turns"]["exchanges"]) <= 1
    assert chunked["hands"] == result["hands"]


@pytest.mark.parametrize(("rt", "ch", "kind"), [
    (0.30, 0.9, "practice"), (0.10, 0.1, "practice"),
    (0.70, 0.1, "lecture"), (0.95, 0.5, "lecture"),
    (0.50, 0.40, "dialogue"), (0.31, 0.90, "dialogue"),
    (0.50, 0.39, "mixed"), (0.69, 0.2, "mixed"),
])
def test_lesson_type_follows_the_thresholds(rt: float, ch: float, kind: str) -> None:
    assert lesson_type(rt, ch) == kind


def test_st_counts_runs_and_dialogue() -> None:
    rooms = [Room("m", "M", "master"), Room("r", "R", "rural")]
    duration = 200.0
    # 10-s turns alternating: sampled every 10 s, TSTS... -> Rt 0.5, Ch (20 - 1) / 20 -> dialogue
    master = [(a, a + 10.0) for a in np.arange(0, duration, 20.0)]
    rural = [(a + 10.0, a + 20.0) for a in np.arange(0, duration, 20.0)]
    st = analyze(rooms, {"m": master, "r": rural}, [], duration, AnalysisOptions(st_interval_s=10.0))["st"]
    assert (st["n"], st["n_t"], st["runs"]) == (20, 10, 20)
    assert st["rt"] == 0.5 and st["ch"] == pytest.approx(19 / 20) and st["type"] == "dialogue"
    assert st["curve"][-1] == [10, 10]
    # the master talks through the first half, the pupils work silently after: TTTTTTTTTTSSSSSSSSSS
    st = analyze(rooms, {"m": [(0.0, 100.0)], "r": []}, [], duration, AnalysisOptions(st_interval_s=10.0))["st"]
    assert (st["rt"], st["runs"], st["type"]) == (0.5, 2, "mixed")
    st = analyze(rooms, {"m": [(0.0, 40.0)], "r": []}, [], duration, AnalysisOptions(st_interval_s=10.0))["st"]
    assert (st["rt"], st["type"]) == (0.2, "practice")


def test_hand_raised_again_after_being_answered() -> None:
    events = [
        {"t": 5.0, "event": "hand_raised", "classroom": "r1"},
        {"t": 9.0, "event": "floor", "classroom": "r1"},
        {"t": 20.0, "event": "floor", "classroom": None},
        {"t": 30.0, "event": "hand_raised", "classroom": "r1"},
        {"t": 31.0, "event": "hand_raised", "classroom": "r2"},
        {"t": 40.0, "event": "floor", "classroom": "r2"},
    ]
    h = hand_raises(events, 60.0)
    assert [(i["classroom"], i["outcome"], i["wait_s"]) for i in h["items"]] == [
        ("r1", "answered", 4.0), ("r1", "unanswered", None), ("r2", "answered", 9.0)]
    assert h["mean_wait_s"] == 6.5
