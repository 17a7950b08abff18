"""Merged counters equal the counters of one run that saw everything: histograms merged bucket
by bucket, never averaged (what a cluster run's summary relies on)."""

from __future__ import annotations

import copy
import pickle
import time
from collections import Counter
from dataclasses import fields, replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gossipper.stats import merge
from gossipper.stats.counters import (
    DEFAULT_CALL_LENGTH_BUCKETS_MS,
    FAILURE_CLASSES,
    DurationStat,
    MediaCounters,
    RunCounters,
    StepCounters,
)
from gossipper.stats.merge import merge_durations, merge_media, merge_runs, snapshot
from gossipper.stats.quality import Distribution, QualityAggregate, StreamQuality
from gossipper.stats.report_files import RttCsv

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


# every int counter of a run, found by its default (counters.py is compiled: no annotations to
# read) so that one RunCounters gains is checked too
INT_FIELDS = [spec.name for spec in fields(RunCounters) if type(spec.default) is int]

# per part: values chosen so that the first, the last or a plain sum would each be wrong
STARTED = (10.0, 5.0, 7.0)
FINISHED = (50.0, 60.0, 55.0)
STEP_COUNTS = (1, 3, 2)
RTD_NAMES = (("a",), ("b", "a"), ("c",))
TARGET_USERS = (None, 20, 30)
RATE_CAPS = (None, 4.0, 6.0)
THROTTLE_REASONS = (None, "cpu", "loss")
THROTTLED = (1.0, 3.0, 2.0)
COLLECT = (False, True, False)
CODES = ((), (486, 503), (404,))


def _samples(index: int, field_name: str) -> list[float]:
    # halves: their sums and squares are exact whatever the order they are added in
    return [index * 7.5 + len(field_name) + k * 0.5 for k in range(index + 2)]


def _part(index: int, whole: RunCounters) -> RunCounters:
    """A node's counters, each field set to a value of its own; `whole` is told of the same events."""
    n = index + 1
    part = RunCounters(started_at=STARTED[index], finished_at=FINISHED[index])
    for offset, name in enumerate(INT_FIELDS):
        setattr(part, name, 100 * n + offset)
    part.failure_classes = Counter({"timeout": n, FAILURE_CLASSES[n]: 1})
    part.steps = [StepCounters(10 * n + s, n, s, 1) for s in range(STEP_COUNTS[index])]
    for stat, name in ((part.call_length, "call_length"), (part.invite_rtt, "invite_rtt")):
        for value in _samples(index, name):
            stat.add(value)
            getattr(whole, name).add(value)
    for name in RTD_NAMES[index]:
        for value in _samples(index, name):
            part.rtd_stat(name).add(value)
            whole.rtd_stat(name).add(value)
    part.media = MediaCounters(engine="c", rtp_packets_sent=10 * n, max_late_ms=float(n))
    part.target_rate = 1.5 * n
    part.process_cpu_s = 0.25 * n
    part.target_users = TARGET_USERS[index]
    part.offered_cps = 10.0 * n
    part.rate_cap_cps = RATE_CAPS[index]
    part.throttle_reason = THROTTLE_REASONS[index]
    part.throttled_s = THROTTLED[index]
    part.generic = {"shared": n, f"g{index}": index}
    part.collect_error_codes = COLLECT[index]
    part.unexpected_codes = list(CODES[index])
    return part


@pytest.mark.parametrize("count", [2, 3])
def test_merged_runs_follow_each_fields_rule(count: int) -> None:
    whole = RunCounters()
    parts = [_part(index, whole) for index in range(count)]
    ns = range(1, count + 1)
    users = [users for users in TARGET_USERS[:count] if users is not None]
    expected: dict[str, object] = {
        **{name: sum(100 * n + offset for n in ns) for offset, name in enumerate(INT_FIELDS)},
        "started_at": 5.0,
        "finished_at": 60.0,
        "failure_classes": Counter({"timeout": sum(ns), **{FAILURE_CLASSES[n]: 1 for n in ns}}),
        "steps": [
            StepCounters(
                sum(10 * n + s for n in ns if STEP_COUNTS[n - 1] > s),
                sum(n for n in ns if STEP_COUNTS[n - 1] > s),
                s * sum(1 for n in ns if STEP_COUNTS[n - 1] > s),
                sum(1 for n in ns if STEP_COUNTS[n - 1] > s),
            )
            for s in range(max(STEP_COUNTS[:count]))
        ],
        "call_length": whole.call_length,
        "invite_rtt": whole.invite_rtt,
        "rtd": whole.rtd,
        "media": MediaCounters(engine="c", rtp_packets_sent=10 * sum(ns), max_late_ms=float(count)),
        "target_rate": 1.5 * sum(ns),
        "process_cpu_s": 0.25 * sum(ns),
        "target_users": sum(users),
        "offered_cps": 10.0 * sum(ns),
        # the uncapped first node offers its whole 10 cps
        "rate_cap_cps": {2: 10.0 + 4.0, 3: 10.0 + 4.0 + 6.0}[count],
        "throttle_reason": "cpu",
        "throttled_s": 3.0,
        "generic": {"shared": sum(ns), **{f"g{index}": index for index in range(count)}},
        "collect_error_codes": True,
        "unexpected_codes": [code for codes in CODES[:count] for code in codes],
    }
    assert set(expected) == {spec.name for spec in fields(RunCounters)}
    merged = merge_runs(parts)
    for name, value in expected.items():
        assert getattr(merged, name) == value, name
    assert list(merged.rtd) == ["a", "b", "c"][:count]
    assert list(merged.generic) == ["shared", *(f"g{index}" for index in range(count))]
    assert merged.call_length.bucket_bounds_ms == DEFAULT_CALL_LENGTH_BUCKETS_MS


def test_merging_leaves_the_parts_as_they_were() -> None:
    parts = [_part(index, RunCounters()) for index in range(3)]
    parts[0].media.send_errors["EAGAIN"] = 2
    before = copy.deepcopy(parts)
    merged = merge_runs(parts)
    assert parts == before
    # nothing of the result is a part's own object: changing it changes no part
    merged.failure_classes["timeout"] += 1
    merged.steps[0].messages += 1
    merged.call_length.add(1.0)
    merged.invite_rtt.add(1.0)
    merged.rtd["a"].add(1.0)
    merged.media.send_errors["EAGAIN"] += 1
    merged.generic["shared"] += 1
    merged.unexpected_codes.append(500)
    assert parts == before
    assert merge_runs(parts[:1]) == parts[0]


def test_no_parts_merge_to_fresh_counters() -> None:
    assert replace(merge_runs([]), started_at=0.0) == RunCounters(started_at=0.0)


def test_optional_figures_stay_unset_unless_a_part_has_them() -> None:
    parts = [RunCounters(offered_cps=5.0, finished_at=9.0), RunCounters(offered_cps=7.0)]
    merged = merge_runs(parts)
    assert merged.target_users is None
    assert merged.rate_cap_cps is None
    assert merged.throttle_reason is None
    assert merged.finished_at is None  # a node still running: so is the run


def test_a_field_merge_runs_has_no_rule_for_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # as a field RunCounters gained would be (counters.py is compiled: no subclass to grow it)
    monkeypatch.delitem(merge._RUN_MERGERS, "warnings")
    with pytest.raises(TypeError, match="warnings"):
        merge_runs([RunCounters(), RunCounters()])
    with pytest.raises(TypeError, match="warnings"):
        merge_runs([])


# one event of a call, told to a node and to the one host that made every call
EVENTS = st.one_of(
    st.tuples(st.just("created"), st.integers(0, 1)),
    st.tuples(st.just("failed"), st.sampled_from(FAILURE_CLASSES)),
    st.tuples(st.just("call_length"), st.integers(0, 400_000)),
    st.tuples(st.just("invite_rtt"), st.integers(0, 400_000)),
    st.tuples(st.sampled_from(["rtd a", "rtd b", "rtd c"]), st.integers(0, 400_000)),
    st.tuples(st.just("counter"), st.sampled_from(["x", "y", "z"])),
    st.tuples(st.just("step"), st.integers(0, 4)),
    st.tuples(st.just("code"), st.integers(400, 699)),
)


def _tell(counters: RunCounters, kind: str, value: int | str) -> None:
    if kind == "created":
        counters.calls_created += 1
        counters.calls_incoming += int(value)
    elif kind == "failed":
        counters.call_failed(str(value))
    elif kind in ("call_length", "invite_rtt"):
        getattr(counters, kind).add(int(value) / 4)  # quarters: exact sums in any order
    elif kind.startswith("rtd "):
        counters.rtd_stat(kind[4:]).add(int(value) / 4)
    elif kind == "counter":
        counters.count_message(str(value))
    elif kind == "step":
        counters.ensure_steps(int(value) + 1)
        counters.steps[int(value)].messages += 1
    else:
        counters.unexpected_response(int(value))


@given(nodes=st.lists(st.lists(EVENTS, max_size=30), min_size=1, max_size=4))
def test_merged_runs_equal_one_run_of_every_event(nodes: list[list[tuple[str, int | str]]]) -> None:
    whole = RunCounters(started_at=0.0, collect_error_codes=True)
    parts = []
    for events in nodes:
        part = RunCounters(started_at=0.0, collect_error_codes=True)
        for kind, value in events:
            _tell(part, kind, value)
            _tell(whole, kind, value)
        parts.append(part)
    merged = merge_runs(parts)
    assert merged == whole
    assert list(merged.rtd) == list(whole.rtd)
    assert list(merged.generic) == list(whole.generic)


def test_a_snapshot_pickles_without_the_listeners_the_counters_keep(tmp_path: Path) -> None:
    trace = RttCsv(str(tmp_path / "rtt.csv"), 0.0, ";", 1)
    counters = RunCounters()
    counters.rtd_stat("a").listener = listener = trace.listener("a", time.time)
    counters.rtd_stat("a").add(2.0)
    with pytest.raises((TypeError, AttributeError, pickle.PicklingError)):
        pickle.dumps(counters)
    copied = snapshot(counters)
    assert pickle.loads(pickle.dumps(copied)) == copied
    assert copied.rtd["a"].listener is None
    assert copied == counters  # everything else is there (listeners are not compared)
    assert copied.rtd["a"] is not counters.rtd["a"]
    assert counters.rtd["a"].listener is listener
    counters.rtd_stat("a").add(3.0)
    trace.close()
    assert (tmp_path / "rtt.csv").read_text(encoding="utf-8").count(";a\n") == 2
    assert copied.rtd["a"].count == 1
