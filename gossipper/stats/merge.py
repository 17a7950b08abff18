"""Counters of several runs made one: the nodes of a cluster run (issue 17) report apart.

Every count is summed and every distribution merged bucket by bucket (durations, the media
quality histograms), never averaged, so the merged summary is the one a single host that
made all of those calls and streams would have written. Figures that are extremes keep the
extreme (max lateness, the earliest start, the last finish); `streams_active_max` adds each
node's peak, which is the cluster's peak when the nodes ran together, as a cluster run's do.
Rates add too: each node was asked for its share of the cluster's.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields
from typing import Any

from gossipper.stats.counters import (
    DurationStat,
    MediaCounters,
    ReceiveQuality,
    RunCounters,
    StepCounters,
)
from gossipper.stats.quality import QualityAggregate, QualitySummary

_SUMMED_MEDIA = (
    "rtp_packets_sent",
    "rtp_octets_sent",
    "rtp_packets_received",
    "rtp_octets_received",
    "rtcp_sender_reports",
    "rtcp_receiver_reports",
    "rtcp_packets_received",
    "streams_started",
    "streams_active",
    "streams_active_max",
    "late_packets",
    "on_time_1ms",
    "on_time_2ms",
    "malformed_rtp",
    "malformed_rtcp",
    "rtp_kernel_drops",
    "rtp_check_failures",
)


def merge_durations(stats: Iterable[DurationStat]) -> DurationStat:
    """One DurationStat holding every sample of `stats` (which share their bucket bounds)."""
    parts = list(stats)
    merged = DurationStat(parts[0].bucket_bounds_ms if parts else DurationStat().bucket_bounds_ms)
    for part in parts:
        if part.bucket_bounds_ms != merged.bucket_bounds_ms:
            raise ValueError("durations with different bucket bounds cannot be merged")
        if not part.count:
            continue
        if merged.count:
            merged.min_ms = min(merged.min_ms, part.min_ms)
            merged.max_ms = max(merged.max_ms, part.max_ms)
        else:
            merged.min_ms, merged.max_ms = part.min_ms, part.max_ms
        merged.count += part.count
        merged.total_ms += part.total_ms
        merged.total_sq_ms += part.total_sq_ms
        merged.bucket_counts = [a + b for a, b in zip(merged.bucket_counts, part.bucket_counts, strict=True)]
        merged.fine_counts = [a + b for a, b in zip(merged.fine_counts, part.fine_counts, strict=True)]
    return merged


def merge_media(parts: Iterable[MediaCounters]) -> MediaCounters:
    """The media counters of every part together."""
    parts = list(parts)
    merged = MediaCounters()
    engines = sorted({part.engine for part in parts if part.engine != "none"})
    merged.engine = "+".join(engines) if engines else "none"
    for name in _SUMMED_MEDIA:
        setattr(merged, name, sum(getattr(part, name) for part in parts))
    merged.send_errors = sum((part.send_errors for part in parts), Counter())
    merged.icmp_unreachable = sum((part.icmp_unreachable for part in parts), Counter())
    merged.max_late_ms = max((part.max_late_ms for part in parts), default=0.0)
    merged.receive = _merge_receive([part.receive for part in parts])
    merged.quality_enabled, merged.quality = _merge_quality(parts)
    return merged


def _merge_receive(parts: list[ReceiveQuality]) -> ReceiveQuality:
    merged = ReceiveQuality()
    for part in parts:
        merged.streams += part.streams
        merged.packets += part.packets
        merged.lost += part.lost
        merged.duplicates += part.duplicates
        merged.out_of_order += part.out_of_order
        merged.echoed_packets += part.echoed_packets
        merged.jitter_max_ms = max(merged.jitter_max_ms, part.jitter_max_ms)
        merged.srtp_rejected += part.srtp_rejected
    # a mean over streams: weighted by each part's streams, as one host's mean would be
    if merged.streams:
        merged.jitter_avg_ms = sum(part.jitter_avg_ms * part.streams for part in parts) / merged.streams
    return merged


def _merge_quality(parts: list[MediaCounters]) -> tuple[bool | None, QualitySummary | None]:
    enabled = [part.quality_enabled for part in parts if part.quality_enabled is not None]
    if not enabled:
        return None, None
    summaries = [part.quality for part in parts if part.quality is not None]
    if not summaries:
        return any(enabled), None
    aggregate = QualityAggregate()
    for summary in summaries:
        aggregate.merge(summary.aggregate)
    return True, aggregate.summary(summaries[0].model)


# counts, and the rates each node was asked for (a node offers its share of the cluster's rate)
_SUMMED_RUN = (
    "calls_created",
    "calls_incoming",
    "calls_succeeded",
    "calls_failed",
    "calls_active",
    "retransmissions",
    "timeouts",
    "unexpected_messages",
    "malformed_messages",
    "truncated_messages",
    "keepalives_received",
    "messages_too_large",
    "connections_refused",
    "connections_closed_quiet",
    "messages_sent",
    "messages_received",
    "dead_call_messages",
    "out_of_call_messages",
    "calls_max_retrans",
    "calls_rejected",
    "auto_answered",
    "warnings",
    "target_rate",
    "offered_cps",
    "process_cpu_s",  # each node's process: the cluster's CPU is theirs together
)


def _summed(name: str) -> Callable[[Sequence[RunCounters]], object]:
    return lambda parts: sum(getattr(part, name) for part in parts)


def _failure_classes(parts: Sequence[RunCounters]) -> Counter[str]:
    merged: Counter[str] = Counter()
    for part in parts:
        merged.update(part.failure_classes)  # unlike +, keeps a class counted 0
    return merged


def _steps(parts: Sequence[RunCounters]) -> list[StepCounters]:
    merged = [StepCounters() for _ in range(max(len(part.steps) for part in parts))]
    for part in parts:
        for total, step in zip(merged, part.steps, strict=False):
            for spec in fields(StepCounters):
                setattr(total, spec.name, getattr(total, spec.name) + getattr(step, spec.name))
    return merged


def _rtd(parts: Sequence[RunCounters]) -> dict[str, DurationStat]:
    names = dict.fromkeys(name for part in parts for name in part.rtd)
    return {name: merge_durations(part.rtd[name] for part in parts if name in part.rtd) for name in names}


def _generic(parts: Sequence[RunCounters]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for part in parts:
        for name, count in part.generic.items():
            merged[name] = merged.get(name, 0) + count
    return merged


def _target_users(parts: Sequence[RunCounters]) -> int | None:
    users = [part.target_users for part in parts if part.target_users is not None]
    return sum(users) if users else None


def _rate_cap_cps(parts: Sequence[RunCounters]) -> float | None:
    if all(part.rate_cap_cps is None for part in parts):
        return None
    # a node under no cap creates at its whole offered share
    return sum(part.offered_cps if part.rate_cap_cps is None else part.rate_cap_cps for part in parts)


def _finished_at(parts: Sequence[RunCounters]) -> float | None:
    ends = [part.finished_at for part in parts if part.finished_at is not None]
    return max(ends) if len(ends) == len(parts) else None  # the run goes on while a node does


_RUN_MERGERS: dict[str, Callable[[Sequence[RunCounters]], object]] = {
    **{name: _summed(name) for name in _SUMMED_RUN},
    "started_at": lambda parts: min(part.started_at for part in parts),
    "finished_at": _finished_at,
    "failure_classes": _failure_classes,
    "steps": _steps,
    "call_length": lambda parts: merge_durations(part.call_length for part in parts),
    "invite_rtt": lambda parts: merge_durations(part.invite_rtt for part in parts),
    "rtd": _rtd,
    "media": lambda parts: merge_media(part.media for part in parts),
    "target_users": _target_users,
    "rate_cap_cps": _rate_cap_cps,
    "throttle_reason": lambda parts: next(
        (part.throttle_reason for part in parts if part.throttle_reason is not None), None
    ),
    "throttled_s": lambda parts: max(part.throttled_s for part in parts),
    "generic": _generic,
    "collect_error_codes": lambda parts: any(part.collect_error_codes for part in parts),
    "unexpected_codes": lambda parts: [code for part in parts for code in part.unexpected_codes],
}


def merge_runs(parts: Sequence[RunCounters]) -> RunCounters:
    """The counters one host would hold had it made every call of `parts` (a cluster's nodes).

    Every field has a rule of its own and a field with none is refused: a default (summing,
    keeping the first) would merge a field RunCounters gains wrong without a word.
    """
    merged = RunCounters()
    unknown = [spec.name for spec in fields(merged) if spec.name not in _RUN_MERGERS]
    if unknown:
        raise TypeError(f"merge_runs has no rule for RunCounters field(s): {', '.join(unknown)}")
    if parts:
        for spec in fields(merged):
            setattr(merged, spec.name, _RUN_MERGERS[spec.name](parts))
    return merged


def snapshot(counters: RunCounters) -> RunCounters:
    """A copy of `counters` to pickle to another process (a cluster node's report).

    A DurationStat's listener (-trace_rtt's hook, which writes to this process's open file)
    means nothing elsewhere and does not pickle: the copy has none; `counters` keeps its own.
    """
    stats = [counters.call_length, counters.invite_rtt, *counters.rtd.values()]
    memo: dict[int, Any] = {id(stat.listener): None for stat in stats if stat.listener is not None}
    return copy.deepcopy(counters, memo)
