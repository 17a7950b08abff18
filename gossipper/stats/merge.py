"""Counters of several runs made one: the nodes of a cluster run (issue 17) report apart.

Every count is summed and every distribution merged bucket by bucket (durations, the media
quality histograms), never averaged, so the merged summary is the one a single host that
made all of those calls and streams would have written. Figures that are extremes keep the
extreme (max lateness); `streams_active_max` adds each node's peak, which is the cluster's
peak when the nodes ran together, as a cluster run's do.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from gossipper.stats.counters import DurationStat, MediaCounters, ReceiveQuality
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
