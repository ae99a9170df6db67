"""When a published track asks its classroom for a keyframe for its low-frame (patrol) slots: at most
once per PATROL_KEYFRAME_INTERVAL_S for all of them, never when a keyframe came on its own within
that time, except for a new viewer that has had no picture yet."""

from __future__ import annotations

from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from sfu.media.forwarder import PATROL_KEYFRAME_INTERVAL_S, PublishedTrack


class Camera:
    """A classroom's camera as the track sees it upstream: it counts the keyframe requests."""

    def __init__(self) -> None:
        self.codecs: dict[int, RTCRtpCodecParameters] = {}
        self.media_ssrc: int | None = 1234
        self.requests = 0

    def request_keyframe(self) -> None:
        self.requests += 1


def test_patrol_keyframes_are_asked_for_gently() -> None:
    camera = Camera()
    track = PublishedTrack("video", "rural-1/camera", camera)
    t = 1000.0
    track.request_patrol_keyframe(t, new_viewer=True)  # the first tile: a picture at once
    assert (track.stats.patrol_keyframe_requests, camera.requests) == (1, 1)
    for dt in (0.1, 1.0, PATROL_KEYFRAME_INTERVAL_S - 0.1):  # more tiles and frames: the same request serves all
        track.request_patrol_keyframe(t + dt)
        track.request_patrol_keyframe(t + dt, new_viewer=True)
    assert track.stats.patrol_keyframe_requests == 1
    # a keyframe came on its own (another subscriber's request, a loss repair): no request for it
    track.last_keyframe_at = t + PATROL_KEYFRAME_INTERVAL_S - 0.5
    track.request_patrol_keyframe(t + PATROL_KEYFRAME_INTERVAL_S + 0.1)
    assert track.stats.patrol_keyframe_requests == 1
    # ... but a new tile that has seen none yet gets one (once per interval still)
    track.request_patrol_keyframe(t + PATROL_KEYFRAME_INTERVAL_S + 0.2, new_viewer=True)
    assert track.stats.patrol_keyframe_requests == 2
    # nothing came on its own for an interval: the patrol asks again
    later = t + 3 * PATROL_KEYFRAME_INTERVAL_S
    track.request_patrol_keyframe(later)
    assert track.stats.patrol_keyframe_requests == 3
    assert track.stats.keyframe_requests_sent >= 1  # each went through the track's own rate limit


def test_audio_and_closed_tracks_ask_for_nothing() -> None:
    camera = Camera()
    mic = PublishedTrack("audio", "rural-1/mic", camera)
    mic.request_patrol_keyframe(1000.0, new_viewer=True)
    closed = PublishedTrack("video", "rural-2/camera", camera)
    closed.close()
    closed.request_patrol_keyframe(1000.0, new_viewer=True)
    assert camera.requests == 0
    assert mic.stats.patrol_keyframe_requests == closed.stats.patrol_keyframe_requests == 0
