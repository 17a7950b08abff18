"""Merged counters equal the counters of one run that saw everything: histograms merged bucket
by bucket, never averaged (what a cluster run's summary relies on)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gossipper.stats.counters import DurationStat, MediaCounters
from gossipper.stats.merge import merge_durations, merge_media
from gossipper.stats.quality import Distribution, QualityAggregate, StreamQuality

VALUES = st.lists(st.floats(min_value=0.0, max_value=1e5, allow_nan=False), max_size=60)


@given(parts=st.lists(VALUES, min_size=1, max_size=5))
def test_merged_durations_equal_one_stat_of_every_sample(parts: list[list[float]]) -> None:
    stats = []
    whole = DurationStat()
    for values in parts:
        stat = DurationStat()
        for value in values:
            stat.add(value)
            whole.add(value)
        stats.append(stat)
    merged = merge_durations(stats)
    assert merged.count == whole.count
    assert merged.bucket_counts == whole.bucket_counts
    assert merged.fine_counts == whole.fine_counts
    assert (merged.min_ms, merged.max_ms) == (whole.min_ms, whole.max_ms)
    assert merged.total_ms == pytest.approx(whole.total_ms)


def test_durations_with_other_buckets_are_not_merged() -> None:
    with pytest.raises(ValueError):
        merge_durations([DurationStat((1, 2)), DurationStat((5,))])


@given(parts=st.lists(VALUES, min_size=1, max_size=5))
def test_merged_distributions_answer_the_percentiles_of_every_value(parts: list[list[float]]) -> None:
    whole = Distribution()
    merged = Distribution()
    for values in parts:
        part = Distribution()
        for value in values:
            part.add(value)
            whole.add(value)
        merged.merge(part)
    assert merged.buckets == whole.buckets
    assert merged.to_dict() == whole.to_dict()


def _stream(port: int, loss: float, mos: float) -> StreamQuality:
    return StreamQuality(
        f"127.0.0.1:{port}",
        "127.0.0.1:40000",
        "PCMU/8000",
        received=90,
        expected=100,
        lost=10,
        loss_percent=loss,
        jitter_ms=1.0,
        mos=mos,
    )


def test_merged_quality_keeps_the_worst_streams_of_every_node() -> None:
    node_a, node_b, whole = QualityAggregate(), QualityAggregate(), QualityAggregate()
    for index in range(30):
        stream = _stream(6000 + 2 * index, loss=index / 10, mos=4.4 - index / 100)
        (node_a if index % 2 else node_b).add(stream)
        whole.add(stream)
    node_a.merge(node_b)
    merged, expected = node_a.summary("m").to_dict(), whole.summary("m").to_dict()
    for name in ("stream_loss_percent", "stream_jitter_ms", "stream_mos"):
        # sums added in another order may round the last digit of a mean apart
        assert merged[name].pop("mean") == pytest.approx(expected[name].pop("mean"), abs=0.011)
    assert merged == expected


def test_merged_media_sums_counts_and_keeps_extremes() -> None:
    a = MediaCounters(engine="c", rtp_packets_sent=10, late_packets=1, max_late_ms=2.5, streams_started=2)
    a.send_errors = Counter({"EAGAIN": 2})
    b = MediaCounters(engine="c", rtp_packets_sent=7, max_late_ms=0.5, streams_started=3)
    b.send_errors = Counter({"EAGAIN": 1, "ENOBUFS": 4})
    merged = merge_media([a, b])
    assert merged.rtp_packets_sent == 17
    assert merged.late_packets == 1
    assert merged.streams_started == 5
    assert merged.max_late_ms == 2.5
    assert merged.send_errors == Counter({"EAGAIN": 3, "ENOBUFS": 4})
    assert merged.engine == "c"
    assert merged.quality is None and merged.quality_enabled is None
