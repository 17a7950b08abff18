"""Samples, period rows and the JSONL file: what -stats_jsonl and the HTML report read."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from gossipper.errors import FileProblem
from gossipper.stats.counters import FINE_BOUNDS_MS, DurationStat, MediaCounters, RunCounters
from gossipper.stats.timeline import Sample, StatsJsonl, Timeline, percentile_ms, period_row


def _exact_percentile(values: list[float], quantile: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(quantile * len(ordered) + 0.5) - 1)]


@pytest.mark.parametrize("seed", range(5))
def test_percentiles_from_fine_buckets_are_within_a_bucket_of_the_truth(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(-1.0, 1.2) for _ in range(5000)]  # around 0.4 ms, long tail
    stat = DurationStat()
    for value in values:
        stat.add(value)
    for quantile in (0.5, 0.9, 0.99):
        estimate = percentile_ms(stat.fine_counts, quantile)
        truth = _exact_percentile(values, quantile)
        assert estimate is not None
        assert truth / 1.25 <= estimate <= truth * 1.25, (quantile, estimate, truth)


def test_percentile_of_nothing_is_none_and_past_the_last_bound_is_that_bound() -> None:
    assert percentile_ms([0] * (len(FINE_BOUNDS_MS) + 1), 0.5) is None
    stat = DurationStat()
    stat.add(10 * FINE_BOUNDS_MS[-1])
    assert percentile_ms(stat.fine_counts, 0.99) == FINE_BOUNDS_MS[-1]


def _counters_at(created: int, sent: int, late: int, rtts: list[float]) -> RunCounters:
    counters = RunCounters(started_at=100.0)
    counters.calls_created = created
    counters.calls_succeeded = created - 1
    counters.call_failed("timeout")
    counters.calls_active = 3
    counters.offered_cps = 50.0
    for value in rtts:
        counters.invite_rtt.add(value)
    counters.media = MediaCounters(rtp_packets_sent=sent, late_packets=late, streams_active=6)
    return counters


def test_period_row_holds_the_period_its_rates_and_the_totals() -> None:
    before = Sample.take(_counters_at(100, 10_000, 10, [1.0] * 10), 110.0)
    after = Sample.take(_counters_at(300, 30_000, 110, [1.0] * 10 + [2.0] * 90 + [50.0] * 10), 112.0)
    row = period_row(before, after)
    assert row["period_s"] == 2.0
    assert row["elapsed_s"] == 12.0
    assert row["calls_created"] == 200
    assert row["achieved_cps"] == 100.0
    assert row["offered_cps"] == 50.0
    assert row["calls_active"] == 3
    assert row["rtp_packets_sent"] == 20_000
    assert row["rtp_sent_pps"] == 10_000.0
    assert row["rtp_late_packets"] == 100
    assert row["rtp_late_percent"] == 0.5
    assert row["invite_rtt_count"] == 100  # the period's 100, not the 10 before it
    assert row["invite_rtt_p50_ms"] is not None and 1.5 < float(row["invite_rtt_p50_ms"]) <= 2.0
    assert row["invite_rtt_p99_ms"] is not None and 40.0 < float(row["invite_rtt_p99_ms"]) <= 50.0
    assert row["calls_created_total"] == 300
    assert row["rtp_packets_sent_total"] == 30_000
    assert row["time"] == "1970-01-01T00:01:52.000Z"
    json.dumps(row)  # every value is JSON


def test_jsonl_writes_a_line_per_period_and_skips_an_empty_one(tmp_path: Path) -> None:
    counters = RunCounters(started_at=100.0)
    path = tmp_path / "rows.jsonl"
    rows = StatsJsonl(str(path), counters)
    rows.start(100.0)
    rows.write_row(100.0)  # the run's first -fd row comes as it starts: no period yet
    counters.calls_created = 5
    rows.write_row(101.0)
    counters.calls_created = 12
    rows.write_row(103.0)
    rows.write_row(103.0)
    assert len(path.read_text().splitlines()) == 2  # flushed as written, before close
    rows.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["calls_created"] for line in lines] == [5, 7]
    assert [line["period_s"] for line in lines] == [1.0, 2.0]
    assert [line["calls_created_total"] for line in lines] == [5, 12]


def test_jsonl_that_cannot_be_opened_names_its_setting(tmp_path: Path) -> None:
    with pytest.raises(FileProblem, match="cannot write") as caught:
        StatsJsonl(str(tmp_path / "missing" / "rows.jsonl"), RunCounters())
    assert caught.value.setting == "stats_jsonl"


def test_timeline_thins_but_keeps_the_first_and_last_and_every_count() -> None:
    counters = RunCounters(started_at=0.0)
    timeline = Timeline(limit=10)
    for second in range(101):
        counters.calls_created = second * 3
        timeline.add(Sample.take(counters, float(second)))
    samples = timeline.samples
    assert len(samples) <= 10
    assert samples[0].at == 0.0 and samples[-1].at == 100.0
    rows = timeline.rows()
    assert sum(int(row["calls_created"]) for row in rows) == 300
    assert all(float(row["achieved_cps"]) == 3.0 for row in rows)
