"""The live HLS stream of a running broadcast lesson: the server, a master terminal sending its test
pattern, and HTTP requests as a player (or a CDN in front of the server) makes them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from harness import ClassroomLauncher, ServerProcess, mint_token, start_server, wait_until
from hls_checks import Playlist, decode_segment, get, parse_playlist, peak_hz

from classroom_client.pattern import source_tag
from recorder.live_hls import SEGMENT_S, WINDOW

LESSON = {"id": "live1", "kind": "broadcast", "title": "名师课堂 · 直播", "subject": "数学", "grade": "5",
          "master": {"id": "m1", "name": "名师工作室"}, "rurals": [{"id": "r1", "name": "山口教学点"}]}


def _stats(server: ServerProcess) -> dict[str, Any]:
    [path] = (server.data_dir / "live" / "live1").glob("*/stats.json")
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def _playlist(server: ServerProcess, token: str) -> Playlist | None:
    answer = get(f"{server.url}/live/live1/index.m3u8", token)
    return parse_playlist(answer.body.decode()) if answer.status == 200 else None


def test_a_broadcast_lessons_live_stream(server: ServerProcess, classrooms: ClassroomLauncher) -> None:
    admin = mint_token(server, role="admin")
    assert server.api("/api/lessons", method="POST", body=LESSON, token=admin)[0] == 201
    viewer = mint_token(server, role="observer", classroom="observer", lesson="live1")
    playlist_url = f"{server.url}/live/live1/index.m3u8"

    # who may get the playlist: nobody without a token, not another lesson's token; not live yet: 404
    assert get(playlist_url).status == 401
    assert get(playlist_url, mint_token(server, role="rural", classroom="rural-1")).status == 403
    assert get(playlist_url, viewer).status == 404
    assert get(f"{server.url}/live/nosuch/index.m3u8", viewer).status in (403, 404)

    classrooms.start("m1", "master", "--fps", "15", lesson="live1", token=mint_token(
        server, role="master", classroom="m1", lesson="live1"))
    wait_until(lambda: (p := _playlist(server, viewer)) is not None and len(p.segments) >= 3, 120,
               message="the playlist lists three segments")
    answer = get(playlist_url, viewer)
    assert answer.headers["Cache-Control"] == "private, max-age=1"
    assert answer.headers["Content-Type"].startswith("application/vnd.apple.mpegurl")
    playlist = parse_playlist(answer.body.decode())
    assert all(SEGMENT_S * 0.75 <= d <= SEGMENT_S * 1.3 for d, _uri in playlist.segments[:-1]), playlist
    assert get(playlist_url, mint_token(server, role="observer", classroom="o", lesson="*")).status == 200

    # the segments: fMP4 that decodes to the master's pattern and its 440 Hz tone, cacheable by anyone
    base = f"{server.url}/live/live1/"
    init = get(base + playlist.init)
    newest = get(base + playlist.segments[-1][1])  # no token: the signed prefix is the permission
    fetched_ms = int(time.time() * 1000)
    assert init.status == newest.status == 200
    assert newest.headers["Cache-Control"] == "public, max-age=60, immutable"
    assert newest.headers["Content-Type"] == "video/iso.segment"
    decoded = decode_segment(init.body, newest.body)
    assert decoded.codecs == {"video": "h264", "audio": "aac"}
    assert decoded.pictures >= 20 and len(decoded.patterns) >= 0.9 * decoded.pictures, decoded.pictures
    assert {p.tag for p in decoded.patterns} == {source_tag("m1")}
    assert abs(peak_hz(decoded.samples[-48000:]) - 440.0) < 5
    # how old the newest picture is when a player can first fetch it (the stream's latency floor)
    age_ms = (fetched_ms - decoded.patterns[-1].sent_ms) & 0xFFFFFFFF
    prefix, name = playlist.segments[-1][1].split("/")
    forged = f"{prefix.split('-')[0]}-{'0' * 32}/{name}"
    assert get(base + forged).status == 403
    assert get(base + f"{prefix}/../../../token-secret").status in (403, 404)

    # segments expire: the oldest leaves the window, then the disk (404)
    first = playlist.segments[0][1]
    wait_until(lambda: (p := _playlist(server, viewer)) is not None and p.sequence > playlist.sequence + WINDOW,
               90, message="the window moved on by a whole window")
    assert get(base + first).status == 404
    stats = _stats(server)
    print(f"live HLS: newest picture {age_ms} ms old when its segment could be fetched; worker "
          f"{100 * stats['cpu_s'] / stats['wall_s']:.1f} % of a core (320x240, 15 fps): {stats}")
    assert stats["errors"] == 0 and stats["dropped"] == 0


def test_serve_hls_all_streams_a_twinning_lesson_too(tmp_path: Path) -> None:
    """By default only broadcast lessons get a stream (test_lesson_core: a twinning lesson decodes
    nothing); `serve --hls all` gives every lesson one."""
    with start_server(tmp_path / "var", "--hls", "all") as server, ClassroomLauncher(server, tmp_path) as launcher:
        viewer = mint_token(server, role="observer", classroom="observer")  # the demo lesson: twinning
        launcher.start("master", "master", "--fps", "10")
        wait_until(lambda: get(f"{server.url}/live/demo/index.m3u8", viewer).status == 200, 120,
                   message="the twinning lesson's playlist")
        playlist = parse_playlist(get(f"{server.url}/live/demo/index.m3u8", viewer).body.decode())
        init = get(f"{server.url}/live/demo/{playlist.init}").body
        decoded = decode_segment(init, get(f"{server.url}/live/demo/{playlist.segments[0][1]}").body)
        assert {p.tag for p in decoded.patterns} == {source_tag("master")}


def test_a_masters_h264_is_passed_through_in_a_lesson_not_recorded(
        server: ServerProcess, classrooms: ClassroomLauncher) -> None:
    """A master publishing H.264: the stream carries its pictures as they came (no decode, no encode),
    in segments of about SEGMENT_S (the server asks the master for a keyframe that often). The lesson
    is not recorded: the stream has a session of its own, which writes nothing to disk."""
    admin = mint_token(server, role="admin")
    assert server.api("/api/lessons", method="POST", body={**LESSON, "record": False}, token=admin)[0] == 201
    viewer = mint_token(server, role="observer", classroom="observer", lesson="live1")
    classrooms.start("m1", "master", "--fps", "15", "--codec", "h264", lesson="live1", token=mint_token(
        server, role="master", classroom="m1", lesson="live1"))
    wait_until(lambda: (p := _playlist(server, viewer)) is not None and len(p.segments) >= 4, 120,
               message="the playlist lists four segments")
    playlist = _playlist(server, viewer)
    assert playlist is not None
    assert all(SEGMENT_S * 0.5 <= d <= SEGMENT_S * 1.6 for d, _uri in playlist.segments[1:-1]), playlist
    base = f"{server.url}/live/live1/"
    decoded = decode_segment(get(base + playlist.init).body, get(base + playlist.segments[-1][1]).body)
    assert decoded.codecs == {"video": "h264", "audio": "aac"}
    assert {p.tag for p in decoded.patterns} == {source_tag("m1")} and decoded.pictures >= 10
    stats = _stats(server)
    assert stats["passthrough"] is True and stats["errors"] == 0, stats
    assert server.api("/api/recordings?lesson=live1", token=admin)[1]["recordings"] == []
    assert not list((server.data_dir / "recordings").glob("live1*"))
    classrooms.stop_all()  # the master leaves: the lesson is no longer live, its stream and files go
    wait_until(lambda: get(f"{server.url}/live/live1/index.m3u8", viewer).status == 404, 60,
               message="the playlist gone once the master left")
    wait_until(lambda: not list((server.data_dir / "live").glob("live1/*/*")), 30, message="the files gone")
    print(f"live HLS, H.264 passed through: {100 * stats['cpu_s'] / stats['wall_s']:.1f} % of a core; {playlist}")
