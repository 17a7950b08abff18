"""Outbound RTP of one call on the event loop: paced frame streams and pcap replays.

One timer handle per stream, rescheduled packet by packet with call_at, so a call
costs no thread. Like the scale engine (SPEC section 3): a late packet is sent late,
whole missed slots are skipped (timestamp and file position move on), never sent in
a burst; timestamps follow the slot grid, not the wall clock.
"""

from __future__ import annotations

import asyncio
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from gossipper.media.classic.pcap import PcapPacket
from gossipper.media.classic.rtpcheck import EchoCheck
from gossipper.media.classic.totals import ClassicTotals
from gossipper.media.rtp import FIXED_HEADER, MARKER_BIT

SendPacket = Callable[[bytes, int], None]  # (packet, payload octets)
_PCAP_REBASE_S = 0.020  # a replay this far behind shifts its remaining schedule instead of bursting


class RtpSource:
    """Our SSRC while one stream lasts, and what RTCP sender reports say about it."""

    def __init__(self, ssrc: int, clock_rate: int) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.packets = 0
        self.octets = 0
        self.last_timestamp = 0
        self.last_sent_at = 0.0  # loop time of the last packet

    def sent(self, timestamp: int, payload_octets: int, at: float) -> None:
        self.packets += 1
        self.octets += payload_octets
        self.last_timestamp = timestamp
        self.last_sent_at = at

    def timestamp_at(self, at: float) -> int:
        """The RTP timestamp of instant `at` on this stream's clock, for an SR's sender info."""
        return (self.last_timestamp + round((at - self.last_sent_at) * self.clock_rate)) & 0xFFFFFFFF


@dataclass(frozen=True)
class FramePlan:
    """What a file or synthetic stream sends: frame i of a loop, at a fixed interval."""

    frame: Callable[[int], bytes]
    frame_count: int  # frames in one pass
    loops: int  # passes; -1 forever
    slot_limit: int  # packets at most (from dur_ms); 0 = no limit
    payload_type: int
    clock_rate: int
    timestamp_step: int
    interval_s: float
    echo_checked: bool = False  # SIPp checks the echo of file and pattern streams (rtpcheck)


class FrameStream:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        plan: FramePlan,
        source: RtpSource,
        send: SendPacket,
        on_end: Callable[[FrameStream], None],
        totals: ClassicTotals,
        check: EchoCheck | None = None,
    ) -> None:
        self.plan = plan
        self.source = source
        self.check = check
        self._loop = loop
        self._send = send
        self._on_end = on_end
        self._totals = totals
        self._sequence = secrets.randbits(16)
        self._timestamp = secrets.randbits(32)
        self._frames_sent = 0  # position in the file, over all passes
        self._slots = 0  # slots used, sent or skipped: what dur_ms limits
        self._marker = True
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self.paused = False
        self.finished = False

    def start(self) -> None:
        self._due = self._loop.time()
        self._schedule()

    def pause(self) -> None:
        if not self.finished and not self.paused:
            self.paused = True
            self._cancel()

    def resume(self) -> None:
        """Send again from the first slot not in the past; the pause moves the timestamp on."""
        if not self.paused or self.finished:
            return
        self.paused = False
        interval = self.plan.interval_s
        missed = max(0, math.ceil((self._loop.time() - self._due) / interval))
        self._due += missed * interval
        self._timestamp = (self._timestamp + missed * self.plan.timestamp_step) & 0xFFFFFFFF
        self._marker = True
        self._schedule()

    def stop(self) -> None:
        self.finished = True
        self._cancel()

    def _schedule(self) -> None:
        self._handle = self._loop.call_at(self._due, self._tick)

    def _cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        plan = self.plan
        late = self._loop.time() - self._due
        if late >= plan.interval_s:  # whole slots behind: skip them rather than burst
            missed = int(late // plan.interval_s)
            self._due += missed * plan.interval_s
            late -= missed * plan.interval_s
            self._timestamp = (self._timestamp + missed * plan.timestamp_step) & 0xFFFFFFFF
            self._frames_sent += missed
            self._slots += missed
            if self._done():
                self._finish()
                return
        payload = plan.frame(self._frames_sent % plan.frame_count)
        second = plan.payload_type | (MARKER_BIT if self._marker else 0)
        header = FIXED_HEADER.pack(0x80, second, self._sequence, self._timestamp, self.source.ssrc)
        self._send(header + payload, len(payload))
        if self.check is not None:
            self.check.packet_sent(self._sequence, payload)
        self.source.sent(self._timestamp, len(payload), self._loop.time())
        self._totals.note_lateness(late)
        self._marker = False
        self._sequence = (self._sequence + 1) & 0xFFFF
        self._timestamp = (self._timestamp + plan.timestamp_step) & 0xFFFFFFFF
        self._frames_sent += 1
        self._slots += 1
        if self._done():
            self._finish()
        else:
            self._due += plan.interval_s
            self._schedule()

    def _done(self) -> bool:
        plan = self.plan
        if plan.slot_limit and self._slots >= plan.slot_limit:
            return True
        return plan.loops >= 0 and self._frames_sent >= plan.frame_count * max(1, plan.loops)

    def _finish(self) -> None:
        self.finished = True
        self._handle = None
        self._on_end(self)


class PcapReplay:
    """A capture's RTP sent as captured, spaced as captured; a stall shifts what is left."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        packets: tuple[PcapPacket, ...],
        send: SendPacket,
        on_end: Callable[[PcapReplay], None],
        totals: ClassicTotals,
    ) -> None:
        self._loop = loop
        self._packets = packets
        self._send = send
        self._on_end = on_end
        self._totals = totals
        self._index = 0
        self._base = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self.finished = False

    def start(self) -> None:
        self._base = self._loop.time()
        self._schedule()

    def stop(self) -> None:
        self.finished = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self) -> None:
        self._handle = self._loop.call_at(self._base + self._packets[self._index].offset_s, self._tick)

    def _tick(self) -> None:
        packet = self._packets[self._index]
        late = self._loop.time() - (self._base + packet.offset_s)
        if late > _PCAP_REBASE_S:
            self._base += late
        self._send(packet.data, packet.payload_octets)
        self._totals.note_lateness(late)
        self._index += 1
        if self._index < len(self._packets):
            self._schedule()
        else:
            self.finished = True
            self._handle = None
            self._on_end(self)
