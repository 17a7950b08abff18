"""Receive quality of scale streams: the pure-Python tracker, and figures from raw counts.

The native core keeps each stream's receive state in C (scalecore.c, note_arrival()); the
pure-Python backend keeps the same state in a ReceiveTracker, written to the same rules
(scalecore.h's sc_quality) so that both backends pass the same tests. Either hands its raw
counts over as RawQuality, which figures_of() turns into the StreamQuality the views show,
E-model MOS included. QualityBook keeps the aggregate of a backend's ended streams.

Arrival times are the kernel's (SO_TIMESTAMPNS), not the time the engine got round to the
socket: both backends look at sockets in sweeps, and a sweep's delay must not count as
jitter or round trip.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass
from socket import SOL_SOCKET

from gossipper.media import emodel
from gossipper.media.scale.api import DUP_WINDOW, MAX_DROPOUT, MAX_MISORDER, NS_PER_MS, SEND_RING, StreamSpec
from gossipper.stats.quality import QualityAggregate, QualitySummary, StreamQuality

SO_TIMESTAMPNS = 35  # Linux's value (asm-generic); Python's socket module does not name it
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
TIMESPEC = struct.Struct("@qq")
ANCILLARY_BYTES = 64  # room for one SCM_TIMESTAMPNS
NO_SEND = -1  # a send-ring entry of a send that failed
_RTT_SKEW_NS = 1_000_000  # an echo stamped up to this before its send (clock skew) is taken as 0
_RING_MASK = SEND_RING - 1
_NO_SEQ = -1


@dataclass(frozen=True)
class RawQuality:
    """What a backend counted for one stream, in the order of scalecore.h's sc_quality."""

    ssrc: int = 0
    echo: bool = False
    received: int = 0
    expected: int = 0
    lost: int = 0
    duplicates: int = 0
    reordered: int = 0
    seq_jumps: int = 0
    ssrc_changes: int = 0
    jitter_ns: int = 0
    jitter_max_ns: int = 0
    rtt_count: int = 0
    rtt_sum_ns: int = 0
    rtt_min_ns: int = 0
    rtt_max_ns: int = 0
    rtt_unmatched: int = 0


def _endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def figures_of(raw: RawQuality, spec: StreamSpec) -> StreamQuality:
    """The stream's figures: RFC 3550 counts in ms and percent, and an E-model rating."""
    local = _endpoint(spec.local_ip, spec.local_port)
    remote = _endpoint(spec.remote_ip, spec.remote_port)
    if not raw.received:
        return StreamQuality(local, remote, spec.codec.label)
    unique = raw.received - raw.duplicates
    loss = 100.0 * max(0, raw.expected - unique) / raw.expected if raw.expected else 0.0
    jitter_ms = raw.jitter_ns / NS_PER_MS
    rtt_mean = raw.rtt_sum_ns / raw.rtt_count / NS_PER_MS if raw.rtt_count else None
    delay = emodel.mouth_to_ear_ms(None if rtt_mean is None else rtt_mean / 2, spec.interval_ms, jitter_ms)
    impairment = emodel.CODEC_IMPAIRMENTS.get(spec.codec.name)
    rating = emodel.rate(impairment, loss, delay) if impairment is not None else None
    return StreamQuality(
        local=local,
        remote=remote,
        codec=spec.codec.label,
        received=raw.received,
        expected=raw.expected,
        lost=raw.lost,
        duplicates=raw.duplicates,
        reordered=raw.reordered,
        seq_jumps=raw.seq_jumps,
        ssrc_changes=raw.ssrc_changes,
        source_ssrc=raw.ssrc,
        echo=raw.echo,
        loss_percent=loss,
        jitter_ms=jitter_ms,
        jitter_max_ms=raw.jitter_max_ns / NS_PER_MS,
        rtt_samples=raw.rtt_count,
        rtt_min_ms=raw.rtt_min_ns / NS_PER_MS if raw.rtt_count else None,
        rtt_mean_ms=rtt_mean,
        rtt_max_ms=raw.rtt_max_ns / NS_PER_MS if raw.rtt_count else None,
        rtt_unmatched=raw.rtt_unmatched,
        one_way_delay_ms=delay,
        r_factor=None if rating is None else rating.r,
        mos=None if rating is None else rating.mos,
    )


class QualityBook:
    """A backend's ended streams, folded; the summary adds the live ones at the time asked."""

    def __init__(self) -> None:
        self._ended = QualityAggregate()

    def ended(self, stream: StreamQuality) -> None:
        self._ended.add(stream)

    def ended_so_far(self) -> QualityAggregate:
        """A copy of the ended streams' aggregate, to add the live ones to."""
        return self._ended.copy()


def summarise(aggregate: QualityAggregate, live: Iterable[StreamQuality]) -> QualitySummary:
    """The aggregate with the live streams added, and the model's description."""
    for stream in live:
        aggregate.add(stream)
    return aggregate.summary(emodel.describe())


def realtime_offset_ns() -> int:
    """CLOCK_REALTIME minus CLOCK_MONOTONIC: turns a kernel arrival stamp into send-clock time."""
    return time.time_ns() - time.monotonic_ns()


def arrival_ns(ancillary: list[tuple[int, int, bytes]], offset_ns: int, fallback_ns: int) -> int:
    """The kernel's arrival stamp of a datagram on the monotonic clock (fallback: none came)."""
    for level, kind, data in ancillary:
        if level == SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(data) >= TIMESPEC.size:
            seconds, nanoseconds = TIMESPEC.unpack_from(data)
            return seconds * 1_000_000_000 + nanoseconds - offset_ns
    return fallback_ns


class ReceiveTracker:
    """One stream's receive state, as scalecore.c's rx_state keeps it (see scalecore.h).

    The sender records each send in `sent` (by sequence number) through note_sent(); the
    receive path calls note_arrival() per RTP packet that comes back.
    """

    __slots__ = (
        "_bad_seq",
        "_base_ext",
        "_clock_rate",
        "_expected_before",
        "_jitter16_ns",
        "_last_sent_seq",
        "_max_ext",
        "_own_ssrc",
        "_prev_arrival_ns",
        "_prev_ts",
        "_seen",
        "_sent",
        "_sent_any",
        "_window",
        "duplicates",
        "jitter_max_ns",
        "received",
        "reordered",
        "rtt_count",
        "rtt_max_ns",
        "rtt_min_ns",
        "rtt_sum_ns",
        "rtt_unmatched",
        "seq_jumps",
        "ssrc",
        "ssrc_changes",
    )

    def __init__(self, clock_rate: int, own_ssrc: int) -> None:
        self._clock_rate = clock_rate
        self._own_ssrc = own_ssrc
        self._sent = [NO_SEND] * SEND_RING
        self._sent_any = False
        self._last_sent_seq = 0
        self._seen = False
        self.ssrc = 0
        self._base_ext = self._max_ext = 0
        self._window = 0
        self._bad_seq = _NO_SEQ
        self._prev_arrival_ns = 0
        self._prev_ts = 0
        self._expected_before = 0
        self.received = self.duplicates = self.reordered = self.seq_jumps = self.ssrc_changes = 0
        self._jitter16_ns = 0
        self.jitter_max_ns = 0
        self.rtt_count = self.rtt_sum_ns = self.rtt_min_ns = self.rtt_max_ns = self.rtt_unmatched = 0

    def note_sent(self, seq: int, sent_ns: int) -> None:
        """A completed send (sent_ns NO_SEND when it failed), in sequence order."""
        self._sent[seq & _RING_MASK] = sent_ns
        self._last_sent_seq = seq
        self._sent_any = True

    def _start_run(self, seq: int) -> None:
        if self._seen:
            self._expected_before += self._max_ext - self._base_ext + 1
        self._base_ext = self._max_ext = seq
        self._window = 1
        self._bad_seq = _NO_SEQ

    def note_arrival(self, header: bytes | bytearray | memoryview, arrival: int) -> None:
        seq = (header[2] << 8) | header[3]
        ts = int.from_bytes(header[4:8], "big")
        ssrc = int.from_bytes(header[8:12], "big")
        if not self._seen or ssrc != self.ssrc:
            if self._seen:
                self.ssrc_changes += 1
            self._start_run(seq)
            self._seen = True
            self.ssrc = ssrc
            self.received += 1
        else:
            ahead = (seq - self._max_ext) & 0xFFFF
            old = False
            if ahead == 0:
                self.received += 1
                self.duplicates += 1
                return
            if ahead < MAX_DROPOUT:
                self._max_ext += ahead
                self._window = ((self._window << ahead) | 1) & 0xFFFFFFFFFFFFFFFF if ahead < DUP_WINDOW else 1
            elif ahead <= 65536 - MAX_MISORDER:
                if seq != self._bad_seq:
                    self._bad_seq = (seq + 1) & 0xFFFF
                    return
                self.seq_jumps += 1
                self._start_run(seq)
            else:
                behind = 65536 - ahead
                if behind < DUP_WINDOW:
                    bit = 1 << behind
                    if self._window & bit:
                        self.received += 1
                        self.duplicates += 1
                        return
                    self._window |= bit
                old = True
            self.received += 1
            if old:
                self.reordered += 1
            step = ((ts - self._prev_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000  # signed 32-bit
            d = abs((arrival - self._prev_arrival_ns) - _trunc_div(step * 1_000_000_000, self._clock_rate))
            self._jitter16_ns += d - ((self._jitter16_ns + 8) >> 4)
            self.jitter_max_ns = max(self.jitter_max_ns, self._jitter16_ns >> 4)
        self._prev_arrival_ns = arrival
        self._prev_ts = ts
        if ssrc == self._own_ssrc:
            self._note_echo(seq, arrival)

    def _note_echo(self, seq: int, arrival: int) -> None:
        age = (self._last_sent_seq - seq) & 0xFFFF
        sent = self._sent[seq & _RING_MASK]
        if not self._sent_any or age >= SEND_RING or sent == NO_SEND:
            self.rtt_unmatched += 1
            return
        rtt = arrival - sent
        if rtt < -_RTT_SKEW_NS:
            self.rtt_unmatched += 1
            return
        rtt = max(0, rtt)
        if not self.rtt_count or rtt < self.rtt_min_ns:
            self.rtt_min_ns = rtt
        self.rtt_max_ns = max(self.rtt_max_ns, rtt)
        self.rtt_count += 1
        self.rtt_sum_ns += rtt

    def raw(self) -> RawQuality:
        expected = self._expected_before + self._max_ext - self._base_ext + 1 if self._seen else 0
        return RawQuality(
            ssrc=self.ssrc,
            echo=self._seen and self.ssrc == self._own_ssrc,
            received=self.received,
            expected=expected,
            lost=expected - self.received,
            duplicates=self.duplicates,
            reordered=self.reordered,
            seq_jumps=self.seq_jumps,
            ssrc_changes=self.ssrc_changes,
            jitter_ns=self._jitter16_ns >> 4,
            jitter_max_ns=self.jitter_max_ns,
            rtt_count=self.rtt_count,
            rtt_sum_ns=self.rtt_sum_ns,
            rtt_min_ns=self.rtt_min_ns,
            rtt_max_ns=self.rtt_max_ns,
            rtt_unmatched=self.rtt_unmatched,
        )


def _trunc_div(numerator: int, denominator: int) -> int:
    """Integer division toward zero, as C's: the two backends must agree to the nanosecond."""
    quotient = abs(numerator) // denominator
    return quotient if numerator >= 0 else -quotient
