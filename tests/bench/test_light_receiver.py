"""bench/light_receiver.py's receive paths on a real server: the `wire` one (RTP counted from the clear
headers, SRTP unprotected only up to a keyframe) counts what aiortc's own path counts, sees the keyframe
and still sends the receiver reports the server reads loss and round trip from."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from harness import ROOT, mint_token, start_server

sys.path.insert(0, str(ROOT))

from bench.light_receiver import LightClient, PublishSpec, packets_missed
from classroom_client.encoders import install_publisher_encoders
from sfu.media.aiortc_adapter import use_host_addresses
from sfu.tokens import TokenIssuer


async def until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


def observer_token(data_dir: Path, name: str) -> str:
    issuer = TokenIssuer((data_dir / "token-secret").read_text().strip())
    return issuer.mint(lesson="demo", classroom="observer", name=name, role="observer", ttl_s=600, sub=name)


async def test_the_wire_path_counts_what_aiortc_counts_and_reports_back(tmp_path: Path) -> None:
    install_publisher_encoders()
    use_host_addresses(["127.0.0.1"])
    with start_server(tmp_path / "var", "--no-tiers") as server:
        master = LightClient(server.url, mint_token(server, role="master", classroom="master"),
                             PublishSpec(width=320, height=240, fps=15))
        wire = LightClient(server.url, observer_token(server.data_dir, "wire"), receive_path="wire")
        classic = LightClient(server.url, observer_token(server.data_dir, "aiortc"), receive_path="aiortc")
        clients = [master, wire, classic]
        try:
            for client in clients:
                await client.start()
            viewers = [wire, classic]
            await until(lambda: all(v.counts.keyframe_seen for v in viewers), 20, "a keyframe at both viewers")
            await until(lambda: wire.link is not None and wire.link.get("rtt_ms") is not None, 15,
                        "the server's round trip to the wire viewer (from its receiver reports)")
            before = [(v.counts.packets, v.counts.bytes) for v in viewers]
            await asyncio.sleep(4)
            (wire_packets, wire_bytes), (classic_packets, classic_bytes) = [
                (v.counts.packets - p, v.counts.bytes - b) for v, (p, b) in zip(viewers, before, strict=True)]
            assert classic_packets > 40, f"aiortc's path counted only {classic_packets} packets in 4 s"
            assert abs(wire_packets - classic_packets) <= 0.15 * classic_packets, (wire_packets, classic_packets)
            assert abs(wire_bytes - classic_bytes) <= 0.15 * classic_bytes, (wire_bytes, classic_bytes)
            assert len(wire.counts.video) == 1 and wire.counts.keyframed == wire.counts.video
            assert packets_missed(wire) == 0 and packets_missed(classic) == 0
            assert wire.link is not None and wire.link["loss"] == 0, wire.link
        finally:
            for client in clients:
                await client.close()


def test_wire_statistics_match_aiortc_and_drop_what_srtp_replay_protection_drops() -> None:
    from aiortc.rtcrtpreceiver import StreamStatistics
    from aiortc.rtp import RtpPacket

    from bench.rtp_counting import WireStats

    # wraps at 65535, one reordered pair, two repeats, one packet (4) never comes
    seqs = [65530, 65531, 65533, 65532, 65534, 65534, 65535, 0, 1, 1, 3, 2, 65533, 5]
    wire = WireStats(90000)
    counted = [wire.count(s, s * 3000) for s in seqs]
    reference = StreamStatistics(90000)
    for s in dict.fromkeys(seqs):  # aiortc's path: SRTP lets each packet through once
        reference.add(RtpPacket(sequence_number=s, timestamp=s * 3000))
    assert counted.count(False) == 3
    assert (wire.max_seq, wire.cycles, wire.packets_received, wire.packets_lost) == \
        (reference.max_seq, reference.cycles, reference.packets_received, reference.packets_lost) == (5, 65536, 11, 1)
