"""The slim send path: a forwarded packet's bytes from a per-sender header template, SRTP, the UDP socket.

aiortc sends a packet as a new `RtpPacket` serialised with its extensions, then through five
coroutines (`RTCDtlsTransport._send_rtp`, aioice's `Connection.send`/`sendto`,
`StunProtocol.send_data`) to `transport.sendto`. For a forwarded packet only the marker, payload
type, sequence number, timestamp and abs-send-time (and an audio packet's level) differ from the
sender's previous one: `HeaderTemplate` has aiortc serialise the header once and patches those
bytes; `send_now` protects and writes the datagram at once, doing what those coroutines do for a
host or server-reflexive candidate pair (counters included) and declining where they do more (a
TURN relay, the terminal's datagram hook), so the caller can take aiortc's path instead.
"""

from __future__ import annotations

import time
from struct import pack_into
from typing import Any

from aioice.ice import StunProtocol
from aiortc import RTCDtlsTransport
from aiortc.rtcdtlstransport import State
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900 (NTP) to 1970 (Unix)

AudioLevel = tuple[bool, int] | None


def ntp_now() -> int:
    """aiortc's `clock.current_ntp_time()` (64-bit NTP time), from `time.time()` without a datetime."""
    now = time.time()
    seconds = int(now)
    return ((seconds + NTP_EPOCH_OFFSET) << 32) | int((now - seconds) * 4294967296.0)


class HeaderTemplate:
    """One sender's RTP header (its SSRC, MID and extension ids), serialised by aiortc once per audio level."""

    def __init__(self, extensions_map: HeaderExtensionsMap, mid: str | None, ssrc: int) -> None:
        self._map = extensions_map
        self._mid = mid
        self._ssrc = ssrc
        self._made: dict[AudioLevel, tuple[bytes, int]] = {}  # audio level -> (header, abs-send-time offset)

    def _make(self, audio_level: AudioLevel) -> tuple[bytes, int]:
        def header(abs_send_time: int) -> bytes:
            packet = RtpPacket(payload_type=0, sequence_number=0, timestamp=0, ssrc=self._ssrc)
            packet.extensions.mid = self._mid
            packet.extensions.abs_send_time = abs_send_time
            packet.extensions.audio_level = audio_level
            return packet.serialize(self._map)

        zero, ones = header(0), header(0xFFFFFF)
        changed = [i for i in range(len(zero)) if zero[i] != ones[i]]
        offset = changed[0] if changed else -1  # -1: the subscriber did not negotiate abs-send-time
        if changed and changed != list(range(offset, offset + 3)):
            raise AssertionError(f"abs-send-time is not 3 contiguous header bytes: {changed}")
        made = self._made[audio_level] = (zero, offset)
        return made

    def packet(self, marker: int, payload_type: int, sequence_number: int, timestamp: int, abs_send_time: int,
               audio_level: AudioLevel, payload: bytes) -> bytes:
        """The packet's bytes, as `RtpPacket(...).serialize(extensions_map)` would make them."""
        made = self._made.get(audio_level)
        header, offset = made if made is not None else self._make(audio_level)
        out = bytearray(header)
        out[1] = (0x80 if marker else 0) | payload_type
        pack_into("!HL", out, 2, sequence_number, timestamp)
        if offset >= 0:
            out[offset] = (abs_send_time >> 16) & 0xFF
            out[offset + 1] = (abs_send_time >> 8) & 0xFF
            out[offset + 2] = abs_send_time & 0xFF
        out += payload
        return bytes(out)


def send_now(dtls: RTCDtlsTransport, data: bytes) -> bool:
    """SRTP-protect `data` and write it to the nominated ICE pair's socket now.

    False (nothing sent) where aiortc's own path must send it; ConnectionError when not connected.
    """
    d: Any = dtls
    if d._state is not State.CONNECTED:
        raise ConnectionError("Cannot send encrypted RTP, not connected")
    ice = d.transport
    if getattr(ice, "_twinclass_datagrams", None) is not None:  # the terminal's datagram hook
        return False
    pair = ice._connection._nominated.get(1)
    if pair is None:
        raise ConnectionError("Cannot send data, not connected")
    protocol = pair.protocol
    if type(protocol) is not StunProtocol or protocol.transport is None:  # e.g. a TURN relay
        return False
    protected = d._tx_srtp.protect(data)
    protocol.transport.sendto(protected, pair.remote_addr)
    d._RTCDtlsTransport__tx_bytes += len(protected)
    d._RTCDtlsTransport__tx_packets += 1
    return True
