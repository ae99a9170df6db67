"""The forwarding plane: a published track fans its RTP packets out to subscriber slots.

A packet's way through the server, top to bottom:
  ReceiverTap (aiortc_adapter) -> PublishedTrack.on_packet -> Slot.forward -> SenderPort.write

A `Slot` is one fixed send transceiver of a subscriber's connection. The server decides which
`PublishedTrack` feeds it (`Slot.attach`); switching sources keeps the subscriber's sequence
numbers and timestamps continuous, waits for a keyframe, and asks the new source for one.
Nothing is decoded or encoded here.

A slot in LOW-FRAME mode (a patrol tile: `Slot(low_frame=True)`) forwards keyframes only, whole,
renumbered so the subscriber sees a gapless sequence (its jitter buffer waits for nothing and asks
for nothing); the RTP timestamps keep the source's clock. Its track is asked for a keyframe only
gently: once per PATROL_KEYFRAME_INTERVAL_S, shared by all of the track's low-frame slots, and
only when none came on its own in that time (a rural camera's 1 Mbps uplink pays for each one).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from sfu.media.aiortc_adapter import ReceiverTap, SenderPort
from sfu.media.bandwidth import CAMERA_MAX_BPS, COURSEWARE_MAX_BPS, UplinkEstimate
from sfu.media.codecs import CodecKey, is_keyframe_start, payload_type_map
from sfu.media.nack import NackTracker
from sfu.media.tiers import TierTrack, tier_spec

logger = logging.getLogger(__name__)

KEYFRAME_REQUEST_INTERVAL_S = 0.5  # at most one PLI upstream per publisher track per interval
PATROL_KEYFRAME_INTERVAL_S = 3.0  # low-frame slots: a keyframe at least this often, asked for if none came
_SEQ_MOD = 1 << 16
_TS_MOD = 1 << 32
# Packets of the source from before the switch point are not forwarded (their output numbers would
# collide with the previous source's). The point trails the newest packet: once the source is this
# far past it, it moves up to _BASE_TRAIL behind the newest (a packet later than that is useless to
# the subscriber anyway). A fixed point made every packet 2^15 or more past it look "older": the
# slot then dropped everything for the next 2^15 packets (minutes into every lesson).
_BASE_MOVE_AFTER = 0x4000
_BASE_TRAIL = 0x1000


@dataclass
class TrackStats:
    packets_in: int = 0
    bytes_in: int = 0
    keyframe_requests_sent: int = 0
    patrol_keyframe_requests: int = 0  # of those, asked for the track's low-frame (patrol) slots


class Upstream(Protocol):
    """Where a published track's packets come from: a classroom's receiver, or a server-made tier."""

    @property
    def codecs(self) -> dict[int, RTCRtpCodecParameters]: ...
    @property
    def media_ssrc(self) -> int | None: ...
    def request_keyframe(self) -> None: ...


class PublishedTrack:
    """One incoming track of a classroom (camera, microphone or courseware), or a tier of one."""

    def __init__(self, kind: str, label: str, upstream: Upstream | None = None) -> None:
        self.kind = kind
        self.label = label  # e.g. "rural-1/camera", for logs and stats
        self.slots: set[Slot] = set()
        self.stats = TrackStats()
        self.tiers: dict[str, TierTrack] = {}  # lower tiers made from this track while needed
        self._upstream: Upstream | None = upstream
        self._tap: ReceiverTap | None = None
        self._last_keyframe_request = 0.0
        self._keyframe_wanted = False
        self.last_keyframe_at = 0.0  # a keyframe started (as seen by a low-frame slot)
        self._last_patrol_request = -PATROL_KEYFRAME_INTERVAL_S
        self.closed = False
        self.last_packet_at = 0.0
        self._codec_names: dict[int, str] = {}  # payload type -> codec name (fixed once negotiated)
        max_bps = COURSEWARE_MAX_BPS if label.endswith("/courseware") else CAMERA_MAX_BPS
        self.uplink = UplinkEstimate(max_bps=max_bps)  # what the classroom's uplink carries for it
        self.nack = NackTracker()  # video: losses on the uplink, asked for until repaired or given up
        self._nack_checked = 0.0

    def bind(self, tap: ReceiverTap) -> None:
        self._tap = tap
        self._upstream = tap
        if self.kind == "video":
            tap.set_remb_policy(self._remb)

    def _remb(self, arrival_ms: int, overusing: bool) -> int | None:
        self.uplink.on_delay_signal(overusing)
        return self.uplink.update(time.monotonic())  # the clock on_packet uses

    @property
    def codecs(self) -> list[RTCRtpCodecParameters]:
        return list(self._upstream.codecs.values()) if self._upstream else []

    @property
    def tier_name(self) -> str:
        """"full" for a classroom's own track, else the tier's name."""
        return self.label.rsplit("@", 1)[1] if "@" in self.label else "full"

    def tier(self, name: str) -> PublishedTrack:
        """This track at a lower tier (made now if nobody uses it yet); "full" is the track itself."""
        if name == "full" or self.kind != "video" or self.closed:
            return self
        tier = self.tiers.get(name)
        if tier is None or tier.closed:
            tier = TierTrack(self, tier_spec(self.label, name), asyncio.get_running_loop())
            self.tiers[name] = tier
            logger.info("%s: made tier %s (%s)", self.label, name, tier.spec)
        return tier.track

    def codec_name(self, codec: RTCRtpCodecParameters) -> str:
        """"VP8", "H264", "OPUS"...: what keyframe detection needs, worked out once per payload type."""
        pt = codec.payloadType
        name = self._codec_names.get(pt) if pt is not None else None
        if name is None:
            name = CodecKey.of(codec).name
            if pt is not None:
                self._codec_names[pt] = name
        return name

    async def on_packet(self, packet: RtpPacket, codec: RTCRtpCodecParameters) -> None:
        self.stats.packets_in += 1
        self.stats.bytes_in += len(packet.payload)
        self.last_packet_at = time.monotonic()
        if self._tap is not None and self.kind == "video":  # (audio: no REMB, no NACK)
            self.uplink.on_packet(packet.sequence_number, len(packet.payload), self.last_packet_at,
                                  self._tap.last_was_retransmission)
            self._repair(packet.sequence_number, self.last_packet_at)
        if self._keyframe_wanted:
            self.request_keyframe()
        for tier in tuple(self.tiers.values()):
            tier.feed(packet, codec)
        for slot in tuple(self.slots):
            await slot.forward(self, packet, codec)

    def _repair(self, seq: int, now: float) -> None:
        """NACK new gaps at once, ask again for old ones, and heal the unrepairable with a keyframe."""
        assert self._tap is not None
        lost = self.nack.on_packet(seq, now)
        gave_up = 0
        if now - self._nack_checked >= 0.05:
            self._nack_checked = now
            again, gave_up = self.nack.due(now)
            lost += again
        if lost:
            self._tap.send_nack(sorted(lost))
        if gave_up:
            logger.info("%s: %d packet(s) lost for good on the uplink; asking for a keyframe", self.label, gave_up)
            self.request_keyframe()

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe, at most once per KEYFRAME_REQUEST_INTERVAL_S."""
        if self.kind != "video" or self._upstream is None or self.closed:
            return
        now = time.monotonic()
        if now - self._last_keyframe_request < KEYFRAME_REQUEST_INTERVAL_S or self._upstream.media_ssrc is None:
            # too soon, or no packet seen yet: remember and ask on a later packet
            self._keyframe_wanted = True
            return
        self._keyframe_wanted = False
        self._last_keyframe_request = now
        self.stats.keyframe_requests_sent += 1
        self._upstream.request_keyframe()

    def request_patrol_keyframe(self, now: float, *, new_viewer: bool = False) -> None:
        """A low-frame slot wants a picture: ask upstream at most once per PATROL_KEYFRAME_INTERVAL_S
        for all of them, and (unless a new viewer has seen none yet) only if none came on its own."""
        if self.kind != "video" or self.closed or now - self._last_patrol_request < PATROL_KEYFRAME_INTERVAL_S:
            return
        if not new_viewer and now - self.last_keyframe_at < PATROL_KEYFRAME_INTERVAL_S:
            return
        self._last_patrol_request = now
        self.stats.patrol_keyframe_requests += 1
        self.request_keyframe()

    def close(self) -> None:
        """The publisher is gone: every slot it fed goes quiet (and stays continuous later)."""
        self.closed = True
        for tier in tuple(self.tiers.values()):
            tier.close()
        for slot in tuple(self.slots):
            slot.detach()


@dataclass
class SlotStats:
    packets_out: int = 0
    dropped_waiting_keyframe: int = 0
    dropped_no_codec: int = 0
    source_switches: int = 0
    dropped_low_frame: int = 0  # low-frame mode: packets of frames that were not keyframes
    keyframes_forwarded: int = 0  # low-frame mode
    keyframe_requests: int = 0  # PLI/FIR from the subscriber (an edge node's relay link: its viewers')


class Slot:
    """A subscriber's fixed send slot; the server switches which PublishedTrack feeds it."""

    def __init__(self, kind: str, port_factory: Callable[[Slot], SenderPort] | None = None,
                 low_frame: bool = False) -> None:
        self.kind = kind
        self.low_frame = low_frame and kind == "video"  # keyframes only (a patrol tile)
        self._keyframe_ts: int | None = None  # low-frame: source timestamp of the keyframe being forwarded
        self._skip_ts: int | None = None  # low-frame: source timestamp of the frame being dropped
        self.source: PublishedTrack | None = None  # what feeds the slot now (a tier of `wanted`, or it)
        self.wanted: PublishedTrack | None = None  # what the room asked for
        self.tier = "full"  # the tier this subscriber's link takes (video only)
        self.stats = SlotStats()
        self.port: SenderPort | None = port_factory(self) if port_factory else None
        # munging state: output = input + offset (mod 2^16 / 2^32), rebased at each switch
        self._seq_offset = 0
        self._ts_offset = 0
        self._last_seq = random.randrange(_SEQ_MOD)
        self._last_ts = random.randrange(_TS_MOD)
        self._last_sent_at: float | None = None
        self._base_in_seq: int | None = None
        self._rebase = True
        self._need_keyframe = kind == "video"
        self._pt_map: dict[int, int] = {}
        self._unmapped: set[int] = set()  # source payload types the subscriber lacks (warned once)
        self._clock_rate = 90000 if kind == "video" else 48000
        self._mid_frame = False  # the last forwarded video packet did not end its frame
        self._draining: PublishedTrack | None = None  # old source finishing its current frame
        self._draining_pt: dict[int, int] = {}

    # called by the SenderPort
    def on_started(self) -> None:
        """The subscriber's transport is up: get it a picture as soon as possible."""
        if self.source is not None:
            self._map_payload_types(self.source)
            self._ask_keyframe(self.source, new_viewer=True)

    def on_keyframe_request(self) -> None:
        """The subscriber sent PLI/FIR: pass it upstream (rate-limited by the track)."""
        self.stats.keyframe_requests += 1
        if self.source is not None:
            self._ask_keyframe(self.source)

    def _ask_keyframe(self, source: PublishedTrack, new_viewer: bool = False) -> None:
        if self.low_frame:
            source.request_patrol_keyframe(time.monotonic(), new_viewer=new_viewer)
        else:
            source.request_keyframe()

    # called by the room
    def attach(self, source: PublishedTrack | None) -> None:
        """Carry this classroom's track (at the slot's tier), or nothing."""
        self.wanted = source
        self._feed_from(self._tiered(source))

    # called by the subscriber's link estimate
    def set_tier(self, tier: str) -> None:
        if self.kind != "video" or self.low_frame or tier == self.tier:
            return
        self.tier = tier
        self._feed_from(self._tiered(self.wanted))

    def _tiered(self, source: PublishedTrack | None) -> PublishedTrack | None:
        if source is None or self.tier == "full":
            return source
        return source.tier(self.tier)

    def _feed_from(self, source: PublishedTrack | None) -> None:
        if source is self.source:
            return
        self._stop_draining()
        old = self.source
        if old is not None:
            if self._mid_frame and not old.closed and source is not None:
                self._draining = old  # let it finish the frame the subscriber is in the middle of
            else:
                old.slots.discard(self)
        self.source = source
        self._rebase = True
        self._need_keyframe = self.kind == "video"
        self._keyframe_ts = self._skip_ts = None
        if source is None:
            return
        if source.kind != self.kind:
            raise ValueError(f"cannot feed a {self.kind} slot from a {source.kind} track")
        self.stats.source_switches += 1
        self._draining_pt = self._pt_map
        source.slots.add(self)
        self._map_payload_types(source)
        if self.port is not None and self.port.started:
            self._ask_keyframe(source, new_viewer=True)

    def _map_payload_types(self, source: PublishedTrack) -> None:
        self._pt_map = payload_type_map(source.codecs, self.port.codecs if self.port else [])
        self._unmapped = set()

    def _unmapped_payload_type(self, source: PublishedTrack, port: SenderPort, payload_type: int) -> int | None:
        """A packet whose payload type is not in the map: map again once (negotiation may have
        completed since), then remember the type so its later packets are dropped without work."""
        if payload_type in self._unmapped:
            return None
        self._map_payload_types(source)
        pt = self._pt_map.get(payload_type)
        if pt is None:
            self._unmapped.add(payload_type)
            codec = next((c for c in source.codecs if c.payloadType == payload_type), None)
            logger.warning("%s: the subscriber did not negotiate %s (payload type %d); its packets are dropped",
                           source.label, codec.mimeType if codec else "this codec", payload_type)
        return pt

    def detach(self) -> None:
        self.attach(None)

    def _stop_draining(self) -> None:
        if self._draining is not None:
            if self._draining is not self.source:
                self._draining.slots.discard(self)
            self._draining = None

    async def forward(self, source: PublishedTrack, packet: RtpPacket, codec: RTCRtpCodecParameters) -> None:
        port = self.port
        if port is None or not port.started:
            return
        if source is self._draining:
            await self._forward_draining(packet, port)
            return
        if source is not self.source:
            return
        pt = self._pt_map.get(packet.payload_type)
        if pt is None:
            pt = self._unmapped_payload_type(source, port, packet.payload_type)
            if pt is None:
                self.stats.dropped_no_codec += 1
                return
        if self.low_frame:
            await self._forward_low_frame(source, packet, codec, port, pt)
            return
        if self._need_keyframe:
            if not is_keyframe_start(source.codec_name(codec), packet.payload):
                self.stats.dropped_waiting_keyframe += 1
                source.request_keyframe()
                return
            self._need_keyframe = False
            self._stop_draining()
        if self._rebase:
            self._rebase_on(packet)
        else:
            ahead = (packet.sequence_number - self._base_in_seq) % _SEQ_MOD  # type: ignore[operator]
            if ahead >= 0x8000:
                return  # older than the switch point: would collide with what we already sent
            if ahead > _BASE_MOVE_AFTER:
                self._base_in_seq = (packet.sequence_number - _BASE_TRAIL) % _SEQ_MOD
        seq = (packet.sequence_number + self._seq_offset) % _SEQ_MOD
        ts = (packet.timestamp + self._ts_offset) % _TS_MOD
        await self._write(port, packet, pt, seq, ts)

    async def _forward_low_frame(self, source: PublishedTrack, packet: RtpPacket, codec: RTCRtpCodecParameters,
                                 port: SenderPort, pt: int) -> None:
        """Keyframes only: each one's packets renumbered to follow the last one sent, so the
        subscriber sees no gap; every other frame is dropped (its first packet tells)."""
        if packet.timestamp != self._keyframe_ts:
            if packet.timestamp == self._skip_ts:
                self.stats.dropped_low_frame += 1
                return
            now = time.monotonic()
            if not is_keyframe_start(source.codec_name(codec), packet.payload):
                self._skip_ts = packet.timestamp
                self.stats.dropped_low_frame += 1
                source.request_patrol_keyframe(now, new_viewer=self._need_keyframe)
                return
            source.last_keyframe_at = now
            self._keyframe_ts = packet.timestamp
            self._need_keyframe = False
            self._stop_draining()
            self.stats.keyframes_forwarded += 1
            if self._rebase:
                self._rebase_on(packet)  # a new source: timestamps continue from the last one sent
            self._seq_offset = (self._last_seq + 1 - packet.sequence_number) % _SEQ_MOD
            self._base_in_seq = packet.sequence_number
        if (packet.sequence_number - self._base_in_seq) % _SEQ_MOD >= 0x8000:  # type: ignore[operator]
            return  # before the keyframe's first packet: its number is taken
        seq = (packet.sequence_number + self._seq_offset) % _SEQ_MOD
        await self._write(port, packet, pt, seq, (packet.timestamp + self._ts_offset) % _TS_MOD)

    async def _write(self, port: SenderPort, packet: RtpPacket, pt: int, seq: int, ts: int) -> None:
        await port.write(packet, pt, seq, ts)
        if ((seq - self._last_seq) % _SEQ_MOD) < 0x8000:
            self._last_seq = seq
            self._last_ts = ts
            self._mid_frame = self.kind == "video" and not packet.marker
        self._last_sent_at = time.monotonic()
        self.stats.packets_out += 1

    async def _forward_draining(self, packet: RtpPacket, port: SenderPort) -> None:
        """The old source's packets up to the end of the frame in flight, with the old mapping."""
        seq = (packet.sequence_number + self._seq_offset) % _SEQ_MOD
        if ((seq - self._last_seq) % _SEQ_MOD) != 1:
            return  # only the next packet in order; anything else ends up as a gap anyway
        pt = self._draining_pt.get(packet.payload_type)
        if pt is None:
            self._stop_draining()
            return
        await self._write(port, packet, pt, seq, (packet.timestamp + self._ts_offset) % _TS_MOD)
        if packet.marker:
            self._stop_draining()

    def _rebase_on(self, packet: RtpPacket) -> None:
        """Continue the subscriber's sequence and timestamp from where the last source left off."""
        gap = 1
        if self._last_sent_at is not None:
            gap = max(1, int((time.monotonic() - self._last_sent_at) * self._clock_rate))
        self._seq_offset = (self._last_seq + 1 - packet.sequence_number) % _SEQ_MOD
        self._ts_offset = (self._last_ts + gap - packet.timestamp) % _TS_MOD
        self._base_in_seq = packet.sequence_number
        self._rebase = False
