"""Fuzz target: RTP and RTCP datagrams at the server's media port (the forwarding plane, sfu/media/).

A real publisher (aiortc in this process, joined as rural-3 of the demo lesson, sending a small test
pattern and a tone) brings ICE and DTLS-SRTP up. Then each input is either
- junk UDP from another socket to the server's port (read from the SDP answer's candidates): STUN
  lookalikes, DTLS lookalikes, SRTP-looking bytes, anything; or
- a crafted RTP or RTCP packet sent through the publisher's own DTLS-SRTP transport (the server
  decrypts it like any real packet): its real SSRCs or random ones, its payload types or others,
  hostile header extensions, VP8 payload descriptors, truncated or oversized RTCP reports.

aiortc's DTLS transport stops reading (the whole connection dies) when any handler below it raises,
so a crash anywhere in the server's receive path shows as the publisher's connection failing. The
property: the publisher stays connected, the server keeps counting its real packets, and the
lesson running meanwhile keeps its frame rate.
"""

from __future__ import annotations

import asyncio
import re
import socket
import struct
from dataclasses import dataclass
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rtp import RtpPacket
from fuzz_client import FuzzClient
from fuzz_rig import FuzzFailure, LoopThread
from harness import ServerProcess, mint_token
from hypothesis import strategies as st

from classroom_client.sources import TestPatternTrack, ToneTrack
from sfu.media.aiortc_adapter import use_host_addresses
from sfu.media.endpoint import rtc_configuration

HOST_CANDIDATE = re.compile(r"a=candidate:\S+ 1 udp \d+ (\S+) (\d+) typ host")
RTCP_TYPES = (192, 193, 200, 201, 202, 203, 204, 205, 206, 207, 0, 255)
# Crafted RTP goes out under SSRCs of its own: aiortc routes an unknown SSRC with a negotiated payload
# type to that type's receiver, so it reaches the server's forwarding as the publisher's stream would,
# while the publisher's real SSRCs keep their SRTP replay windows (reusing them would make libsrtp
# refuse the real sender's next packets on our side: a broken test tool, not a server fault).
FOREIGN_SSRCS = (0x0BADF00D, 0x00000001, 0xFFFFFFFF, 0x12345678)


@dataclass(frozen=True)
class Datagram:
    """One input: `how` is "udp" (from a stranger's socket) or "srtp" (through the publisher's transport)."""

    how: str
    data: bytes
    ssrc_slot: int = -1  # srtp RTP only: which of FOREIGN_SSRCS to send as (-1: the SSRC as generated)

    def __repr__(self) -> str:
        return f"Datagram({self.how!r}, {self.data[:48]!r}{'...' if len(self.data) > 48 else ''} " \
               f"[{len(self.data)} B], ssrc_slot={self.ssrc_slot})"


def rtp_packets() -> st.SearchStrategy[bytes]:
    def build(pt: int, seq: int, ts: int, marker: bool, ext: list[tuple[int, bytes]], payload: bytes,
              padding: int) -> bytes:
        packet = RtpPacket(payload_type=pt, sequence_number=seq, timestamp=ts, ssrc=0, marker=marker,
                           payload=payload)
        raw = bytearray(packet.serialize())
        if ext:  # one-byte header extensions, ids and lengths as generated (even invalid ones)
            body = b"".join(bytes([(i << 4) | ((len(v) - 1) & 0x0F)]) + v for i, v in ext if v)
            body += b"\x00" * (-len(body) % 4)
            raw[0] |= 0x10
            raw[12:12] = b"\xbe\xde" + struct.pack("!H", len(body) // 4) + body
        if padding:
            raw[0] |= 0x20
            raw += b"\x00" * (padding - 1) + bytes([padding & 0xFF])
        return bytes(raw)

    vp8_payload = st.builds(lambda d, rest: d + rest, st.sampled_from([b"\x90\x80\x00", b"\x90\xe0\x80\x01\xff\xff",
                                                                        b"\x10", b"\x80", b"\xff\xff\xff\xff", b""]),
                            st.binary(max_size=64))
    return st.builds(build, st.sampled_from([96, 97, 98, 99, 100, 101, 102, 111, 0, 8, 127, 35]) | st.integers(0, 127),
                     st.integers(0, 65535), st.integers(0, 2**32 - 1), st.booleans(),
                     st.lists(st.tuples(st.integers(0, 15), st.binary(min_size=0, max_size=17)), max_size=3),
                     vp8_payload | st.binary(max_size=1200), st.sampled_from([0, 0, 0, 1, 4, 255]))


def rtcp_packets() -> st.SearchStrategy[bytes]:
    def build(fmt: int, pt: int, words: int, body: bytes, more: bytes) -> bytes:
        return bytes([0x80 | (fmt & 0x1F), pt]) + struct.pack("!H", words & 0xFFFF) + body + more

    return st.builds(build, st.integers(0, 31), st.sampled_from(RTCP_TYPES), st.integers(0, 70000),
                     st.binary(max_size=80), st.sampled_from([b"", b"REMB", b"\x01\x00\x00\x00"]))


def junk() -> st.SearchStrategy[bytes]:
    stun = st.builds(lambda t, body: struct.pack("!HH", t, len(body)) + b"\x21\x12\xa4\x42" + bytes(12) + body,
                     st.sampled_from([0x0001, 0x0101, 0x0111, 0x0003]) | st.integers(0, 0x3FFF), st.binary(max_size=64))
    dtls = st.builds(lambda ct, body: bytes([ct, 0xFE, 0xFD]) + bytes(8) + struct.pack("!H", len(body)) + body,
                     st.sampled_from([20, 21, 22, 23]), st.binary(max_size=100))
    return stun | dtls | st.binary(max_size=1500) | st.builds(lambda b: b"\x80" + b, st.binary(max_size=200))


def datagrams() -> st.SearchStrategy[Datagram]:
    return st.one_of(
        st.builds(Datagram, st.just("udp"), junk()),
        st.builds(Datagram, st.just("srtp"), rtp_packets(), st.sampled_from([0, 1, 2, 3, -1])),
        st.builds(Datagram, st.just("srtp"), rtcp_packets()),
    )


class MediaTarget:
    """A connected publisher, its DTLS transport and the server's media address."""

    def __init__(self, server: ServerProcess, loop: LoopThread) -> None:
        self.server = server
        self.loop = loop
        self.admin = mint_token(server, role="admin")
        self.client = FuzzClient(server.url, mint_token(server, role="rural", classroom="rural-3"))
        self.pc: RTCPeerConnection | None = None
        self.dtls: Any = None
        self.ssrcs: list[int] = []
        self.address: tuple[str, int] = ("127.0.0.1", 0)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sent = 0
        self.next_seq: dict[int, int] = {}
        loop.run(self._connect(), timeout=60)

    async def _connect(self) -> None:
        use_host_addresses(["127.0.0.1"])
        pc = RTCPeerConnection(rtc_configuration([]))
        self.pc = pc
        video = pc.addTransceiver(TestPatternTrack(160, 120, 15, "fuzz", 9), direction="sendonly")
        audio = pc.addTransceiver(ToneTrack(550), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        sources = {video.mid or "0": "camera", audio.mid or "1": "mic"}
        outcome = await self.client.send("publish", {"sdp": pc.localDescription.sdp, "sources": sources})
        if not outcome.ok:
            raise FuzzFailure(f"the media fuzzer's publish was refused: {outcome.reply}")
        answer = str(outcome.reply["sdp"])
        found = HOST_CANDIDATE.search(answer)
        if found is None:
            raise FuzzFailure(f"no host candidate in the server's answer:\n{answer}")
        self.address = (found.group(1), int(found.group(2)))
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        for _ in range(200):
            if pc.connectionState == "connected":
                break
            await asyncio.sleep(0.1)
        else:
            raise FuzzFailure(f"the media fuzzer's publisher never connected ({pc.connectionState})")
        self.dtls = video.sender.transport
        self.ssrcs = [video.sender._ssrc, audio.sender._ssrc]

    async def _send(self, datagram: Datagram) -> None:
        if datagram.how == "udp":
            self.udp.sendto(datagram.data, self.address)
            return
        data = bytearray(datagram.data)
        if len(data) >= 12 and not 192 <= data[1] <= 223:  # RTP, not RTCP
            ssrc = FOREIGN_SSRCS[datagram.ssrc_slot % len(FOREIGN_SSRCS)] if datagram.ssrc_slot >= 0 else \
                struct.unpack("!I", data[8:12])[0]
            if ssrc in self.ssrcs:
                ssrc ^= 0x5A5A5A5A
            # a sequence number that only moves forward per SSRC (plus the generated jump), as libsrtp wants
            seq = (self.next_seq.get(ssrc, 0) + struct.unpack("!H", data[2:4])[0] % 64) & 0xFFFF
            self.next_seq[ssrc] = seq + 1
            data[2:4] = struct.pack("!H", seq)
            data[8:12] = struct.pack("!I", ssrc)
        try:
            await self.dtls._send_rtp(bytes(data))
        except Exception:
            return

    def check(self, datagram: Datagram) -> None:
        self.loop.run(self._send(datagram), timeout=30)
        self.sent += 1
        if self.pc is None or self.pc.connectionState != "connected":
            raise FuzzFailure(f"the publisher's connection went {self.pc and self.pc.connectionState} after "
                              f"{datagram!r}")

    def packets_in(self) -> int:
        status, stats = self.server.api("/api/stats", token=self.admin)
        tracks = stats.get("lessons", {}).get("demo", {}).get("tracks", {}) if status == 200 else {}
        return int(tracks.get("rural-3/camera", {}).get("packets_in", 0))

    def still_forwarding(self, timeout: float = 10) -> None:
        """The publisher's real stream still arrives at the server (its packet count grows)."""
        before = self.packets_in()

        async def pause() -> None:
            await asyncio.sleep(0.5)

        for _ in range(int(timeout / 0.5)):
            self.loop.run(pause())
            if self.packets_in() > before + 5:
                return
        raise FuzzFailure(f"the server stopped counting the publisher's packets ({before} -> {self.packets_in()})")

    def close(self) -> None:
        async def close() -> None:
            await self.client.close()
            if self.pc is not None:
                await self.pc.close()

        self.loop.run(close())
        self.udp.close()
