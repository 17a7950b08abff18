"""One counters object per run; the screen, summary, JSON and CSV are views of it.

Writers are the engine (calls, messages), the transports (malformed input) and the
media layers (RTP); readers are the views in this package. Python integers do not
wrap, so every counter is at least 64-bit by construction.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from gossipper.stats.quality import QualitySummary

FAILURE_CLASSES = (
    "timeout",
    "unexpected_sip",
    "transport_error",
    "parse_error",
    "scenario_error",
    "cancelled",
)

# Bucket upper bounds (ms) for response times and call lengths, as SIPp's default
# ResponseTimeRepartition / CallLengthRepartition when a scenario gives none.
DEFAULT_RTT_BUCKETS_MS = (10, 20, 30, 40, 50, 100, 150, 200)
DEFAULT_CALL_LENGTH_BUCKETS_MS = (10, 50, 100, 500, 1000, 5000, 10000)

# Fine upper bounds (ms, inclusive) every duration is also counted under: ten round values a
# decade from 10 us to 100 s. SIPp's repartition above is too coarse for percentiles (a
# loopback answer of 0.3 ms falls in "<10"); with these, a percentile read from the counts is
# within one bucket (at most 25% wide) of the true value. Prometheus' histogram buckets and the
# HTML report's p50/p99 are read from them.
_DECADE_STEPS = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)
FINE_BOUNDS_MS: tuple[float, ...] = (
    *(round(step * 10.0**exponent, 6) for exponent in range(-2, 5) for step in _DECADE_STEPS),
    100_000.0,
)


@dataclass
class DurationStat:
    """Count, mean, extremes, stddev and a bucketed histogram of durations in ms."""

    bucket_bounds_ms: tuple[int, ...] = DEFAULT_RTT_BUCKETS_MS
    count: int = 0
    total_ms: float = 0.0
    total_sq_ms: float = 0.0
    min_ms: float = 0.0
    max_ms: float = 0.0
    bucket_counts: list[int] = field(default_factory=list)
    # counts under FINE_BOUNDS_MS (value <= bound), the last one past the highest bound
    fine_counts: list[int] = field(default_factory=lambda: [0] * (len(FINE_BOUNDS_MS) + 1))
    # -trace_rtt's hook: told of every sample as it is added
    listener: Callable[[float], None] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.bucket_counts:
            self.bucket_counts = [0] * (len(self.bucket_bounds_ms) + 1)

    def add(self, value_ms: float) -> None:
        if self.listener is not None:
            self.listener(value_ms)
        if self.count == 0:
            self.min_ms = self.max_ms = value_ms
        else:
            self.min_ms = min(self.min_ms, value_ms)
            self.max_ms = max(self.max_ms, value_ms)
        self.count += 1
        self.total_ms += value_ms
        self.total_sq_ms += value_ms * value_ms
        self.fine_counts[bisect_left(FINE_BOUNDS_MS, value_ms)] += 1
        for index, bound in enumerate(self.bucket_bounds_ms):
            if value_ms < bound:
                self.bucket_counts[index] += 1
                return
        self.bucket_counts[-1] += 1

    @property
    def average_ms(self) -> float:
        return self.total_ms / self.count if self.count else 0.0

    @property
    def stddev_ms(self) -> float:
        if self.count < 2:
            return 0.0
        mean = self.average_ms
        return math.sqrt(max(0.0, self.total_sq_ms / self.count - mean * mean))

    def bucket_labels(self) -> list[str]:
        labels = [f"<{bound}" for bound in self.bucket_bounds_ms]
        labels.append(f">={self.bucket_bounds_ms[-1]}" if self.bucket_bounds_ms else "all")
        return labels


@dataclass
class StepCounters:
    """Per scenario step, the columns of SIPp's scenario screen."""

    messages: int = 0  # sent or received
    retransmissions: int = 0
    timeouts: int = 0
    unexpected: int = 0


@dataclass
class MediaCounters:
    """RTP/RTCP totals of the run, from the scale engine and the classic path."""

    engine: str = "none"
    rtp_packets_sent: int = 0
    rtp_octets_sent: int = 0
    rtp_packets_received: int = 0
    rtp_octets_received: int = 0
    rtcp_sender_reports: int = 0
    rtcp_receiver_reports: int = 0
    rtcp_packets_received: int = 0
    streams_started: int = 0
    streams_active: int = 0
    streams_active_max: int = 0
    send_errors: Counter[str] = field(default_factory=Counter)  # errno name -> count
    # errno name -> ICMP errors (port unreachable...) the scale engine's sockets reported; each
    # failed the send it met, which went again at once (api.py's ScaleEngine says how)
    icmp_unreachable: Counter[str] = field(default_factory=Counter)
    late_packets: int = 0  # sent more than 1 ms after their slot
    max_late_ms: float = 0.0
    on_time_1ms: int = 0  # sent within 1 ms of their slot
    on_time_2ms: int = 0  # sent within 2 ms of their slot
    malformed_rtp: int = 0
    malformed_rtcp: int = 0  # classic path: RTCP that did not parse (after SRTCP, if any)
    rtp_kernel_drops: int = 0  # classic path: datagrams the kernel dropped at a full RTP/RTCP socket
    rtp_check_failures: int = 0  # SIPp's rtpcheck: failed echo checks and broken rtp_echo (exit 253)
    receive: ReceiveQuality = field(default_factory=lambda: ReceiveQuality())
    # the scale engine's receive quality (gossipper/stats/quality.py): None with no scale
    # engine, False with -rtp_quality off; `quality` is then None, and may lag the rest by a
    # few seconds while a run goes on (it reads every live stream)
    quality_enabled: bool | None = None
    quality: QualitySummary | None = None


@dataclass
class ReceiveQuality:
    """What the classic path measured of the streams it received (RFC 3550 receive statistics)."""

    streams: int = 0
    packets: int = 0
    lost: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    jitter_avg_ms: float = 0.0  # mean over streams of each stream's last jitter estimate
    jitter_max_ms: float = 0.0
    echoed_packets: int = 0
    srtp_rejected: Counter[str] = field(default_factory=Counter)  # reason -> count


@dataclass
class RunCounters:
    """Everything a run counts. Cumulative; periodic views keep their own previous copy."""

    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    # the CPU the process spent on the run, its threads together (set as the run ends): the
    # figure for CPU per call or per packet, without the interpreter's start-up
    process_cpu_s: float = 0.0
    calls_created: int = 0
    calls_incoming: int = 0  # of calls_created, those a peer started (server side)
    calls_succeeded: int = 0
    calls_failed: int = 0
    calls_active: int = 0
    failure_classes: Counter[str] = field(default_factory=Counter)
    retransmissions: int = 0
    timeouts: int = 0
    unexpected_messages: int = 0
    malformed_messages: int = 0  # SIP that failed to parse
    truncated_messages: int = 0  # of malformed_messages, those a closed connection cut off
    keepalives_received: int = 0  # RFC 5626 CRLF keep-alives (pings and pongs), not malformed
    messages_too_large: int = 0  # of malformed_messages, stream messages over -buff_size, dropped
    connections_refused: int = 0  # stream connections refused past -max_socket or the open-files limit
    connections_closed_quiet: int = 0  # closed idle (-conn_idle_timeout) or stalled inside a message
    messages_sent: int = 0
    messages_received: int = 0
    dead_call_messages: int = 0  # messages for calls that no longer exist
    out_of_call_messages: int = 0
    steps: list[StepCounters] = field(default_factory=list)
    call_length: DurationStat = field(default_factory=lambda: DurationStat(DEFAULT_CALL_LENGTH_BUCKETS_MS))
    invite_rtt: DurationStat = field(default_factory=DurationStat)
    rtd: dict[str, DurationStat] = field(default_factory=dict)
    media: MediaCounters = field(default_factory=MediaCounters)
    target_rate: float = 0.0  # SIPp's rate: calls per rate period asked of the generator
    target_users: int | None = None  # -users, which SIPp's TargetRate shows instead of the rate
    offered_cps: float = 0.0  # the rate asked for, in calls per second
    rate_cap_cps: float | None = None  # the governor's cap on creation now (None: the offered rate)
    throttle_reason: str | None = None  # why creation was last capped (None: never was)
    throttled_s: float = 0.0  # how long creation ran under a cap
    calls_max_retrans: int = 0  # of the "timeout" failures, those whose retransmissions ran out
    calls_rejected: int = 0  # of calls_failed, those a stop_call ended at a recv (SIPp's rejectCall)
    auto_answered: int = 0  # unexpected PING, INFO/NOTIFY/OPTIONS/UPDATE (-aa) answered with 200
    warnings: int = 0  # entries of the error log (SIPp's WARNING)
    generic: dict[str, int] = field(default_factory=dict)  # counter="name": messages that passed
    # -trace_error_codes: status codes of unexpected responses since its last row
    collect_error_codes: bool = False
    unexpected_codes: list[int] = field(default_factory=list)

    def ensure_steps(self, count: int) -> None:
        while len(self.steps) < count:
            self.steps.append(StepCounters())

    def call_failed(self, failure_class: str) -> None:
        self.calls_failed += 1
        self.failure_classes[failure_class] += 1

    def count_message(self, counter: str | None) -> None:
        """A message of a step with counter="name" was sent or taken."""
        if counter is not None:
            self.generic[counter] = self.generic.get(counter, 0) + 1

    def unexpected_response(self, status_code: int) -> None:
        if self.collect_error_codes:
            self.unexpected_codes.append(status_code)

    def rtd_stat(self, name: str, bounds: tuple[int, ...] = DEFAULT_RTT_BUCKETS_MS) -> DurationStat:
        stat = self.rtd.get(name)
        if stat is None:
            stat = self.rtd[name] = DurationStat(bounds)
        return stat

    def elapsed_s(self, now: float | None = None) -> float:
        end = self.finished_at if self.finished_at is not None else (now or time.time())
        return max(0.0, end - self.started_at)
