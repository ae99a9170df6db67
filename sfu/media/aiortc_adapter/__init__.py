"""Every use of aiortc/aioice internals, in one package (aiortc is pinned to 1.16.0 for this).

Forwarding on aiortc needs hooks it does not offer publicly:
- a receive tap: see each RTP packet (RTX unwrapped) before aiortc's own handling, which still
  runs so NACKs, REMB and receiver reports keep flowing, but with no decoder thread at all;
- a send port: write already-encoded packets through an `RTCRtpSender` with its SSRC, MID and
  header-extension ids, kept in its history (so NACKs are answered) and counted (so sender
  reports stay valid), and learn when the subscriber asks for a keyframe;
- keyframe requests upstream (PLI) and the host addresses ICE gathers;
- the ICE candidate pair a connection uses (aiortc's stats have none);
- a datagram hook on a connection's ICE transports, both ways (the classroom terminal's
  user-space link impairment, `classroom_client/link.py`, runs through it: no `tc netem` here).

Parts: `core` (process-wide fixes: RTX routing, decoder counting, ICE addresses, the forward path),
`receive`, `send`, `wire` (the slim send path: header templates, SRTP straight to the ICE pair's
socket), `datagrams`, `terminal` (the classroom terminal's hooks). Import from the package.

`tests/sfu/test_aiortc_adapter.py` and `tests/sfu/test_forward_path.py` check each hook against the
installed aiortc, so an upgrade that moves any of them fails loudly there instead of silently in a
lesson.
"""

from __future__ import annotations

import aiortc

AIORTC_VERSION = "1.16.0"  # every private name used below was read from this release

# Checked before any of aiortc is patched below: another release may have moved what we use.
if aiortc.__version__ != AIORTC_VERSION:
    raise ImportError(
        f"sfu.media.aiortc_adapter relies on aiortc {AIORTC_VERSION} internals, but aiortc {aiortc.__version__} "
        f"is installed: install aiortc=={AIORTC_VERSION} (pyproject.toml pins it), or port this module and "
        "run tests/sfu/test_aiortc_adapter.py against the new release"
    )

# Only now, with the release checked, may the parts patch aiortc.
from sfu.media.aiortc_adapter.core import (  # noqa: E402
    FORWARD_PATHS,
    RTP_HISTORY_SIZE,
    EncodedFrameHandler,
    PacketHandler,
    RembPolicy,
    RtcpObserver,
    _original_get_host_addresses,
    close_peer_connection,
    decoders_created,
    make_decoder,
    use_forward_path,
    use_host_addresses,
)
from sfu.media.aiortc_adapter.datagrams import selected_candidate_pair, wrap_ice_datagrams  # noqa: E402
from sfu.media.aiortc_adapter.receive import (  # noqa: E402
    ReceiverTap,
    capture_encoded_frames,
    packets_received,
    receiver_codecs,
    restart_video_reassembly,
)
from sfu.media.aiortc_adapter.send import SenderPort  # noqa: E402
from sfu.media.aiortc_adapter.terminal import (  # noqa: E402
    enable_opus_inband_fec,
    install_jitter_buffer,
    send_nack,
    send_pli,
    use_decoder,
    use_encoder,
)

__all__ = [
    "AIORTC_VERSION", "FORWARD_PATHS", "RTP_HISTORY_SIZE", "EncodedFrameHandler", "PacketHandler", "ReceiverTap",
    "RembPolicy", "RtcpObserver", "SenderPort", "_original_get_host_addresses", "capture_encoded_frames",
    "close_peer_connection", "decoders_created",
    "enable_opus_inband_fec", "install_jitter_buffer", "make_decoder", "packets_received", "receiver_codecs",
    "restart_video_reassembly", "selected_candidate_pair", "send_nack", "send_pli", "use_decoder", "use_encoder",
    "use_forward_path", "use_host_addresses", "wrap_ice_datagrams",
]
