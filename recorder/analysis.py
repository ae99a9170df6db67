"""Classroom analysis for lesson study: who spoke when, the S-T analysis, exchanges, hand raises.

The input is defined here and does not depend on how the lesson was recorded:

- the lesson's classrooms (`Room`: id, name, role "master" | "rural");
- each classroom's own microphone as mono PCM blocks placed on the lesson timeline
  (first sample index, samples), fed to a `VoiceActivity` detector (webrtcvad, the WebRTC
  project's voice activity detector; no hand-written energy threshold);
- the lesson's events on the same timeline (``{"t": s, "event": name, ...}``: ``floor``,
  ``hand_raised``, ``hand_lowered``, ``courseware``...), as the recorder's manifest lists them.

`analyze` turns speech segments and events into the analysis (plain JSON); `analyze_archive`
is the thin adapter that reads a recorder archive directory (its captured microphone tracks and
events). ``python -m recorder.analysis DIR`` prints the analysis of one archive.

The S-T analysis is an approximation of the observer's 30-second coding: at each sampling point
the behaviour is T when the master classroom is speaking then (its voice is active for at least
half of a short window around the point), otherwise S (a rural classroom speaking, or silence in
which pupils are presumably working). Rt = N_T / N, Ch = (g - 1) / N with g the number of runs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import webrtcvad

VERSION = 1
FRAME_MS = 30  # webrtcvad takes 10, 20 or 30 ms frames
VAD_RATES = (8000, 16000, 32000, 48000)

LESSON_TYPES = {
    "practice": "练习型",
    "lecture": "讲授型",
    "dialogue": "对话型",
    "mixed": "混合型",
}


@dataclass(frozen=True)
class AnalysisOptions:
    st_interval_s: float = 30.0  # S-T sampling interval
    st_window_s: float = 2.0  # the behaviour "at" a sampling point: this window around it
    vad_mode: int = 3  # webrtcvad aggressiveness 0..3: 3 rejects most classroom noise
    bridge_gap_s: float = 0.3  # pauses shorter than this inside speech still count as speaking
    min_speech_s: float = 0.2  # shorter bursts are not speech (clicks, a cough)
    min_turn_s: float = 1.0  # a classroom takes the turn only with speech at least this long
    rt_low: float = 0.3
    rt_high: float = 0.7
    ch_dialogue: float = 0.4

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Room:
    id: str
    name: str
    role: str  # "master" | "rural"


# -- voice activity -------------------------------------------------------------------------------


class VoiceActivity:
    """webrtcvad over one microphone, fed PCM blocks in timeline order; one decision per 30 ms frame.

    Blocks may leave gaps (the classroom was not connected) or overlap slightly (a resent
    packet); gaps are non-speech, overlaps are dropped. Samples are int16, or float in [-1, 1].
    """

    def __init__(self, rate: int, duration_s: float, mode: int = 3) -> None:
        if rate not in VAD_RATES:
            raise ValueError(f"webrtcvad needs 8, 16, 32 or 48 kHz audio, not {rate} Hz")
        self.rate = rate
        # the detector looks at speech bands below 4 kHz; 16 kHz costs a tenth of 48 kHz
        self.vad_rate = 16000 if rate in (32000, 48000) else rate
        self._decimate = rate // self.vad_rate
        self.frame = rate * FRAME_MS // 1000
        self.speech = np.zeros(max(0, math.ceil(duration_s * 1000 / FRAME_MS)), dtype=bool)
        self._vad = webrtcvad.Vad(mode)
        self._buf = np.zeros(0, np.int16)
        self._buf_start = 0  # sample index of _buf[0], always a frame boundary
        self._pending: list[np.ndarray] = []  # contiguous blocks not looked at yet (batched: ~1 s)
        self._pending_start = 0
        self._pending_len = 0

    def feed(self, start: int, samples: np.ndarray) -> None:
        """One block of samples whose first sample is at index `start` on the lesson timeline."""
        block = samples.reshape(-1)
        if self._pending and start != self._pending_start + self._pending_len:
            self.finish()
        if not self._pending:
            self._pending_start = start
        self._pending.append(block)
        self._pending_len += block.shape[0]
        if self._pending_len >= self.rate:
            self.finish()

    def finish(self) -> None:
        """Look at every block fed so far (call before reading `speech`)."""
        if not self._pending:
            return
        blocks, start = self._pending, self._pending_start
        self._pending, self._pending_len = [], 0
        self._ingest(start, np.concatenate(blocks) if len(blocks) > 1 else blocks[0])

    def _ingest(self, start: int, samples: np.ndarray) -> None:
        pcm = _int16(samples)
        end = self._buf_start + self._buf.shape[0]
        if start < end:  # overlap: keep what is new
            pcm = pcm[end - start:]
            start = end
        elif start > end:  # a gap: whatever partial frame we hold is dropped, restart on a frame boundary
            self._run(flush=True)
            aligned = -(-start // self.frame) * self.frame
            pcm = pcm[aligned - start:]
            self._buf = np.zeros(0, np.int16)
            self._buf_start = aligned
        if pcm.shape[0]:
            self._buf = np.concatenate([self._buf, pcm]) if self._buf.shape[0] else pcm
            self._run()

    def _run(self, flush: bool = False) -> None:
        n = self._buf.shape[0] // self.frame
        if n == 0:
            return
        first = self._buf_start // self.frame
        frames = self._buf[: n * self.frame].reshape(n, self.frame)
        if self._decimate > 1:  # average each run of samples: a simple low-pass before dropping the rate
            frames = frames.reshape(n, -1, self._decimate).mean(axis=2, dtype=np.float32).astype(np.int16)
        sound = np.any(frames, axis=1)  # all-zero frames: the track was absent, nothing to ask the detector
        for k in range(n):
            idx = first + k
            if 0 <= idx < self.speech.shape[0] and sound[k]:
                self.speech[idx] = self._vad.is_speech(frames[k].tobytes(), self.vad_rate)
        self._buf = self._buf[n * self.frame:]
        self._buf_start += n * self.frame

    def segments(self, options: AnalysisOptions) -> list[tuple[float, float]]:
        self.finish()
        return speech_segments(self.speech, options)


def _int16(samples: np.ndarray) -> np.ndarray:
    if samples.dtype == np.int16:
        return np.ascontiguousarray(samples.reshape(-1))
    x = np.clip(samples.reshape(-1).astype(np.float32), -1.0, 1.0)
    return (x * 32767.0).astype(np.int16)


def speech_segments(speech: np.ndarray, options: AnalysisOptions) -> list[tuple[float, float]]:
    """(start s, end s) of speech from per-frame decisions: short pauses bridged, short bursts dropped."""
    f = FRAME_MS / 1000
    runs: list[list[float]] = []
    padded = np.concatenate([[False], speech, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    for a, b in zip(edges[0::2], edges[1::2], strict=True):
        start, end = float(a) * f, float(b) * f
        if runs and start - runs[-1][1] < options.bridge_gap_s:
            runs[-1][1] = end
        else:
            runs.append([start, end])
    return [(round(a, 3), round(b, 3)) for a, b in runs if b - a >= options.min_speech_s]


def vad_pcm(pcm: np.ndarray, rate: int, duration_s: float | None = None, mode: int = 3) -> VoiceActivity:
    """Voice activity of one whole track (a convenience for PCM already in memory)."""
    duration = duration_s if duration_s is not None else pcm.shape[0] / rate
    vad = VoiceActivity(rate, duration, mode)
    vad.feed(0, pcm)
    return vad


# -- the analysis ---------------------------------------------------------------------------------


def lesson_type(rt: float, ch: float, options: AnalysisOptions | None = None) -> str:
    """Rt ≤ 0.3 practice; Rt ≥ 0.7 lecture; 0.3 < Rt < 0.7 and Ch ≥ 0.4 dialogue; otherwise mixed."""
    o = options or AnalysisOptions()
    if rt <= o.rt_low:
        return "practice"
    if rt >= o.rt_high:
        return "lecture"
    if ch >= o.ch_dialogue:
        return "dialogue"
    return "mixed"


def _covered(segments: Sequence[tuple[float, float]], a: float, b: float) -> float:
    return sum(max(0.0, min(e, b) - max(s, a)) for s, e in segments)


def st_analysis(master: Sequence[tuple[float, float]], duration_s: float,
                options: AnalysisOptions) -> dict[str, Any]:
    interval = options.st_interval_s
    n = int(duration_s // interval) if duration_s >= interval else (1 if duration_s > 0 else 0)
    half = options.st_window_s / 2
    samples: list[dict[str, Any]] = []
    for k in range(n):
        t = min((k + 0.5) * interval, duration_s)
        a, b = max(0.0, t - half), min(duration_s, t + half)
        spoken = _covered(master, a, b)
        samples.append({"t": round(t, 3), "code": "T" if b > a and spoken >= (b - a) / 2 else "S"})
    codes = "".join(str(s["code"]) for s in samples)
    n_t = codes.count("T")
    runs = sum(1 for i, c in enumerate(codes) if i == 0 or c != codes[i - 1])
    rt = n_t / n if n else 0.0
    ch = (runs - 1) / n if n else 0.0
    curve = [[0, 0]]
    for c in codes:
        s_count, t_count = curve[-1]
        curve.append([s_count + (c == "S"), t_count + (c == "T")])
    kind = lesson_type(rt, ch, options) if n else None
    return {
        "interval_s": interval,
        "window_s": options.st_window_s,
        "n": n,
        "n_t": n_t,
        "n_s": n - n_t,
        "runs": runs,
        "rt": round(rt, 4),
        "ch": round(ch, 4),
        "type": kind,
        "type_zh": LESSON_TYPES.get(kind or "", ""),
        "thresholds": {"rt_low": options.rt_low, "rt_high": options.rt_high, "ch_dialogue": options.ch_dialogue},
        "sequence": codes,
        "samples": samples,
        "curve": curve,  # cumulative (S, T) after each sample: the S-T diagram
    }


def speaker_turns(rooms: Sequence[Room], speech: dict[str, list[tuple[float, float]]],
                  options: AnalysisOptions) -> list[dict[str, Any]]:
    """The floor as the voices tell it: a classroom takes the turn when it speaks for `min_turn_s`.

    Shorter interjections (a "yes", a cough, echo) do not take the turn; the holder's own
    speech after a silence continues its turn.
    """
    items = sorted((a, b, room) for room, segs in speech.items() for a, b in segs if b - a >= options.min_turn_s)
    turns: list[dict[str, Any]] = []
    for a, b, room in items:
        if turns and turns[-1]["classroom"] == room:
            turns[-1]["end"] = max(turns[-1]["end"], b)
            continue
        if turns and b <= turns[-1]["end"]:
            continue  # inside the holder's turn: overlapping talk, not a new turn
        turns.append({"classroom": room, "start": a, "end": b})
    for t in turns:
        t["speaking_s"] = round(_covered(speech.get(t["classroom"], []), t["start"], t["end"]), 3)
    return turns


def hand_raises(events: Iterable[dict[str, Any]], duration_s: float) -> dict[str, Any]:
    """Hands raised, and whether (and how soon) the master gave that classroom the floor."""
    pending: dict[str, dict[str, Any]] = {}
    items: list[dict[str, Any]] = []
    for e in sorted(events, key=lambda e: float(e.get("t", 0))):
        name, t, room = e.get("event"), float(e.get("t", 0)), e.get("classroom")
        if not isinstance(room, str):
            continue
        if name == "hand_raised" and room not in pending:
            item: dict[str, Any] = {"classroom": room, "raised_t": round(t, 3), "answered_t": None,
                                    "wait_s": None, "outcome": "unanswered"}
            pending[room] = item
            items.append(item)
        elif name == "floor" and room in pending:
            item = pending.pop(room)
            item.update(answered_t=round(t, 3), wait_s=round(t - float(item["raised_t"]), 3), outcome="answered")
        elif name == "hand_lowered" and room in pending:
            item = pending.pop(room)
            item.update(lowered_t=round(t, 3), outcome="lowered")  # withdrawn, or dismissed by the master
    waits = [i["wait_s"] for i in items if i["wait_s"] is not None]
    return {
        "raised": len(items),
        "answered": sum(i["outcome"] == "answered" for i in items),
        "lowered": sum(i["outcome"] == "lowered" for i in items),
        "unanswered": sum(i["outcome"] == "unanswered" for i in items),
        "mean_wait_s": round(statistics.fmean(waits), 2) if waits else None,
        "median_wait_s": round(statistics.median(waits), 2) if waits else None,
        "max_wait_s": round(max(waits), 2) if waits else None,
        "items": items,
    }


def analyze(rooms: Sequence[Room], speech: dict[str, list[tuple[float, float]]], events: Sequence[dict[str, Any]],
            duration_s: float, options: AnalysisOptions | None = None) -> dict[str, Any]:
    """The whole analysis from speech segments per classroom and the lesson's events."""
    o = options or AnalysisOptions()
    masters = [r for r in rooms if r.role == "master"]
    master_id = masters[0].id if masters else ""
    names = {r.id: r.name for r in rooms}
    speaking = {r.id: sum(b - a for a, b in speech.get(r.id, [])) for r in rooms}
    total_speech = sum(speaking.values())
    rural_speech = sum(v for k, v in speaking.items() if k != master_id)
    turns = speaker_turns(rooms, speech, o)
    exchanges = 0
    per_exchange: dict[str, int] = {r.id: 0 for r in rooms}
    for prev, cur in itertools.pairwise(turns):
        pair = {prev["classroom"], cur["classroom"]}
        if master_id in pair and len(pair) == 2:
            exchanges += 1
            for room in pair - {master_id}:
                per_exchange[room] += 1
    n_turns = {r.id: sum(t["classroom"] == r.id for t in turns) for r in rooms}
    dur = max(duration_s, 1e-9)
    classrooms = []
    for r in rooms:
        classrooms.append({
            "id": r.id, "name": r.name, "role": r.role,
            "speaking_s": round(float(speaking[r.id]), 2),
            "percent_of_lesson": round(100 * speaking[r.id] / dur, 2),
            "percent_of_speech": round(100 * speaking[r.id] / total_speech, 2) if total_speech else 0.0,
            "turns": n_turns[r.id],
            "segments": [[a, b] for a, b in speech.get(r.id, [])],
        })
    rurals = []
    for r in rooms:
        if r.role != "rural":
            continue
        rurals.append({
            "id": r.id, "name": r.name, "speaking_s": round(speaking[r.id], 2),
            "share": round(speaking[r.id] / rural_speech, 4) if rural_speech else 0.0,
            "turns": n_turns[r.id], "exchanges": per_exchange[r.id],
        })
    hands = hand_raises(events, duration_s)
    for item in hands["items"]:
        item["name"] = names.get(item["classroom"], item["classroom"])
    markers = [e for e in events if e.get("event") in ("floor", "hand_raised", "hand_lowered", "courseware",
                                                       "classroom_joined", "classroom_left")]
    return {
        "version": VERSION,
        "duration_s": round(duration_s, 3),
        "master": master_id,
        "method": {
            "vad": f"webrtcvad mode {o.vad_mode}, {FRAME_MS} ms frames, on each classroom's own microphone",
            "options": o.to_json(),
            "st_rule": ("T when the master classroom is speaking at the sampling point (its voice active for at "
                        "least half of the window around it); otherwise S (rural speech, or silence with "
                        "activity)"),
        },
        "classrooms": classrooms,
        "st": st_analysis(speech.get(master_id, []), duration_s, o),
        "turns": {
            "count": len(turns),
            "exchanges": exchanges,
            "per_rural": rurals,
            "sequence": [{**t, "start": round(t["start"], 3), "end": round(t["end"], 3)} for t in turns],
        },
        "hands": hands,
        "floor_changes": [{"t": e.get("t"), "classroom": e.get("classroom")} for e in events
                          if e.get("event") == "floor"],
        "markers": markers,
    }


def reanalyze(result: dict[str, Any], options: AnalysisOptions) -> dict[str, Any]:
    """The analysis again from a previous result's speech segments (e.g. another S-T interval)."""
    rooms = [Room(str(c["id"]), str(c["name"]), str(c["role"])) for c in result["classrooms"]]
    speech = {str(c["id"]): [(float(a), float(b)) for a, b in c["segments"]] for c in result["classrooms"]}
    out = analyze(rooms, speech, list(result.get("markers", [])), float(result["duration_s"]), options)
    if "recording" in result:
        out["recording"] = result["recording"]
    return out


# -- the recorder's archive -------------------------------------------------------------------------


@dataclass
class ArchiveInput:
    rooms: list[Room]
    duration_s: float
    events: list[dict[str, Any]]
    mic_files: dict[str, list[str]] = field(default_factory=dict)
    offset: float = 0.0  # add to a track timestamp to get lesson time


def archive_input(directory: Path) -> ArchiveInput:
    """What the analysis needs from a recording directory (manifest if built, else the capture)."""
    from recorder.manifest import read_manifest
    from recorder.timeline import load_capture

    capture = load_capture(directory)
    manifest = read_manifest(directory)
    rooms = [Room(str(c["id"]), str(c.get("name") or c["id"]), str(c.get("role", "rural")))
             for c in capture.classrooms()]
    events = list(manifest["events"]) if manifest else [e.to_json() for e in capture.events]
    duration = float(manifest["duration_s"]) if manifest else capture.duration
    mics = {r.id: [str(t.path) for t in capture.tracks_of(r.id, "mic")] for r in rooms}
    return ArchiveInput(rooms, duration, events, mics, capture.offset)


def analyze_archive(directory: Path, options: AnalysisOptions | None = None) -> dict[str, Any]:
    """Decode each classroom's captured microphone, detect its speech, and analyse the lesson."""
    from recorder.audio import RATE, AudioSource, decoded_blocks

    o = options or AnalysisOptions()
    data = archive_input(directory)
    speech: dict[str, list[tuple[float, float]]] = {}
    for room in data.rooms:
        vad = VoiceActivity(RATE, data.duration_s, o.vad_mode)
        for start, samples in decoded_blocks(AudioSource(room.id, data.mic_files.get(room.id, []), data.offset)):
            vad.feed(start, samples)
        speech[room.id] = vad.segments(o)
    result = analyze(data.rooms, speech, data.events, data.duration_s, o)
    result["recording"] = directory.name
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recorder.analysis",
                                     description="classroom analysis of a recording directory (JSON)")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--out", type=Path, help="write the JSON here (default: standard output)")
    parser.add_argument("--interval", type=float, default=AnalysisOptions.st_interval_s, help="S-T sampling, s")
    args = parser.parse_args(argv)
    result = analyze_archive(args.directory, AnalysisOptions(st_interval_s=args.interval))
    text = json.dumps(result, ensure_ascii=False)
    if args.out:
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(args.out)
    else:
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
