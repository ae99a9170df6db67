"""Send side: forwarded packets written through an RTCRtpSender, NACKs answered (throttled), RTCP observed."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpSender, RTCRtpTransceiver, clock
from aiortc.codecs import is_rtx
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RtcpByePacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
    RtpPacket,
    unpack_remb_fci,
    wrap_rtx,
)
from aiortc.utils import uint16_add

from sfu.media.aiortc_adapter.core import (
    RTP_HISTORY_SIZE,
    RtcpObserver,
    forward_path,
)
from sfu.media.aiortc_adapter.wire import HeaderTemplate, ntp_now, send_now

# -- send side -------------------------------------------------------------------------------


class SenderPort:
    """Writes forwarded packets through an RTCRtpSender whose own encoder loop never runs."""

    def __init__(
        self,
        transceiver: RTCRtpTransceiver,
        on_started: Callable[[], None],
        on_keyframe_request: Callable[[], None],
    ) -> None:
        self.transceiver = transceiver
        self.sender: RTCRtpSender = transceiver.sender
        self.started = False
        self._on_started = on_started
        s: Any = self.sender
        s._run_rtp = self._run_rtp
        s._send_keyframe = on_keyframe_request
        # aiortc's own _retransmit wraps every repair in the RTX payload type paired with the
        # first negotiated codec; a slot carries whichever codec its source publishes.
        s._retransmit = self._retransmit
        self._handle_rtcp_original = self.sender._handle_rtcp_packet
        s._handle_rtcp_packet = self._handle_rtcp_packet
        self._rtcp_observer: RtcpObserver | None = None
        self.packets_sent = 0
        self.retransmissions = 0
        self.retransmit_misses = 0
        self.retransmits_throttled = 0
        self.nacked = 0  # distinct packets we sent that the subscriber asked for again: its loss before repair
        self._nacked_at: dict[int, float] = {}  # seq -> when first NACKed
        self._repairs: dict[int, tuple[int, float]] = {}  # seq -> (times resent, when last)
        # (when, octets sent so far), at most every 0.1 s: what was sent in the last second is
        # derived from the sender's own octet count, nothing is kept per packet
        self._octet_marks: deque[tuple[float, int]] = deque(maxlen=16)
        self._repair_window: deque[tuple[float, int]] = deque()  # (when, bytes) of recent repairs
        self._rtx_payload_types: dict[int, int] | None = None  # media PT -> its RTX PT (apt)
        self._last_seq: int | None = None  # highest sequence number sent (the SR's RTP/NTP pair)
        self._slim = forward_path.slim
        if self._slim:
            s._run_rtcp = self._run_rtcp
        self.reports_sent = 0  # sender reports (slim path: only from a sender that sent since its last one)
        self._template: HeaderTemplate | None = None  # slim: made at the first packet (MID known by then)
        self._history: list[bytes | None] = [None] * RTP_HISTORY_SIZE  # slim: what was sent, by seq

    async def _run_rtp(self, codec: RTCRtpCodecParameters) -> None:
        s: Any = self.sender
        s._RTCRtpSender__rtp_started.set()
        self.started = True
        try:
            self._on_started()
            await asyncio.Event().wait()  # until stop() cancels us
        except asyncio.CancelledError:
            pass
        finally:
            self.started = False
            s._RTCRtpSender__rtp_exited.set()

    async def _run_rtcp(self) -> None:
        """aiortc 1.16.0's sender RTCP loop (SR + SDES every 0.5-1.5 s, BYE at the end), minus the reports of
        a sender that sent nothing since its last one: an observer has 9 slots and one or two carry anything,
        and each idle one cost a compound RTCP packet a second through the whole send path."""
        s: Any = self.sender
        s._RTCRtpSender__rtcp_started.set()
        reported = 0
        try:
            while True:
                await asyncio.sleep(0.5 + random.random())
                count = s._RTCRtpSender__packet_count
                if count == reported:
                    continue
                reported = count
                ntp = s._RTCRtpSender__ntp_timestamp
                packets: list[Any] = [RtcpSrPacket(ssrc=s._ssrc, sender_info=RtcpSenderInfo(
                    ntp_timestamp=ntp, rtp_timestamp=s._RTCRtpSender__rtp_timestamp,
                    packet_count=count & 0xFFFFFFFF, octet_count=s._RTCRtpSender__octet_count & 0xFFFFFFFF))]
                s._RTCRtpSender__lsr = (ntp >> 16) & 0xFFFFFFFF
                s._RTCRtpSender__lsr_time = time.time()
                cname = s._RTCRtpSender__cname
                if cname is not None:
                    packets.append(RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=s._ssrc,
                                                                         items=[(1, cname.encode("utf8"))])]))
                await s._send_rtcp(packets)
                self.reports_sent += 1
        except asyncio.CancelledError:
            pass
        if reported:
            await s._send_rtcp([RtcpByePacket(sources=[s._ssrc])])
        s._RTCRtpSender__rtcp_exited.set()

    def observe_rtcp(self, observer: RtcpObserver) -> None:
        """Be told what the subscriber reports about this sender: loss, round trip, REMB."""
        self._rtcp_observer = observer

    async def _handle_rtcp_packet(self, packet: Any) -> None:
        await self._handle_rtcp_original(packet)  # aiortc: RTT, NACK -> _retransmit, PLI -> keyframe
        observer = self._rtcp_observer
        if observer is None:
            return
        ssrc = self.ssrc
        if isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            for report in packet.reports:
                if report.ssrc == ssrc:  # an RtcpReceiverInfo: fraction_lost, packets_lost, highest_sequence
                    rtt: float | None = self.sender._RTCRtpSender__rtt  # type: ignore[attr-defined]
                    observer(ssrc, report, rtt, None, self.packets_sent)
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                return
            if ssrc in ssrcs:
                observer(ssrc, None, None, bitrate // max(1, len(ssrcs)), self.packets_sent)

    @property
    def octets_sent(self) -> int:
        """Payload bytes sent so far (what the sender report counts)."""
        s: Any = self.sender
        return int(s._RTCRtpSender__octet_count)

    @property
    def codecs(self) -> list[RTCRtpCodecParameters]:
        """The codecs negotiated with the subscriber for this slot (with its payload types)."""
        codecs: list[RTCRtpCodecParameters] = self.transceiver._codecs
        return codecs

    def rtx_payload_type(self, payload_type: int) -> int | None:
        """The subscriber's RTX payload type whose apt is this media payload type, if negotiated."""
        if not self._rtx_payload_types:  # computed once the subscriber's answer gave the codecs
            self._rtx_payload_types = {}
            for c in self.codecs:
                apt = c.parameters.get("apt")
                if is_rtx(c) and c.payloadType is not None and isinstance(apt, int):
                    self._rtx_payload_types[apt] = c.payloadType
        return self._rtx_payload_types.get(payload_type)

    async def _retransmit(self, sequence_number: int) -> None:
        """Answer a subscriber's NACK from the history, as RTX of the packet's own codec.

        Throttled, so a congested subscriber's NACKs cannot fill its own link with repairs: a
        packet is resent at most `MAX_REPAIRS` times, not twice within 0.8 round trips, and
        repairs stay within `REPAIR_SHARE` of what this sender sent in the last second.
        """
        s: Any = self.sender
        packet = self._sent_packet(sequence_number)
        if packet is None or packet.sequence_number != sequence_number:
            self.retransmit_misses += 1  # never sent (lost upstream), or older than the history
            return
        self._count_nack(sequence_number)
        if not self._repair_allowed(sequence_number, len(packet.payload)):
            self.retransmits_throttled += 1
            return
        rtx_pt = self.rtx_payload_type(packet.payload_type)
        if rtx_pt is not None:
            packet = wrap_rtx(
                packet,
                payload_type=rtx_pt,
                sequence_number=s._RTCRtpSender__rtx_sequence_number,
                ssrc=self.sender._rtx_ssrc,
            )
            s._RTCRtpSender__rtx_sequence_number = uint16_add(s._RTCRtpSender__rtx_sequence_number, 1)
        # (no RTX for this codec: resend the packet as it was, which a receiver also accepts)
        try:
            await self.sender.transport._send_rtp(packet.serialize(s._RTCRtpSender__rtp_header_extensions_map))
        except ConnectionError:
            return
        self.retransmissions += 1

    def _count_nack(self, seq: int) -> None:
        """Count a packet the first time it is NACKed (a repair lost and asked for again is not new loss)."""
        now = time.monotonic()
        if now - self._nacked_at.get(seq, -1e9) <= 10.0:
            return
        self.nacked += 1
        self._nacked_at[seq] = now
        if len(self._nacked_at) > 2 * RTP_HISTORY_SIZE:
            self._nacked_at = {k: at for k, at in self._nacked_at.items() if now - at <= 10.0}

    def _sent_packet(self, sequence_number: int) -> RtpPacket | None:
        """The packet last sent with this sequence number's history slot (None: nothing there yet)."""
        s: Any = self.sender
        if not self._slim:
            sent: RtpPacket | None = s._RTCRtpSender__rtp_history.get(sequence_number % RTP_HISTORY_SIZE)
            return sent
        data = self._history[sequence_number % RTP_HISTORY_SIZE]
        return None if data is None else RtpPacket.parse(data, s._RTCRtpSender__rtp_header_extensions_map)

    MAX_REPAIRS = 3
    REPAIR_SHARE = 0.3

    def _repair_allowed(self, seq: int, size: int) -> bool:
        now = time.monotonic()
        rtt: float = self.sender._RTCRtpSender__rtt or 0.1  # type: ignore[attr-defined]
        times, last = self._repairs.get(seq, (0, -1e9))
        if times >= self.MAX_REPAIRS or now - last < 0.8 * rtt:
            return False
        while self._repair_window and now - self._repair_window[0][0] > 1.0:
            self._repair_window.popleft()
        second_ago = next((octets for at, octets in self._octet_marks if now - at <= 1.0), self.octets_sent)
        sent = self.octets_sent - second_ago
        repaired = sum(n for _, n in self._repair_window)
        if repaired + size > max(self.REPAIR_SHARE * sent, 3000):
            return False
        self._repairs[seq] = (times + 1, now)
        if len(self._repairs) > 2 * RTP_HISTORY_SIZE:
            for old in sorted(self._repairs, key=lambda k: self._repairs[k][1])[:RTP_HISTORY_SIZE]:
                del self._repairs[old]
        self._repair_window.append((now, size))
        return True

    @property
    def ssrc(self) -> int:
        ssrc: int = self.sender._ssrc
        return ssrc

    async def write(self, packet: RtpPacket, payload_type: int, sequence_number: int, timestamp: int) -> None:
        """Send one packet as this sender's own (SSRC, PT, seq, ts and extensions rewritten)."""
        s: Any = self.sender
        if self._slim:
            ntp = ntp_now()
            template = self._template
            if template is None:
                template = self._template = HeaderTemplate(s._RTCRtpSender__rtp_header_extensions_map,
                                                           s._RTCRtpSender__mid, s._ssrc)
            data = template.packet(packet.marker, payload_type, sequence_number, timestamp, (ntp >> 14) & 0x00FFFFFF,
                                   packet.extensions.audio_level, packet.payload)
            self._history[sequence_number % RTP_HISTORY_SIZE] = data
            try:
                if not send_now(s.transport, data):
                    await s.transport._send_rtp(data)
            except ConnectionError:
                return
        else:
            out = RtpPacket(
                payload_type=payload_type,
                marker=packet.marker,
                sequence_number=sequence_number,
                timestamp=timestamp,
                ssrc=s._ssrc,
                payload=packet.payload,
            )
            out.extensions.mid = s._RTCRtpSender__mid
            out.extensions.abs_send_time = (clock.current_ntp_time() >> 14) & 0x00FFFFFF
            out.extensions.audio_level = packet.extensions.audio_level
            s._RTCRtpSender__rtp_history[sequence_number % RTP_HISTORY_SIZE] = out
            data = out.serialize(s._RTCRtpSender__rtp_header_extensions_map)
            try:
                await s.transport._send_rtp(data)
            except ConnectionError:
                return
            ntp = clock.current_ntp_time()
        if self._last_seq is None or 0 < (sequence_number - self._last_seq) % 65536 < 0x8000:
            # the sender report pairs "now" with the newest RTP timestamp: a late or reordered
            # packet (older timestamp) must not move that pair backwards
            self._last_seq = sequence_number
            s._RTCRtpSender__ntp_timestamp = ntp
            s._RTCRtpSender__rtp_timestamp = timestamp
        s._RTCRtpSender__octet_count += len(packet.payload)
        s._RTCRtpSender__packet_count += 1
        self.packets_sent += 1
        now = time.monotonic()
        if not self._octet_marks or now - self._octet_marks[-1][0] >= 0.1:
            self._octet_marks.append((now, s._RTCRtpSender__octet_count))

    def sender_counters(self) -> tuple[int, int, int]:
        """(packet count, octet count, last RTP timestamp) as the next sender report gives them."""
        s: Any = self.sender
        return (s._RTCRtpSender__packet_count, s._RTCRtpSender__octet_count, s._RTCRtpSender__rtp_timestamp)

    def sender_report_clock(self) -> tuple[int, int]:
        """(NTP time, RTP timestamp): the pair the next sender report maps wall clock to media time with."""
        s: Any = self.sender
        return (s._RTCRtpSender__ntp_timestamp, s._RTCRtpSender__rtp_timestamp)


