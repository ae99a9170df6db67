"""A classroom's uplink: one send-only peer connection carrying its camera and microphone."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

from classroom_client.link import Link

TONES_HZ = (440.0, 660.0, 880.0, 1100.0, 550.0, 770.0, 990.0, 1210.0, 1320.0)  # one per classroom of a lesson

Call = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


def prefer_codec(transceiver: Any, video_codec: str) -> None:
    """Offer only `video_codec` (vp8 | h264) and its RTX on a video transceiver."""
    caps = RTCRtpSender.getCapabilities("video").codecs
    want = "VIDEO/" + video_codec.upper()
    preferred: list[RTCRtpCodecCapability] = [c for c in caps if c.mimeType.upper() == want]
    if not preferred:
        raise ValueError(f"video codec {video_codec!r} not supported")
    rtx = [c for c in caps if c.mimeType.lower() == "video/rtx"]
    transceiver.setCodecPreferences(preferred + rtx)


async def publish(call: Call, config: RTCConfiguration, video: MediaStreamTrack | None,
                  audio: MediaStreamTrack | None, *, video_codec: str, link: Link | None,
                  keep: Callable[[RTCPeerConnection], None]) -> None:
    """Offer our tracks to the server (`publish`) and apply its answer.

    `keep` receives the peer connection as soon as it exists, so the caller owns (and closes) it
    even when the negotiation fails half-way.
    """
    pc = RTCPeerConnection(config)
    keep(pc)
    transceivers = []
    if video is not None:
        t = pc.addTransceiver(video, direction="sendonly")
        prefer_codec(t, video_codec)
        transceivers.append((t, "camera"))
    if audio is not None:
        transceivers.append((pc.addTransceiver(audio, direction="sendonly"), "mic"))
    await pc.setLocalDescription(await pc.createOffer())
    if link is not None:
        link.attach(pc)
    sources = {t.mid: source for t, source in transceivers if t.mid is not None}
    reply = await call("publish", {"sdp": pc.localDescription.sdp, "sources": sources})
    await pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="answer"))
