"""Media quality of the scale engine's streams: one stream's figures, and their aggregate.

The scale engine measures what comes back to each stream (RFC 3550 receive statistics, the
round trip of an echo, an E-model MOS; gossipper/media/scale/quality.py computes them) and
hands each stream's figures here as a StreamQuality. A run may end tens of thousands of
streams, so QualityAggregate keeps no list of them: each figure goes into a Distribution, a
sparse histogram of buckets 0.5% wide (on a log scale), which answers percentiles within
that much, and only the WORST_STREAMS worst streams are kept whole. Its memory is bounded
by the buckets in use, whatever the number of streams.

QualitySummary.to_dict() is the `media.quality` object of -summary_json (README, "Output").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

WORST_STREAMS = 10  # streams listed by name in the summary, worst MOS first
BUCKET_GROWTH = 1.005  # each bucket's upper edge is 0.5% above the one before it
BUCKET_FLOOR = 1e-3  # values up to this share the first bucket (0.001 ms, 0.001 %...)
QUANTILES = (("p1", 0.01), ("p10", 0.10), ("p50", 0.50), ("p90", 0.90), ("p99", 0.99))
_LOG_GROWTH = math.log(BUCKET_GROWTH)


@dataclass(frozen=True)
class StreamQuality:
    """What one stream measured of the RTP that came back to its port, and what it means.

    Counts follow RFC 3550 appendix A (see scalecore.h's sc_quality): `lost` is expected
    less received and goes negative when duplicates outnumber losses; `loss_percent` counts
    each sequence number once (duplicates do not make up for a loss), 0 when nothing came.
    rtt_* are None unless the stream is echoed (what comes back carries its own SSRC).
    r_factor and mos are the E-model's (gossipper/media/emodel.py), None when nothing came
    back or the codec has no E-model impairment values.
    """

    local: str  # "ip:port" the stream sends from and receives on
    remote: str  # "ip:port" it sends to
    codec: str  # "PCMU/8000"
    received: int = 0
    expected: int = 0
    lost: int = 0
    duplicates: int = 0
    reordered: int = 0
    seq_jumps: int = 0  # sequence restarts (a jump confirmed by the next packet)
    ssrc_changes: int = 0  # times another source took over
    source_ssrc: int | None = None  # the source followed; None before anything came
    echo: bool = False  # that source is the stream's own SSRC
    loss_percent: float = 0.0
    jitter_ms: float = 0.0  # RFC 3550's interarrival jitter estimate, now
    jitter_max_ms: float = 0.0  # its largest value
    rtt_samples: int = 0
    rtt_min_ms: float | None = None
    rtt_mean_ms: float | None = None
    rtt_max_ms: float | None = None
    rtt_unmatched: int = 0  # echoed packets sent too long before to find their send time
    one_way_delay_ms: float | None = None  # the mouth-to-ear delay the E-model was given
    r_factor: float | None = None
    mos: float | None = None

    @property
    def receiving(self) -> bool:
        return self.received > 0

    def to_dict(self) -> dict[str, object]:
        return {
            "local": self.local,
            "remote": self.remote,
            "codec": self.codec,
            "source_ssrc": self.source_ssrc,
            "echo": self.echo,
            "packets_received": self.received,
            "packets_expected": self.expected,
            "packets_lost": self.lost,
            "duplicates": self.duplicates,
            "reordered": self.reordered,
            "seq_jumps": self.seq_jumps,
            "ssrc_changes": self.ssrc_changes,
            "loss_percent": _round(self.loss_percent),
            "jitter_ms": _round(self.jitter_ms),
            "jitter_max_ms": _round(self.jitter_max_ms),
            "rtt_samples": self.rtt_samples,
            "rtt_min_ms": _round(self.rtt_min_ms),
            "rtt_mean_ms": _round(self.rtt_mean_ms),
            "rtt_max_ms": _round(self.rtt_max_ms),
            "rtt_unmatched": self.rtt_unmatched,
            "one_way_delay_ms": _round(self.one_way_delay_ms),
            "r_factor": _round(self.r_factor, 2),
            "mos": _round(self.mos, 2),
        }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class Distribution:
    """Count, mean, extremes and percentiles of non-negative values in bounded memory.

    A value goes to the bucket whose upper edge is the first of BUCKET_FLOOR x
    BUCKET_GROWTH^k at or above it; a percentile answers that edge (clamped to the values
    seen), so it is at most 0.5% above the true one.
    """

    count: int = 0
    total: float = 0.0
    low: float = math.inf
    high: float = 0.0
    buckets: dict[int, int] = field(default_factory=dict)

    def add(self, value: float) -> None:
        value = max(0.0, value)
        self.count += 1
        self.total += value
        self.low = min(self.low, value)
        self.high = max(self.high, value)
        key = 0 if value <= BUCKET_FLOOR else math.ceil(math.log(value / BUCKET_FLOOR) / _LOG_GROWTH - 1e-9)
        self.buckets[key] = self.buckets.get(key, 0) + 1

    def copy(self) -> Distribution:
        return Distribution(self.count, self.total, self.low, self.high, dict(self.buckets))

    def merge(self, other: Distribution) -> None:
        """Fold in another run's values (another node's streams): bucket counts add, so the
        merged percentiles are those of every value together, never an average of percentiles."""
        self.count += other.count
        self.total += other.total
        self.low = min(self.low, other.low)
        self.high = max(self.high, other.high)
        for key, count in other.buckets.items():
            self.buckets[key] = self.buckets.get(key, 0) + count

    def quantile(self, share: float) -> float:
        """The smallest bucket edge with at least `share` of the values at or below it."""
        if not self.count:
            return 0.0
        wanted = max(1, math.ceil(share * self.count - 1e-9))
        seen = 0
        for key in sorted(self.buckets):
            seen += self.buckets[key]
            if seen >= wanted:
                edge = BUCKET_FLOOR * BUCKET_GROWTH**key
                return min(max(edge, self.low), self.high)
        return self.high

    def to_dict(self, digits: int = 3) -> dict[str, object]:
        if not self.count:
            return {"count": 0}
        summary: dict[str, object] = {
            "count": self.count,
            "min": round(self.low, digits),
            "mean": round(self.total / self.count, digits),
        }
        summary.update({name: round(self.quantile(share), digits) for name, share in QUANTILES})
        summary["max"] = round(self.high, digits)
        return summary


def _badness(stream: StreamQuality) -> tuple[float, float, float]:
    """Sort key, worst first: lowest MOS, then most loss, then most jitter."""
    mos = stream.mos if stream.mos is not None else math.inf
    return (mos, -stream.loss_percent, -stream.jitter_ms)


@dataclass
class QualityAggregate:
    """Every measured stream folded in, in memory bounded whatever their number."""

    streams: int = 0  # measured: quality on
    streams_receiving: int = 0  # of which some RTP came back to
    streams_echoed: int = 0  # of which the RTP was their own, echoed
    packets_expected: int = 0
    packets_received: int = 0
    packets_lost: int = 0  # expected - received, summed (RFC 3550: may go negative)
    packets_missing: int = 0  # sequence numbers that never came, summed (never negative)
    duplicates: int = 0
    reordered: int = 0
    rtt_unmatched: int = 0
    loss_percent: Distribution = field(default_factory=Distribution)
    jitter_ms: Distribution = field(default_factory=Distribution)
    rtt_ms: Distribution = field(default_factory=Distribution)  # each echoed stream's mean
    mos: Distribution = field(default_factory=Distribution)
    worst: list[StreamQuality] = field(default_factory=list)

    def add(self, stream: StreamQuality) -> None:
        self.streams += 1
        if not stream.receiving:
            return
        self.streams_receiving += 1
        self.packets_expected += stream.expected
        self.packets_received += stream.received
        self.packets_lost += stream.lost
        self.packets_missing += max(0, stream.expected - (stream.received - stream.duplicates))
        self.duplicates += stream.duplicates
        self.reordered += stream.reordered
        self.rtt_unmatched += stream.rtt_unmatched
        self.loss_percent.add(stream.loss_percent)
        self.jitter_ms.add(stream.jitter_ms)
        if stream.echo:
            self.streams_echoed += 1
        if stream.rtt_mean_ms is not None:
            self.rtt_ms.add(stream.rtt_mean_ms)
        if stream.mos is not None:
            self.mos.add(stream.mos)
        self.worst.append(stream)
        if len(self.worst) >= 2 * WORST_STREAMS:  # sorted now and then, not on every add
            self._trim()

    def _trim(self) -> None:
        self.worst.sort(key=_badness)
        del self.worst[WORST_STREAMS:]

    def copy(self) -> QualityAggregate:
        return QualityAggregate(
            self.streams,
            self.streams_receiving,
            self.streams_echoed,
            self.packets_expected,
            self.packets_received,
            self.packets_lost,
            self.packets_missing,
            self.duplicates,
            self.reordered,
            self.rtt_unmatched,
            self.loss_percent.copy(),
            self.jitter_ms.copy(),
            self.rtt_ms.copy(),
            self.mos.copy(),
            list(self.worst),
        )

    def merge(self, other: QualityAggregate) -> None:
        """Fold in another aggregate (another node's streams) as if its streams had been added here."""
        self.streams += other.streams
        self.streams_receiving += other.streams_receiving
        self.streams_echoed += other.streams_echoed
        self.packets_expected += other.packets_expected
        self.packets_received += other.packets_received
        self.packets_lost += other.packets_lost
        self.packets_missing += other.packets_missing
        self.duplicates += other.duplicates
        self.reordered += other.reordered
        self.rtt_unmatched += other.rtt_unmatched
        self.loss_percent.merge(other.loss_percent)
        self.jitter_ms.merge(other.jitter_ms)
        self.rtt_ms.merge(other.rtt_ms)
        self.mos.merge(other.mos)
        self.worst.extend(other.worst)
        self._trim()

    def summary(self, model: str) -> QualitySummary:
        self._trim()
        return QualitySummary(self, model)


@dataclass
class QualitySummary:
    """The run's media quality as the views show it; `model` says how MOS was estimated."""

    aggregate: QualityAggregate
    model: str

    @property
    def loss_percent(self) -> float:
        """Of every sequence number expected across streams, the share that never came."""
        expected = self.aggregate.packets_expected
        return 100.0 * self.aggregate.packets_missing / expected if expected else 0.0

    def to_dict(self) -> dict[str, object]:
        a = self.aggregate
        return {
            "enabled": True,
            "streams": a.streams,
            "streams_receiving": a.streams_receiving,
            "streams_silent": a.streams - a.streams_receiving,
            "streams_echoed": a.streams_echoed,
            "packets_expected": a.packets_expected,
            "packets_received": a.packets_received,
            "packets_lost": a.packets_lost,
            "duplicates": a.duplicates,
            "reordered": a.reordered,
            "rtt_unmatched": a.rtt_unmatched,
            "loss_percent": round(self.loss_percent, 3),
            "stream_loss_percent": a.loss_percent.to_dict(),
            "stream_jitter_ms": a.jitter_ms.to_dict(),
            "stream_rtt_ms": a.rtt_ms.to_dict(),
            "stream_mos": a.mos.to_dict(digits=2),
            "worst_streams": [stream.to_dict() for stream in a.worst],
            "mos_model": self.model,
        }

    def line(self) -> str:
        """One line for the screen and the printed summary."""
        a = self.aggregate
        if not a.streams_receiving:
            return f"{a.streams} stream(s) measured, none received RTP"
        parts = [
            f"{a.streams_receiving}/{a.streams} streams receiving",
            f"loss {self.loss_percent:.2f} % (p99 stream {a.loss_percent.quantile(0.99):.2f} %)",
            f"jitter p50 {a.jitter_ms.quantile(0.5):.2f} / p99 {a.jitter_ms.quantile(0.99):.2f} ms",
        ]
        if a.rtt_ms.count:
            parts.append(f"RTT p50 {a.rtt_ms.quantile(0.5):.2f} / max {a.rtt_ms.high:.2f} ms")
        if a.mos.count:
            parts.append(f"MOS p50 {a.mos.quantile(0.5):.2f} / min {a.mos.low:.2f}")
        return ", ".join(parts)
