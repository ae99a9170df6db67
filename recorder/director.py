"""Auto-directing (自动导播): which picture is large, which is inset, at every moment of the archive.

Rules, in priority order (the archive is built after the lesson, so the director knows what
comes next and cuts on the moment something starts, not a reaction time later):

1. courseware, while the master shares it: large, with the floor holder (or the master) inset;
2. a rural classroom that has the floor: large, with the master inset;
3. a rural classroom that speaks while the master is quiet: large, with the master inset;
4. otherwise the master classroom, alone.

A picture that is not there (a classroom not connected, a camera off) is never chosen. Speech
only counts when it lasts at least a second, and no shot is shorter than `min_shot_s`: a change
that comes sooner waits, a blip in between is dropped.

Speech is "louder than this microphone's own background": the level (dBFS per 100 ms) must
stand 10 dB above the track's running 10th percentile, so a hum or a steady tone never counts.
(A real voice-activity model is a later issue; this is the simple version it will replace.)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from recorder.audio import LEVEL_HZ
from recorder.timeline import Capture

STEP_S = 1.0 / LEVEL_HZ
MIN_SHOT_S = 2.0
MIN_SPEECH_S = 1.0
SPEECH_ABOVE_FLOOR_DB = 10.0
SPEECH_MIN_DB = -50.0
FLOOR_WINDOW_S = 30.0


@dataclass(frozen=True)
class Layout:
    large: str | None  # "<classroom>:camera" | "<master>:courseware" | None (nothing to show)
    inset: str | None
    reason: str  # courseware | floor | speaking | teacher | fallback | waiting


@dataclass
class Shot:
    start: float
    end: float
    layout: Layout

    def to_json(self) -> dict[str, Any]:
        return {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "large": self.layout.large,
            "inset": self.layout.inset,
            "reason": self.layout.reason,
        }


def voice_activity(level_db: np.ndarray) -> np.ndarray:
    """Booleans per 100 ms: speech-like loudness above the track's own background (NaN: no audio)."""
    n = level_db.shape[0]
    if n == 0:
        return np.zeros(0, bool)
    half = int(FLOOR_WINDOW_S * LEVEL_HZ / 2)
    if np.isnan(level_db).all():
        return np.zeros(n, bool)
    padded = np.pad(level_db, (half, half), constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)[::5]  # every 0.5 s
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows: no floor, no speech
        floor = np.repeat(np.nanpercentile(windows, 10, axis=1), 5)[:n]
    with np.errstate(invalid="ignore"):
        loud = (level_db > floor + SPEECH_ABOVE_FLOOR_DB) & (level_db > SPEECH_MIN_DB)
    # smooth over half a second: mostly loud counts, a single spike does not
    kernel = np.ones(5) / 5
    return np.convolve(loud.astype(np.float32), kernel, mode="same") >= 0.5


def _intervals_to_mask(intervals: list[tuple[float, float]], n: int) -> np.ndarray:
    mask = np.zeros(n, bool)
    for a, b in intervals:
        i0, i1 = max(0, math.floor(a * LEVEL_HZ)), min(n, math.ceil(b * LEVEL_HZ) + 1)
        mask[i0:i1] = True
    return mask


def _connected(capture: Capture, classroom: str, n: int) -> np.ndarray:
    """Steps at which the classroom was in the lesson (from the join/leave events)."""
    from recorder.timeline import initial_state

    here = any(c.get("classroom") == classroom for c in initial_state(capture.directory).get("classrooms", []))
    intervals: list[tuple[float, float]] = []
    since = 0.0 if here else None
    for e in sorted(capture.events, key=lambda e: e.t):
        if e.data.get("classroom") != classroom:
            continue
        if e.name == "classroom_joined" and since is None:
            since = e.t
        elif e.name == "classroom_left" and since is not None:
            intervals.append((since, e.t))
            since = None
    if since is not None:
        intervals.append((since, capture.duration))
    return _intervals_to_mask(intervals, n)


def _presence(capture: Capture, classroom: str, source: str, n: int) -> np.ndarray:
    """Steps at which the picture can be shown: while it flows, and through freezes of a
    classroom that stays connected (the renderer holds its last frame, then its name card)."""
    tracks = capture.tracks_of(classroom, source)
    spans: list[tuple[float, float]] = []
    for track in tracks:
        spans.extend(track.spans)
    flowing = _intervals_to_mask(spans, n)
    if not tracks or source != "camera":
        return flowing
    first, last = min(t.start for t in tracks), max(t.end for t in tracks)
    steps = np.arange(n) * STEP_S
    return flowing | (_connected(capture, classroom, n) & (steps >= first) & (steps <= last))


def _state_over_time(capture: Capture, n: int) -> tuple[list[str | None], np.ndarray]:
    """The floor holder and the courseware flag at each step, from the events."""
    from recorder.timeline import initial_state

    state = initial_state(capture.directory)
    floor: str | None = state.get("floor")
    courseware = bool(state.get("courseware"))
    floor_at: list[str | None] = [None] * n
    courseware_at = np.zeros(n, bool)
    changes = sorted((e for e in capture.events if e.name in ("floor", "courseware")), key=lambda e: e.t)
    i = 0
    for step in range(n):
        t = step * STEP_S
        while i < len(changes) and changes[i].t <= t + 1e-6:
            e = changes[i]
            if e.name == "floor":
                floor = e.data.get("classroom")
            else:
                courseware = bool(e.data.get("on"))
            i += 1
        floor_at[step] = floor
        courseware_at[step] = courseware
    return floor_at, courseware_at


def direct(capture: Capture, levels: dict[str, np.ndarray], *, min_shot_s: float = MIN_SHOT_S) -> list[Shot]:
    """The shot list for a capture, given each classroom's microphone levels (dBFS, 10 Hz)."""
    duration = capture.duration
    n = max(1, math.ceil(duration * LEVEL_HZ))
    master = capture.lesson["master"]["id"]
    rurals = [c["id"] for c in capture.lesson.get("rurals", [])]
    camera = {c: _presence(capture, c, "camera", n) for c in [master, *rurals]}
    slides = _presence(capture, master, "courseware", n)
    floor_at, courseware_at = _state_over_time(capture, n)
    loud: dict[str, np.ndarray] = {}
    speaking: dict[str, np.ndarray] = {}
    for c in [master, *rurals]:
        db = levels.get(c, np.zeros(0, np.float32))[:n]
        db = np.pad(db, (0, n - db.shape[0]), constant_values=np.nan)
        speaking[c] = voice_activity(db)
        loud[c] = np.nan_to_num(db, nan=-120.0)
    quiet_master = ~speaking[master]

    desired: list[Layout] = []
    current_speaker: str | None = None
    for i in range(n):
        master_cam = f"{master}:camera" if camera[master][i] else None
        holder = floor_at[i]
        holder_cam = f"{holder}:camera" if holder and holder in camera and camera[holder][i] else None
        talkers = [r for r in rurals if camera[r][i] and speaking[r][i] and quiet_master[i]]
        if current_speaker not in talkers:
            current_speaker = max(talkers, key=lambda r: float(loud[r][i])) if talkers else None
        if courseware_at[i] and slides[i]:
            layout = Layout(f"{master}:courseware", holder_cam or master_cam, "courseware")
        elif holder_cam:
            layout = Layout(holder_cam, master_cam, "floor")
        elif current_speaker is not None:
            layout = Layout(f"{current_speaker}:camera", master_cam, "speaking")
        elif master_cam:
            layout = Layout(master_cam, None, "teacher")
        else:
            present = [r for r in rurals if camera[r][i]]
            layout = Layout(f"{present[0]}:camera", None, "fallback") if present else Layout(None, None, "waiting")
        desired.append(layout)
    return _smooth(desired, duration, min_shot_s)


def _runs(desired: list[Layout]) -> list[list[Any]]:
    runs: list[list[Any]] = []
    for i, layout in enumerate(desired):
        if runs and runs[-1][2] == layout:
            runs[-1][1] = i + 1
        else:
            runs.append([i, i + 1, layout])
    return runs


def _smooth(desired: list[Layout], duration: float, min_shot_s: float) -> list[Shot]:
    min_speech = round(MIN_SPEECH_S * LEVEL_HZ)
    # speech shorter than a second is not a reason to cut: keep what was on before
    runs = _runs(desired)
    for k, run in enumerate(runs):
        if run[2].reason == "speaking" and run[1] - run[0] < min_speech:
            fill = runs[k - 1][2] if k > 0 else (runs[k + 1][2] if k + 1 < len(runs) else run[2])
            for i in range(run[0], run[1]):
                desired[i] = fill
    runs = _runs(desired)
    min_steps = round(min_shot_s * LEVEL_HZ)
    # the moments before the first picture arrives belong to the first real shot
    while len(runs) > 1 and runs[0][1] - runs[0][0] < min_steps and runs[0][2].large is None:
        runs[1][0] = 0
        runs.pop(0)
    shots: list[list[Any]] = []  # [start step, end step, layout]
    for start, end, layout in runs:
        if not shots:
            shots.append([start, end, layout])
            continue
        prev = shots[-1]
        if prev[2] == layout:
            prev[1] = end
        elif prev[1] - prev[0] < min_steps:
            # the shot on screen is too young: this change waits until it has lasted long enough
            cut = prev[0] + min_steps
            if end - cut >= min_steps:
                prev[1] = cut
                shots.append([cut, end, layout])
            else:
                prev[1] = end
        elif end - start < min_steps:
            prev[1] = end  # a blip: not worth a cut
        else:
            shots.append([start, end, layout])
    # a short first shot (nothing had arrived yet) folds into the next; a short last one into the previous
    if len(shots) > 1 and shots[0][1] - shots[0][0] < min_steps:
        shots[1][0] = 0
        shots.pop(0)
    if len(shots) > 1 and shots[-1][1] - shots[-1][0] < min_steps:
        shots[-2][1] = shots[-1][1]
        shots.pop()
    out = [Shot(s * STEP_S, e * STEP_S, layout) for s, e, layout in shots]
    if out:
        out[0].start = 0.0
        out[-1].end = duration
    return out


def shot_at(shots: list[Shot], t: float) -> Shot:
    for shot in shots:
        if t < shot.end:
            return shot
    return shots[-1]
