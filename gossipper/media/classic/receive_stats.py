"""Reception statistics of one RTP source: loss, duplicates, reordering and jitter.

Follows RFC 3550 appendix A: extended sequence numbers (A.1), expected and lost
packets with the per-report fraction (A.3), and the interarrival jitter estimator
J += (|D| - J) / 16 (A.8). Unlike the RFC's counters, duplicates are told apart and
not counted as received, so a duplicating network does not hide real loss.
"""

from __future__ import annotations

from dataclasses import dataclass

from gossipper.media.classic.rtcp import ReportBlock, ntp_middle

_SEQ_MOD = 1 << 16
_DUPLICATE_WINDOW = 1024  # how far back a repeated sequence number is still recognised


@dataclass
class _SenderReportSeen:
    lsr: int  # middle 32 bits of its NTP timestamp
    arrival_s: float


class ReceiveStats:
    def __init__(self, ssrc: int, clock_rate: int, payload_type: int) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.payload_type = payload_type
        self.packets = 0  # distinct packets received
        self.octets = 0  # their payload octets
        self.duplicates = 0
        self.out_of_order = 0
        self.jitter = 0.0  # RTP timestamp units
        self.max_jitter = 0.0
        self._base = 0  # extended sequence number of the first packet
        self._highest = -1  # highest extended sequence number seen (-1: nothing yet)
        self._recent: set[int] = set()
        self._last_transit: float | None = None
        self._expected_prior = 0
        self._received_prior = 0
        self._last_sr: _SenderReportSeen | None = None

    def record(self, sequence: int, timestamp: int, payload_octets: int, arrival_s: float) -> None:
        extended = self._extend(sequence)
        if extended in self._recent:
            self.duplicates += 1
            return
        if extended < self._highest - _DUPLICATE_WINDOW:
            self.out_of_order += 1  # too old to tell from a duplicate; never counted as received
            return
        if self._highest < 0:
            self._base = self._highest = extended
        elif extended > self._highest:
            self._highest = extended
        else:
            self.out_of_order += 1
        self._remember(extended)
        self.packets += 1
        self.octets += payload_octets
        transit = arrival_s * self.clock_rate - timestamp
        if self._last_transit is not None:
            # Timestamps wrap at 2^32: the difference between neighbours is small, take it modulo.
            delta = (transit - self._last_transit + (1 << 31)) % (1 << 32) - (1 << 31)
            self.jitter += (abs(delta) - self.jitter) / 16
            self.max_jitter = max(self.max_jitter, self.jitter)
        self._last_transit = transit

    def _extend(self, sequence: int) -> int:
        """The extended sequence number closest to the highest one seen (A.1, without probation)."""
        if self._highest < 0:
            return sequence
        highest_seq = self._highest % _SEQ_MOD
        delta = (sequence - highest_seq) % _SEQ_MOD
        if delta >= _SEQ_MOD // 2:
            delta -= _SEQ_MOD
        return self._highest + delta

    def _remember(self, extended: int) -> None:
        self._recent.add(extended)
        if len(self._recent) > 2 * _DUPLICATE_WINDOW:
            floor = self._highest - _DUPLICATE_WINDOW
            self._recent = {seen for seen in self._recent if seen >= floor}

    @property
    def expected(self) -> int:
        return self._highest - self._base + 1 if self._highest >= 0 else 0

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.packets)

    @property
    def jitter_ms(self) -> float:
        return self.jitter * 1000.0 / self.clock_rate

    @property
    def max_jitter_ms(self) -> float:
        return self.max_jitter * 1000.0 / self.clock_rate

    @property
    def highest_sequence(self) -> int:
        return max(self._highest, 0)

    def note_sender_report(self, ntp_timestamp: int, arrival_s: float) -> None:
        self._last_sr = _SenderReportSeen(ntp_middle(ntp_timestamp), arrival_s)

    def report_block(self, now_s: float) -> ReportBlock:
        """This source's block for our next SR/RR; starts a new interval for the fraction lost."""
        expected, received = self.expected, self.packets
        expected_interval = expected - self._expected_prior
        lost_interval = expected_interval - (received - self._received_prior)
        self._expected_prior, self._received_prior = expected, received
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = (lost_interval << 8) // expected_interval
        lsr = dlsr = 0
        if self._last_sr is not None:
            lsr = self._last_sr.lsr
            dlsr = int((now_s - self._last_sr.arrival_s) * 65536) & 0xFFFFFFFF
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=min(fraction, 255),
            cumulative_lost=expected - received,
            highest_sequence=self.highest_sequence,
            jitter=int(self.jitter),
            last_sr=lsr,
            delay_since_last_sr=dlsr,
        )
