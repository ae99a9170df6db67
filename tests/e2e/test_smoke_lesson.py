"""Quick end-to-end: one master and one rural classroom see and hear each other."""

from __future__ import annotations

from harness import ClassroomLauncher, ServerProcess, wait_until


def test_master_and_rural_see_and_hear_each_other(server: ServerProcess, classrooms: ClassroomLauncher) -> None:
    master = classrooms.start("master", "master", "--duration", "8")
    rural = classrooms.start("rural-1", "rural", "--duration", "8")
    wait_until(lambda: master.remote("rural-1").get("frames_verified", 0) > 60
               and rural.remote("master").get("frames_verified", 0) > 60, 15, message="frames both ways")
    m, r = master.remote("rural-1"), rural.remote("master")
    assert m["audio_packets"] > 50 and r["audio_packets"] > 50
    assert m["audio_peak_hz"] == 660.0 and r["audio_peak_hz"] == 440.0
