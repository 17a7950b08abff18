"""Aggregates of stream quality: percentiles within their bucket width, worst streams, bounded memory."""

from __future__ import annotations

import random

import pytest

from gossipper.stats.quality import (
    BUCKET_GROWTH,
    WORST_STREAMS,
    Distribution,
    QualityAggregate,
    StreamQuality,
)


def test_percentiles_are_within_a_bucket_of_the_exact_ones() -> None:
    values = [random.uniform(0.0, 50.0) for _ in range(20_000)]
    distribution = Distribution()
    for value in values:
        distribution.add(value)
    ordered = sorted(values)
    for share in (0.01, 0.5, 0.9, 0.99):
        exact = ordered[max(0, int(share * len(ordered)) - 1)]
        assert exact <= distribution.quantile(share) * (1 + 1e-9) <= exact * BUCKET_GROWTH**2 + 1e-3
    assert distribution.quantile(1.0) == max(values) and distribution.low == min(values)
    assert len(distribution.buckets) < 2000  # bounded by the range, not by the count


def test_one_value_is_every_percentile() -> None:
    distribution = Distribution()
    for _ in range(5):
        distribution.add(4.41)
    document = distribution.to_dict(digits=2)
    assert {document[key] for key in ("min", "mean", "p1", "p50", "p99", "max")} == {4.41}
    assert Distribution().to_dict() == {"count": 0}


def stream(port: int, mos: float | None, loss: float = 0.0, received: int = 100) -> StreamQuality:
    return StreamQuality(
        local=f"127.0.0.1:{port}",
        remote="127.0.0.1:40000",
        codec="PCMU/8000",
        received=received,
        expected=received,
        loss_percent=loss,
        mos=mos,
    )


def test_the_worst_streams_are_kept_by_lowest_mos_then_most_loss() -> None:
    aggregate = QualityAggregate()
    for port in range(1000):
        aggregate.add(stream(port, 4.4 - (port % 97) / 100, loss=port / 100))
    aggregate.add(stream(5000, None, received=0))  # silent: measured, not ranked
    summary = aggregate.summary("model")
    worst = summary.aggregate.worst
    assert len(worst) == WORST_STREAMS
    assert [s.mos for s in worst] == sorted(s.mos for s in worst if s.mos is not None)
    # port 969 is the last with 969 % 97 == 96: the lowest MOS, with the most loss of those
    assert worst[0].mos == pytest.approx(4.4 - 0.96) and worst[0].loss_percent == pytest.approx(9.69)
    document = summary.to_dict()
    assert (document["streams"], document["streams_receiving"], document["streams_silent"]) == (1001, 1000, 1)


def test_a_copy_takes_live_streams_without_changing_the_ended_ones() -> None:
    ended = QualityAggregate()
    ended.add(stream(1, 4.0))
    live = ended.copy()
    live.add(stream(2, 3.0))
    assert (ended.streams, ended.mos.count, len(ended.worst)) == (1, 1, 1)
    assert (live.streams, live.mos.low) == (2, 3.0)
