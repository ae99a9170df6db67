"""What the recorder needs to know about an encoded frame without decoding it.

Keyframe flags and picture sizes go into the Matroska headers; both come from the first bytes of
a VP8 frame or from an H.264 access unit's SPS. G.711 is expanded to 16-bit PCM (bit-exact),
because Matroska has no G.711 codec id.
"""

from __future__ import annotations

import numpy as np


def vp8_is_keyframe(data: bytes) -> bool:
    return len(data) >= 3 and not data[0] & 0x01


def vp8_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a VP8 keyframe header (RFC 6386 9.1), None for inter frames."""
    if len(data) < 10 or not vp8_is_keyframe(data) or data[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(data[6:8], "little") & 0x3FFF
    height = int.from_bytes(data[8:10], "little") & 0x3FFF
    return (width, height) if width and height else None


def h264_nal_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex-B access unit (start codes removed)."""
    units: list[bytes] = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        start = i + 3
        j = data.find(b"\x00\x00\x01", start)
        end = len(data) if j < 0 else j
        unit = data[start:end]
        if j >= 0 and unit.endswith(b"\x00"):
            unit = unit[:-1]  # the leading zero of a 4-byte start code
        if unit:
            units.append(unit)
        i = j
    return units


def h264_is_keyframe(data: bytes) -> bool:
    return any(unit[0] & 0x1F in (5, 7) for unit in h264_nal_units(data))


class _Bits:
    def __init__(self, rbsp: bytes) -> None:
        self.data = rbsp
        self.pos = 0

    def bit(self) -> int:
        byte = self.data[self.pos >> 3] if (self.pos >> 3) < len(self.data) else 0
        self.pos += 1
        return (byte >> (7 - ((self.pos - 1) & 7))) & 1

    def bits(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0 and zeros < 32:
            zeros += 1
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def _unescape(nal: bytes) -> bytes:
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def h264_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the SPS in an H.264 access unit (ITU-T H.264 7.3.2.1.1)."""
    sps = next((u for u in h264_nal_units(data) if u[0] & 0x1F == 7), None)
    if sps is None or len(sps) < 4:
        return None
    b = _Bits(_unescape(sps[1:]))
    profile = b.bits(8)
    b.bits(16)  # constraint flags, level
    b.ue()  # seq_parameter_set_id
    chroma_format = 1
    if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        chroma_format = b.ue()
        if chroma_format == 3:
            b.bit()
        b.ue()
        b.ue()
        b.bit()
        if b.bit():  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format != 3 else 12):
                if b.bit():
                    last, following = 8, 8
                    for _ in range(16 if i < 6 else 64):
                        if following:
                            following = (last + b.se() + 256) % 256
                        last = following or last
    b.ue()  # log2_max_frame_num_minus4
    poc_type = b.ue()
    if poc_type == 0:
        b.ue()
    elif poc_type == 1:
        b.bit()
        b.se()
        b.se()
        for _ in range(b.ue()):
            b.se()
    b.ue()  # max_num_ref_frames
    b.bit()
    width_mbs = b.ue() + 1
    height_units = b.ue() + 1
    frame_mbs_only = b.bit()
    if not frame_mbs_only:
        b.bit()
    b.bit()  # direct_8x8_inference_flag
    crop = (0, 0, 0, 0)
    if b.bit():
        crop = (b.ue(), b.ue(), b.ue(), b.ue())
    sub_w = 2 if chroma_format in (1, 2) else 1
    sub_h = 2 if chroma_format == 1 else 1
    mult = 2 - frame_mbs_only
    width = width_mbs * 16 - sub_w * (crop[0] + crop[1])
    height = height_units * 16 * mult - sub_h * mult * (crop[2] + crop[3])
    return (width, height) if width > 0 and height > 0 else None


def _ulaw_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    return np.where(a & 0x80, magnitude, -magnitude).astype(np.int16)


_G711 = {"PCMU": _ulaw_table(), "PCMA": _alaw_table()}


def g711_to_pcm16(codec_name: str, data: bytes) -> bytes:
    """Expand a G.711 payload (PCMU or PCMA) to little-endian 16-bit PCM."""
    table = _G711[codec_name.upper()]
    return table[np.frombuffer(data, np.uint8)].astype("<i2").tobytes()
