"""What the classic path counts over a run; sessions write it, ClassicMedia reports it.

Kept apart from the sessions so that counts survive the calls that made them.
"""

from __future__ import annotations

import errno
from collections import Counter
from dataclasses import dataclass, field

from gossipper.stats.counters import MediaCounters

LATE_S = 0.001  # a packet sent more than 1 ms after its slot is late (as the scale engine counts)


@dataclass
class ClassicTotals:
    rtp_packets_sent: int = 0
    rtp_octets_sent: int = 0  # payload octets, as RTCP counts them
    rtp_packets_received: int = 0
    rtp_octets_received: int = 0
    echoed_packets: int = 0  # also in rtp_packets_sent
    rtcp_sender_reports: int = 0
    rtcp_receiver_reports: int = 0
    rtcp_packets_received: int = 0
    malformed_rtp: int = 0
    malformed_rtcp: int = 0
    kernel_drops: int = 0  # datagrams the kernel dropped at a full RTP or RTCP socket (read at close)
    rtp_check_failures: int = 0  # streams whose echo check failed, broken rtp_echo: exit 253
    streams_started: int = 0
    streams_active: int = 0
    streams_active_max: int = 0
    late_packets: int = 0
    max_late_ms: float = 0.0
    send_errors: Counter[str] = field(default_factory=Counter)  # errno name -> count
    srtp_rejected: Counter[str] = field(default_factory=Counter)  # libsrtp reason -> count

    def stream_started(self) -> None:
        self.streams_started += 1
        self.streams_active += 1
        self.streams_active_max = max(self.streams_active_max, self.streams_active)

    def stream_ended(self) -> None:
        self.streams_active -= 1

    def note_lateness(self, late_s: float) -> None:
        if late_s > LATE_S:
            self.late_packets += 1
            self.max_late_ms = max(self.max_late_ms, late_s * 1000.0)

    def send_error(self, error: OSError) -> None:
        self.send_errors[errno.errorcode.get(error.errno or 0, f"errno {error.errno}")] += 1

    @property
    def active(self) -> bool:
        return bool(self.streams_started or self.rtp_packets_received or self.rtp_packets_sent)

    def add_into(self, media: MediaCounters) -> None:
        """Add (never replace) our counts, so the scale engine's stay in the same object."""
        media.rtp_packets_sent += self.rtp_packets_sent
        media.rtp_octets_sent += self.rtp_octets_sent
        media.rtp_packets_received += self.rtp_packets_received
        media.rtp_octets_received += self.rtp_octets_received
        media.rtcp_sender_reports += self.rtcp_sender_reports
        media.rtcp_receiver_reports += self.rtcp_receiver_reports
        media.rtcp_packets_received += self.rtcp_packets_received
        media.streams_started += self.streams_started
        media.streams_active += self.streams_active
        media.streams_active_max += self.streams_active_max
        media.late_packets += self.late_packets
        media.max_late_ms = max(media.max_late_ms, self.max_late_ms)
        media.malformed_rtp += self.malformed_rtp
        media.malformed_rtcp += self.malformed_rtcp
        media.rtp_kernel_drops += self.kernel_drops
        media.rtp_check_failures += self.rtp_check_failures
        media.send_errors.update(self.send_errors)
