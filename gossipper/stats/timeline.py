"""The run over time: cumulative samples of its counters, and the per-period rows made of two.

-stats_jsonl writes one row per -fd period (the periods of the -trace_stat CSV) and the
HTML report charts the rows of a sample a second. Both read the same row, so a chart and
a line of the JSONL file mean the same thing. A sample holds only cumulative counts (and
two gauges), so any two samples make a valid period: thinning a long run's samples for the
report drops points, never counts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from gossipper.errors import FileProblem
from gossipper.stats.counters import FAILURE_CLASSES, FINE_BOUNDS_MS, RunCounters

# The report keeps at most this many samples: past it, every other one goes (a day at one a
# second thins to one every 64 s), which keeps the HTML file and its charts light.
MAX_TIMELINE_SAMPLES = 2000


@dataclass(frozen=True)
class Sample:
    """The counters a period row is made of, as they were at `at` (cumulative, but for the gauges)."""

    at: float
    elapsed_s: float
    offered_cps: float  # gauge: the rate asked for then
    calls_active: int  # gauge
    calls_created: int
    calls_succeeded: int
    calls_failed: int
    failure_classes: tuple[int, ...]  # FAILURE_CLASSES' order
    retransmissions: int
    timeouts: int
    messages_sent: int
    messages_received: int
    malformed_messages: int
    invite_rtt: tuple[int, ...]  # fine bucket counts (FINE_BOUNDS_MS)
    rtp_packets_sent: int
    rtp_packets_received: int
    rtp_late_packets: int
    rtp_send_errors: int
    rtp_streams_active: int  # gauge

    @classmethod
    def take(cls, counters: RunCounters, now: float) -> Sample:
        media = counters.media
        return cls(
            at=now,
            elapsed_s=counters.elapsed_s(now),
            offered_cps=counters.offered_cps,
            calls_active=counters.calls_active,
            calls_created=counters.calls_created,
            calls_succeeded=counters.calls_succeeded,
            calls_failed=counters.calls_failed,
            failure_classes=tuple(counters.failure_classes[name] for name in FAILURE_CLASSES),
            retransmissions=counters.retransmissions,
            timeouts=counters.timeouts,
            messages_sent=counters.messages_sent,
            messages_received=counters.messages_received,
            malformed_messages=counters.malformed_messages,
            invite_rtt=tuple(counters.invite_rtt.fine_counts),
            rtp_packets_sent=media.rtp_packets_sent,
            rtp_packets_received=media.rtp_packets_received,
            rtp_late_packets=media.late_packets,
            rtp_send_errors=sum(media.send_errors.values()),
            rtp_streams_active=media.streams_active,
        )


def percentile_ms(fine_counts: list[int] | tuple[int, ...], quantile: float) -> float | None:
    """The quantile of durations counted under FINE_BOUNDS_MS, interpolated inside its bucket
    (None when nothing was counted); past the highest bound it is that bound."""
    total = sum(fine_counts)
    if total == 0:
        return None
    rank = quantile * total
    below = 0
    for index, count in enumerate(fine_counts):
        if count and below + count >= rank:
            if index >= len(FINE_BOUNDS_MS):
                return FINE_BOUNDS_MS[-1]
            low = FINE_BOUNDS_MS[index - 1] if index else 0.0
            high = FINE_BOUNDS_MS[index]
            return low + (high - low) * max(0.0, rank - below) / count
        below += count
    return FINE_BOUNDS_MS[-1]


def _iso_utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _per_second(count: int, period_s: float) -> float:
    return round(count / period_s, 3) if period_s > 0 else 0.0


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def period_row(before: Sample, after: Sample) -> dict[str, object]:
    """What happened between two samples: counts of the period, its rates, the gauges at its
    end, and the cumulative totals (the `*_total` keys) for a reader that missed a row."""
    period_s = max(0.0, after.at - before.at)
    rtt = [now - then for now, then in zip(after.invite_rtt, before.invite_rtt, strict=True)]
    sent = after.rtp_packets_sent - before.rtp_packets_sent
    received = after.rtp_packets_received - before.rtp_packets_received
    late = after.rtp_late_packets - before.rtp_late_packets
    created = after.calls_created - before.calls_created
    return {
        "time": _iso_utc(after.at),
        "elapsed_s": round(after.elapsed_s, 3),
        "period_s": round(period_s, 3),
        "offered_cps": round(after.offered_cps, 3),
        "achieved_cps": _per_second(created, period_s),
        "calls_created": created,
        "calls_succeeded": after.calls_succeeded - before.calls_succeeded,
        "calls_failed": after.calls_failed - before.calls_failed,
        "calls_active": after.calls_active,
        "failure_classes": {
            name: now - then
            for name, now, then in zip(
                FAILURE_CLASSES, after.failure_classes, before.failure_classes, strict=True
            )
        },
        "retransmissions": after.retransmissions - before.retransmissions,
        "timeouts": after.timeouts - before.timeouts,
        "messages_sent": after.messages_sent - before.messages_sent,
        "messages_received": after.messages_received - before.messages_received,
        "malformed_messages": after.malformed_messages - before.malformed_messages,
        "invite_rtt_count": sum(rtt),
        "invite_rtt_p50_ms": _rounded(percentile_ms(rtt, 0.50)),
        "invite_rtt_p99_ms": _rounded(percentile_ms(rtt, 0.99)),
        "rtp_packets_sent": sent,
        "rtp_packets_received": received,
        "rtp_sent_pps": _per_second(sent, period_s),
        "rtp_received_pps": _per_second(received, period_s),
        "rtp_late_packets": late,
        "rtp_late_percent": round(100.0 * late / sent, 3) if sent > 0 else 0.0,
        "rtp_send_errors": after.rtp_send_errors - before.rtp_send_errors,
        "rtp_streams_active": after.rtp_streams_active,
        "calls_created_total": after.calls_created,
        "calls_succeeded_total": after.calls_succeeded,
        "calls_failed_total": after.calls_failed,
        "rtp_packets_sent_total": after.rtp_packets_sent,
        "rtp_packets_received_total": after.rtp_packets_received,
    }


class StatsJsonl:
    """-stats_jsonl: one JSON object a line, a line per period, flushed as written so that
    `tail -f` or a CI job polling the file sees each period as it ends."""

    def __init__(self, path: str, counters: RunCounters) -> None:
        self.path = path
        self.counters = counters
        try:
            self._file: TextIO = open(path, "w", encoding="utf-8")  # noqa: SIM115 - open for the whole run
        except OSError as error:
            raise FileProblem(
                f"cannot write {path}: {error.strerror or error}", setting="stats_jsonl"
            ) from None
        self._previous = Sample.take(counters, counters.started_at)

    def start(self, now: float) -> None:
        """The first period starts here (the -trace_stat CSV's first row)."""
        self._previous = Sample.take(self.counters, now)

    def write_row(self, now: float) -> None:
        """The period since the previous row; a zero-length one (the run ending on a row) is not written."""
        sample = Sample.take(self.counters, now)
        if sample.at <= self._previous.at:
            return
        self._file.write(json.dumps(period_row(self._previous, sample)) + "\n")
        self._file.flush()
        self._previous = sample

    def close(self) -> None:
        self._file.close()


class Timeline:
    """Samples of a whole run, for the report: one per tick, thinned past MAX_TIMELINE_SAMPLES."""

    def __init__(self, limit: int = MAX_TIMELINE_SAMPLES) -> None:
        self.samples: list[Sample] = []
        self.limit = max(3, limit)

    def add(self, sample: Sample) -> None:
        if self.samples and sample.at <= self.samples[-1].at:
            return
        self.samples.append(sample)
        if len(self.samples) > self.limit:
            kept = self.samples[::2]  # the first stays, and so does the newest
            if kept[-1] is not sample:
                kept.append(sample)
            self.samples = kept

    def rows(self) -> list[dict[str, object]]:
        return [
            period_row(before, after) for before, after in zip(self.samples, self.samples[1:], strict=False)
        ]
