"""Junk UDP at the server's media port and crafted RTP/RTCP through a real publisher's DTLS-SRTP
transport: the publisher stays connected, its real stream is still counted, the lesson plays on."""

from __future__ import annotations

from fuzz_media import Datagram, MediaTarget, datagrams
from fuzz_suite import SEED, Rig, fuzz_settings
from hypothesis import example, given, seed


def test_rtp_and_rtcp_junk_leaves_forwarding_running(rig: Rig) -> None:
    target = MediaTarget(rig.server, rig.loop)
    started, baseline = rig.begin()

    @seed(SEED)
    @fuzz_settings(300)
    @given(datagrams())
    @example(Datagram("srtp", bytes([0x80, 96]) + bytes(10), ssrc_slot=0))  # an empty VP8 payload
    @example(Datagram("srtp", bytes([0x81, 205, 0, 2]) + bytes(8)))  # a NACK with no FCI
    @example(Datagram("udp", b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(12)))  # a bare STUN request
    # found by this fuzzer: an empty datagram from anyone ended the connection (aiortc read data[0])
    @example(Datagram("udp", b""))
    # found by this fuzzer: a two-byte header extension of 0 bytes with the audio-level id (2) made
    # RtpPacket.parse raise struct.error, which aiortc does not catch: the connection ended
    @example(Datagram("srtp", bytes([0x90, 111]) + bytes(10) + b"\x10\x00\x00\x01\x02\x00\x00\x00" + b"opus",
                      ssrc_slot=0))
    def fuzz(datagram: Datagram) -> None:
        target.check(datagram)

    try:
        fuzz()
        target.still_forwarding()
    finally:
        target.close()
    print(f"datagrams sent: {target.sent}")
    rig.finish(started, baseline)
