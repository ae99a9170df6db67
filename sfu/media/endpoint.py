"""Peer connections on the server side: a classroom's publishing and subscribing endpoints.

A classroom holds two connections: one it publishes on (it offers, we answer; every incoming
track becomes a `PublishedTrack`) and one it receives on (we offer fixed slots, it answers).
Fixed slots mean the server never has to renegotiate when classrooms come and go.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpCodecCapability,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.sdp import SessionDescription, candidate_from_sdp

from sfu.addresses import aiortc_usable_ice_servers
from sfu.media.aiortc_adapter import (
    ReceiverTap,
    SenderPort,
    close_peer_connection,
    enable_opus_inband_fec,
    selected_candidate_pair,
)
from sfu.media.bandwidth import DownlinkEstimate, LinkReport
from sfu.media.forwarder import PublishedTrack, Slot

logger = logging.getLogger(__name__)
enable_opus_inband_fec()  # offers and answers carry Opus useinbandfec=1 (classrooms encode with FEC)


class SdpError(ValueError):
    """An SDP or ICE candidate the peer connection refused; the message says why."""


# m-sections in one description: a classroom publishes 3 (camera, mic, courseware); an observer of
# a lesson with 8 rural classrooms receives 19, the recorder as many. Far above that is an attack.
MAX_MEDIA_SECTIONS = 64


def rtc_configuration(ice_servers: Sequence[str]) -> RTCConfiguration:
    """Peer connection settings for every connection we make (server and classroom terminal).

    - aiortc adds a public STUN server unless the list is given explicitly (even empty).
    - max-bundle: with aiortc's default ("balanced"), an answerer with two m-lines of the same
      kind leaves the second on a transport it then discards, so that track never flows.
    - STUN/TURN URLs with an IPv6 literal are for browsers only: aiortc cannot parse them (the
      connection would not even be created) and aioice could not use them (sfu.addresses).
    """
    return RTCConfiguration(
        iceServers=[RTCIceServer(urls=u) for u in aiortc_usable_ice_servers(ice_servers)],
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
    )


async def add_remote_candidate(pc: RTCPeerConnection, candidate: dict[str, Any]) -> None:
    """Accept a trickled ICE candidate ({candidate, sdpMid, sdpMLineIndex}); empty = end of candidates."""
    text = candidate.get("candidate")
    if not isinstance(text, str):
        raise SdpError("candidate: must be a string")
    if not text:
        return
    try:
        cand = candidate_from_sdp(text.removeprefix("candidate:"))
    except (ValueError, IndexError, AssertionError) as exc:  # aiortc asserts there are 8 fields
        raise SdpError(f"candidate: cannot parse {text[:200]!r}") from exc
    mid, index = candidate.get("sdpMid"), candidate.get("sdpMLineIndex")
    if mid is not None and (not isinstance(mid, str) or len(mid) > 32):
        raise SdpError("candidate: sdpMid must be a short string")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int)
                              or not 0 <= index < MAX_MEDIA_SECTIONS):
        raise SdpError(f"candidate: sdpMLineIndex must be an m-line number (0-{MAX_MEDIA_SECTIONS - 1})")
    cand.sdpMid = mid
    cand.sdpMLineIndex = 0 if mid is None and index is None else index
    await pc.addIceCandidate(cand)


def check_description(sdp: str, what: str) -> None:
    """Refuse what aiortc would accept silently: no media, or media without ICE/DTLS parameters."""
    if not sdp.startswith("v=0"):
        raise SdpError(f"{what}: not an SDP description")
    try:
        parsed = SessionDescription.parse(sdp)
    except Exception as exc:
        raise SdpError(f"{what}: cannot parse SDP ({exc or type(exc).__name__})") from exc
    if not parsed.media:
        raise SdpError(f"{what}: describes no media")
    if len(parsed.media) > MAX_MEDIA_SECTIONS:
        raise SdpError(f"{what}: {len(parsed.media)} m-sections (at most {MAX_MEDIA_SECTIONS})")
    mids = [m.rtp.muxId for m in parsed.media if m.rtp.muxId]
    if len(mids) != len(set(mids)):  # aiortc takes it, then fails to answer (RFC 8843: mids are unique)
        raise SdpError(f"{what}: the same a=mid on two m-sections")
    for group in parsed.group:  # aiortc bundles onto the first mid's transport: a missing one leaves none
        unknown = [str(item) for item in group.items if str(item) not in mids]
        if group.semantic == "BUNDLE" and unknown:
            raise SdpError(f"{what}: a=group:BUNDLE names mid {unknown[0][:64]!r}, which no m-section has")
    for media in parsed.media:
        if media.kind in ("audio", "video") and (media.ice is None or not media.ice.usernameFragment
                                                 or media.dtls is None or not media.dtls.fingerprints):
            raise SdpError(f"{what}: m={media.kind} lacks ICE credentials or a DTLS fingerprint")


_ICE_UFRAG = re.compile(r"^a=ice-ufrag:(\S+)", re.MULTILINE)


def ice_ufrag(sdp: str | None) -> str | None:
    """The ICE username fragment a description gives (the first; bundled sections share it).

    Every new peer connection picks a new one, so it tells a connection from its successor: a
    publisher's renegotiation keeps it, a republish after a lost connection does not.
    """
    found = _ICE_UFRAG.search(sdp or "")
    return found.group(1) if found else None


DEFAULT_VIDEO_CODECS = ("VP8", "H264")


def video_codec_preferences(order: Sequence[str]) -> list[RTCRtpCodecCapability]:
    """Every video codec we can forward, the preferred first (then RTX).

    A slot may carry any classroom's video, so every codec stays offered and the forwarder maps
    each publisher's payload type to the subscriber's; the order tells a subscriber that accepts
    only one codec which to take.
    """
    caps = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType.lower() != "video/rtx"]
    rank = {name.upper(): i for i, name in enumerate(order)}
    caps.sort(key=lambda c: rank.get(c.mimeType.split("/")[1].upper(), len(rank)))
    rtx = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType.lower() == "video/rtx"]
    return caps + rtx


LOST_STATES = ("failed", "closed")  # a connection in one of these carries nothing any more


class _Endpoint:
    """`on_state` hears the connection's states until we close it ourselves: a "closed" it hears
    came from the other side or from aiortc (a DTLS close, ICE consent expired), never from us."""

    def __init__(self, ice_servers: Sequence[str], on_state: Callable[[str], None]) -> None:
        self.pc = RTCPeerConnection(rtc_configuration(ice_servers))
        self._on_state = on_state
        self.closed = False

        @self.pc.on("connectionstatechange")
        def _state_changed() -> None:
            if not self.closed:
                on_state(self.pc.connectionState)

    @property
    def remote_ufrag(self) -> str | None:
        """The peer's ICE username fragment (None before its description came)."""
        remote = self.pc.remoteDescription
        return ice_ufrag(remote.sdp) if remote is not None else None

    async def add_ice_candidate(self, candidate: dict[str, Any]) -> None:
        await add_remote_candidate(self.pc, candidate)

    def candidate_pair(self) -> dict[str, Any] | None:
        """The ICE pair in use ({"local": {address, port, type}, "remote": {...}}), None before one is chosen."""
        return None if self.closed else selected_candidate_pair(self.pc)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        await close_peer_connection(self.pc)


class PublisherEndpoint(_Endpoint):
    """Receives a classroom's tracks. Each new m-line becomes a PublishedTrack, keyed by mid."""

    def __init__(
        self,
        ice_servers: Sequence[str],
        label: str,
        on_track: Callable[[str, PublishedTrack], None],
        on_state: Callable[[str], None],
    ) -> None:
        super().__init__(ice_servers, on_state)
        self.label = label
        self.tracks: dict[str, PublishedTrack] = {}
        self._on_track = on_track
        self._lock = asyncio.Lock()

    async def accept_offer(self, sdp: str, sources: dict[str, str]) -> str:
        """Apply the classroom's offer (initial or renegotiated) and return our answer SDP.

        `sources` names what each mid carries ("camera", "mic", "courseware").
        """
        check_description(sdp, "offer")
        async with self._lock:
            try:
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            except Exception as exc:  # aiortc raises ValueError, KeyError, OperationError ...
                raise SdpError(f"offer rejected: {exc or type(exc).__name__}") from exc
            for transceiver in self.pc.getTransceivers():
                self._adopt(transceiver, sources)
            try:
                await self.pc.setLocalDescription(await self.pc.createAnswer())
            except Exception as exc:  # an offer aiortc took but cannot answer: refuse it like one it did not take
                logger.warning("could not answer an offer aiortc accepted (%s: %s)", type(exc).__name__, exc)
                raise SdpError(f"offer cannot be answered: {exc or type(exc).__name__}") from exc
            return str(self.pc.localDescription.sdp)

    def _adopt(self, transceiver: RTCRtpTransceiver, sources: dict[str, str]) -> None:
        mid = transceiver.mid
        if mid is None or mid in self.tracks:
            return
        kind = transceiver.kind
        default = "camera" if kind == "video" else "mic"
        source = sources.get(mid, default)
        track = PublishedTrack(kind, f"{self.label}/{source}")
        track.bind(ReceiverTap(transceiver.receiver, track.on_packet))
        self.tracks[mid] = track
        self._on_track(source, track)

    async def close(self) -> None:
        for track in self.tracks.values():
            track.close()
        await super().close()


class RelayEndpoint(_Endpoint):
    """Receives another node's offer of slots (an edge node's relay link to a lesson's origin,
    `sfu.cascade`): each labelled m-line becomes a PublishedTrack, keyed by mid, fed like a
    classroom's (its PLIs and NACKs go back to the other node)."""

    def __init__(self, ice_servers: Sequence[str], on_state: Callable[[str], None]) -> None:
        super().__init__(ice_servers, on_state)
        self.tracks: dict[str, PublishedTrack] = {}

    async def answer(self, sdp: str, labels: dict[str, str]) -> str:
        """Apply the offer; `labels` names the track each mid carries (others are left unused)."""
        check_description(sdp, "offer")
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except Exception as exc:
            raise SdpError(f"offer rejected: {exc or type(exc).__name__}") from exc
        for transceiver in self.pc.getTransceivers():
            label = labels.get(transceiver.mid or "")
            if label is not None and transceiver.mid not in self.tracks:
                track = PublishedTrack(transceiver.kind, label)
                track.bind(ReceiverTap(transceiver.receiver, track.on_packet))
                self.tracks[str(transceiver.mid)] = track
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)

    async def close(self) -> None:
        for track in self.tracks.values():
            track.close()
        await super().close()


LinkListener = Callable[[dict[str, Any], bool], None]  # (link state, did the tier change)


class SubscriberEndpoint(_Endpoint):
    """Sends to a classroom over fixed slots that the server feeds from published tracks.

    Its `link` estimate (the classroom's receiver reports and REMBs against what we send) picks
    the tier of every video slot: a weak downlink gets the server-made lower tier of each stream.
    """

    def __init__(self, ice_servers: Sequence[str], on_state: Callable[[str], None],
                 video_codecs: Sequence[str] = DEFAULT_VIDEO_CODECS, on_link: LinkListener | None = None,
                 adaptive: bool = True) -> None:
        super().__init__(ice_servers, on_state)
        self.slots: dict[str, Slot] = {}  # slot key -> slot (key chosen by the room)
        self._video_preferences = video_codec_preferences(video_codecs)
        self._lock = asyncio.Lock()
        self.link = DownlinkEstimate()
        self.adaptive = adaptive  # False: always the full streams (the recorder)
        self._on_link = on_link
        self._link_task: asyncio.Task[None] | None = None

    def add_slot(self, key: str, kind: str, low_frame: bool = False) -> Slot:
        """A fixed send slot; `low_frame`: keyframes only (a patrol tile, `sfu.media.forwarder`)."""
        def make_port(slot: Slot) -> SenderPort:
            transceiver = self.pc.addTransceiver(kind, direction="sendonly")
            if kind == "video":
                transceiver.setCodecPreferences(self._video_preferences)
            port = SenderPort(transceiver, slot.on_started, slot.on_keyframe_request)
            port.observe_rtcp(self._on_rtcp)
            return port

        slot = Slot(kind, make_port, low_frame=low_frame)
        self.slots[key] = slot
        return slot

    def slot_mids(self) -> dict[str, str | None]:
        return {key: (s.port.transceiver.mid if s.port else None) for key, s in self.slots.items()}

    async def create_offer(self) -> str:
        async with self._lock:
            offer = await self.pc.createOffer()
            await self.pc.setLocalDescription(offer)
            return str(self.pc.localDescription.sdp)

    async def accept_answer(self, sdp: str) -> None:
        async with self._lock:
            if self.pc.signalingState != "have-local-offer":
                raise SdpError("answer: no offer is pending on the receiving connection")
            check_description(sdp, "answer")
            try:
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
            except Exception as exc:
                raise SdpError(f"answer rejected: {exc or type(exc).__name__}") from exc
            if self._link_task is None:
                self._link_task = asyncio.ensure_future(self._watch_link())

    def _on_rtcp(self, ssrc: int, report: Any, rtt_s: float | None, remb_bps: int | None, sent: int) -> None:
        if report is None:
            link = LinkReport(rtt_s=rtt_s, remb_bps=remb_bps)
        else:
            link = LinkReport(report.fraction_lost / 256.0, rtt_s, remb_bps, report.packets_lost,
                              report.highest_sequence, sent)
        self.link.on_report(ssrc, link, time.monotonic())

    def _video_ports(self) -> list[SenderPort]:
        return [s.port for s in self.slots.values() if s.kind == "video" and s.port is not None]

    async def _watch_link(self) -> None:
        """Once a second: judge the downlink, move the video slots to the tier it takes."""
        reported = 0.0
        while not self.closed:
            await asyncio.sleep(DownlinkEstimate.INTERVAL_S)
            try:
                ports = self._video_ports()
                changed = self.link.update(time.monotonic(), sum(p.octets_sent for p in ports),
                                           sum(p.packets_sent for p in ports), sum(p.nacked for p in ports))
                if changed is not None and self.adaptive:
                    logger.info("downlink %s: video now at tier %s", self.link.to_json(), changed)
                    for slot in self.slots.values():
                        slot.set_tier(changed)
                elif changed is not None:
                    self.link.tier = "full"
                now = time.monotonic()
                if self._on_link is not None and (changed is not None or now - reported >= 2.0):
                    reported = now
                    self._on_link(self.link.to_json(), changed is not None and self.adaptive)
            except Exception:  # the estimate must never take the connection down
                logger.exception("downlink estimate failed")

    async def close(self) -> None:
        if self._link_task is not None:
            self._link_task.cancel()
        for slot in self.slots.values():
            slot.detach()
        await super().close()
