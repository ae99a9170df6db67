"""Codec facts the forwarding plane needs: codec identity across peers and keyframe detection.

Payload types differ per peer, so a codec is identified by its name, clock rate and (for H264)
packetization mode and profile. Keyframe detection reads only RTP payload headers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class CodecLike(Protocol):
    """aiortc's RTCRtpCodecParameters, as far as the forwarding plane reads it."""

    @property
    def mimeType(self) -> str: ...
    @property
    def clockRate(self) -> int: ...
    @property
    def payloadType(self) -> int | None: ...
    @property
    def parameters(self) -> Any: ...


@dataclass(frozen=True)
class CodecKey:
    """What must match for a subscriber to decode a publisher's packets unchanged."""

    name: str  # "VP8", "H264", "OPUS", "PCMU", ...
    clock_rate: int
    packetization_mode: str = ""
    profile: str = ""  # H264 profile_idc + constraint flags (first 4 hex digits), lower case

    @classmethod
    def of(cls, codec: CodecLike) -> CodecKey:
        name = codec.mimeType.split("/", 1)[-1].upper()
        params = dict(codec.parameters or {})
        if name == "H264":
            plid = str(params.get("profile-level-id", "42e01f")).lower()
            return cls(name, codec.clockRate, str(params.get("packetization-mode", "0")), plid[:4])
        return cls(name, codec.clockRate)

    def compatible(self, other: CodecKey) -> bool:
        if self.name != other.name or self.clock_rate != other.clock_rate:
            return False
        if self.name == "H264":
            # Constrained baseline (42e0) and baseline (4200) streams from WebRTC encoders decode
            # the same; packetization mode must match.
            return self.packetization_mode == other.packetization_mode and self.profile[:2] == other.profile[:2]
        return True


def is_rtx(codec: CodecLike) -> bool:
    return codec.mimeType.lower().endswith("/rtx")


def payload_type_map(publisher: Sequence[CodecLike], subscriber: Sequence[CodecLike]) -> dict[int, int]:
    """Map each publisher media payload type to the subscriber's payload type for the same codec.

    An exact match (H264 profile included) wins over a merely compatible one; codecs the
    subscriber did not negotiate are left out (their packets cannot be forwarded to it).
    """
    out: dict[int, int] = {}
    subs = [(CodecKey.of(c), c.payloadType) for c in subscriber if not is_rtx(c) and c.payloadType is not None]
    for codec in publisher:
        if is_rtx(codec) or codec.payloadType is None:
            continue
        key = CodecKey.of(codec)
        exact = [pt for k, pt in subs if k == key]
        loose = [pt for k, pt in subs if k.compatible(key)]
        chosen = exact or loose
        if chosen and chosen[0] is not None:
            out[codec.payloadType] = chosen[0]
    return out


def vp8_is_keyframe_start(payload: bytes) -> bool:
    """True for the first packet of a VP8 keyframe (RFC 7741 payload descriptor + header)."""
    if len(payload) < 1:
        return False
    b0 = payload[0]
    start = bool(b0 & 0x10)
    partition = b0 & 0x07
    if not start or partition != 0:
        return False
    i = 1
    if b0 & 0x80:  # X: extension byte present
        if len(payload) <= i:
            return False
        ext = payload[i]
        i += 1
        if ext & 0x80:  # I: picture id
            if len(payload) <= i:
                return False
            i += 2 if payload[i] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            i += 1
        if ext & 0x30:  # T or K: TID/Y/KEYIDX
            i += 1
    if len(payload) <= i:
        return False
    return (payload[i] & 0x01) == 0  # P bit 0 = keyframe


def h264_is_keyframe_start(payload: bytes) -> bool:
    """True when the packet starts an IDR picture or carries SPS (RFC 6184)."""
    if len(payload) < 1:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type in (5, 7):
        return True
    if nal_type == 24:  # STAP-A: 1 byte header, then (16-bit size, NAL unit)*
        i = 1
        while i + 2 < len(payload):
            size = (payload[i] << 8) | payload[i + 1]
            if size == 0 or i + 2 >= len(payload):
                break
            if payload[i + 2] & 0x1F in (5, 7):
                return True
            i += 2 + size
        return False
    if nal_type == 28 and len(payload) >= 2:  # FU-A: start bit + type of the fragmented NAL
        return bool(payload[1] & 0x80) and (payload[1] & 0x1F) in (5, 7)
    return False


def is_keyframe_start(codec_name: str, payload: bytes) -> bool:
    if codec_name == "VP8":
        return vp8_is_keyframe_start(payload)
    if codec_name == "H264":
        return h264_is_keyframe_start(payload)
    return True  # audio and unknown codecs need no keyframe


def frame_is_keyframe(codec_name: str, data: bytes) -> bool:
    """True for a depayloaded frame that decodes on its own (VP8 keyframe, H264 with an IDR)."""
    if codec_name == "VP8":
        return len(data) > 0 and (data[0] & 0x01) == 0
    if codec_name == "H264":  # annex B: look at each NAL unit's type after a start code
        i = data.find(b"\x00\x00\x01")
        while i >= 0 and i + 3 < len(data):
            if data[i + 3] & 0x1F == 5:
                return True
            i = data.find(b"\x00\x00\x01", i + 3)
        return False
    return True
