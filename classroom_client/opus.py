"""libopus through ctypes: the decoder the terminal needs for loss concealment (PLC and in-band FEC).

PyAV's `libopus` decoder cannot be told "this packet was lost": libopus can. We load the libopus
PyAV's wheel bundles (`av.libs/libopus-*.so`, 1.5: the very library PyAV encodes with), else a
system `libopus.so.0` (Debian's `libopus0`, 1.3: no `opus_packet_has_lbrr`, so `packet_has_lbrr`
is unavailable there; decoding, PLC and FEC work the same).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fractions
import glob
import os
from typing import Any

import av
import numpy as np

SAMPLE_RATE = 48000
CHANNELS = 2
MAX_FRAME = 5760  # 120 ms at 48 kHz, the longest Opus frame
TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
CONCEALED = "concealed"  # the `opaque` of an AudioFrame produced by concealment, not from a packet

_lib: Any = None


def _load() -> Any:
    global _lib
    if _lib is not None:
        return _lib
    candidates = sorted(glob.glob(os.path.join(os.path.dirname(av.__file__), os.pardir, "av.libs", "libopus-*.so*")))
    candidates += [ctypes.util.find_library("opus") or "", "libopus.so.0"]
    for name in candidates:
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.opus_decoder_create.restype = ctypes.c_void_p
        lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
        lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
        lib.opus_decode.restype = ctypes.c_int
        lib.opus_decode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32,
                                    ctypes.POINTER(ctypes.c_int16), ctypes.c_int, ctypes.c_int]
        if hasattr(lib, "opus_packet_has_lbrr"):  # libopus >= 1.5
            lib.opus_packet_has_lbrr.restype = ctypes.c_int
            lib.opus_packet_has_lbrr.argtypes = [ctypes.c_char_p, ctypes.c_int32]
        lib.opus_packet_get_nb_samples.restype = ctypes.c_int
        lib.opus_packet_get_nb_samples.argtypes = [ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32]
        _lib = lib
        return lib
    raise OSError("libopus not found: install Debian's libopus0 (make system-deps)")


def packet_has_lbrr(packet: bytes) -> bool:
    """Whether an Opus packet carries in-band FEC (LBRR) data for the packet before it.

    Raises NotImplementedError with a libopus older than 1.5."""
    lib = _load()
    if not hasattr(lib, "opus_packet_has_lbrr"):
        raise NotImplementedError("opus_packet_has_lbrr needs libopus >= 1.5")
    return bool(lib.opus_packet_has_lbrr(packet, len(packet)) > 0)


def packet_samples(packet: bytes) -> int:
    """Samples per channel (48 kHz) an Opus packet decodes to; 0 when it cannot tell."""
    n = int(_load().opus_packet_get_nb_samples(packet, len(packet), SAMPLE_RATE))
    return max(n, 0)


def _may_have_lbrr(packet: bytes) -> bool:
    try:
        return packet_has_lbrr(packet)
    except NotImplementedError:  # an old libopus cannot tell: try FEC anyway
        return True


class OpusDecoder:
    """An aiortc-style decoder (`decode(jitter_frame) -> [AudioFrame]`, stereo s16 at 48 kHz).

    A frame with `concealed = True` stands for a lost packet: it is recovered from the next
    packet's in-band FEC when the frame carries it (`fec_data`), else by libopus's packet loss
    concealment. Its output frames have `opaque == CONCEALED`.
    """

    def __init__(self) -> None:
        lib = _load()
        err = ctypes.c_int(0)
        self._dec = lib.opus_decoder_create(SAMPLE_RATE, CHANNELS, ctypes.byref(err))
        if not self._dec or err.value != 0:
            raise OSError(f"opus_decoder_create failed ({err.value})")
        self._pcm = (ctypes.c_int16 * (MAX_FRAME * CHANNELS))()
        self.concealed = 0
        self.recovered_by_fec = 0

    def __del__(self) -> None:
        dec, self._dec = getattr(self, "_dec", None), None
        if dec and _lib is not None:
            _lib.opus_decoder_destroy(dec)

    def _run(self, data: bytes | None, frame_size: int, fec: bool) -> int:
        n = int(_load().opus_decode(self._dec, data, len(data) if data else 0, self._pcm, frame_size, int(fec)))
        return n

    def decode(self, encoded_frame: Any) -> list[av.AudioFrame]:
        if getattr(encoded_frame, "concealed", False):
            size = int(getattr(encoded_frame, "samples", 960)) or 960
            fec_data: bytes | None = getattr(encoded_frame, "fec_data", None)
            n = self._run(fec_data, size, True) if fec_data and _may_have_lbrr(fec_data) else -1
            if n > 0:  # (without LBRR in it libopus would conceal all the same: not counted then)
                self.recovered_by_fec += 1
            else:
                n = self._run(None, size, False)
            self.concealed += 1
            return self._frames(n, encoded_frame.timestamp, CONCEALED)
        data = bytes(encoded_frame.data)
        if not data:
            return []
        return self._frames(self._run(data, MAX_FRAME, False), encoded_frame.timestamp, None)

    def _frames(self, n: int, pts: int, opaque: str | None) -> list[av.AudioFrame]:
        if n <= 0:
            return []
        samples = np.ctypeslib.as_array(self._pcm)[: n * CHANNELS].copy()
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = pts
        frame.time_base = TIME_BASE
        frame.opaque = opaque
        return [frame]
