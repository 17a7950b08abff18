"""The health gates judge a summary document: each limit, the direction of each bound, and a
figure that could not be measured."""

from __future__ import annotations

from typing import Any

import pytest

from gossipper.stats.counters import RunCounters
from gossipper.stats.health import HealthGates, evaluate
from gossipper.stats.summary import summary_dict


def _document(**changes: Any) -> dict[str, Any]:
    counters = RunCounters(started_at=1_000.0, finished_at=1_010.0)
    counters.calls_created, counters.calls_succeeded, counters.calls_failed = 10, 8, 2
    counters.timeouts = 1
    media = counters.media
    media.rtp_packets_sent, media.late_packets, media.rtp_packets_received = 1000, 30, 900
    media.receive.streams, media.receive.packets, media.receive.lost = 2, 900, 100
    media.receive.jitter_avg_ms = 4.5
    document: dict[str, Any] = summary_dict(counters, "x")
    del document["health"]
    for key, value in changes.items():
        document[key] = value
    return document


def test_every_gate_reads_its_figure_and_bounds_it_the_right_way() -> None:
    loose = HealthGates(
        min_success_ratio=0.8,
        max_failed_calls=2,
        max_timeouts=1,
        max_rtp_loss_pct=10.0,
        max_jitter_ms=4.5,
        min_rtp_packets=900,
        max_late_pct=3.0,
    )
    report = evaluate(_document(), loose)
    assert report.passed, report.failure_lines()
    assert [(gate.name, gate.value) for gate in report.gates] == [
        ("min_success_ratio", 0.8),
        ("max_failed_calls", 2),
        ("max_timeouts", 1),
        ("max_rtp_loss_pct", 10.0),
        ("max_jitter_ms", 4.5),
        ("min_rtp_packets", 900),
        ("max_late_pct", 3.0),
    ]
    tight = HealthGates(
        min_success_ratio=0.81,
        max_failed_calls=1,
        max_timeouts=0,
        max_rtp_loss_pct=9.99,
        max_jitter_ms=4.4,
        min_rtp_packets=901,
        max_late_pct=2.9,
    )
    report = evaluate(_document(), tight)
    assert not report.passed
    assert [gate.passed for gate in report.gates] == [False] * 7


def test_a_figure_with_nothing_to_measure_fails_its_gate() -> None:
    document = _document(success_calls=0, failed_calls=0)
    document["media"]["receive"]["streams"] = 0
    report = evaluate(document, HealthGates(min_success_ratio=0.5, max_jitter_ms=100, min_mos=1.0))
    assert [(gate.value, gate.passed) for gate in report.gates] == [(None, False)] * 3
    assert report.failure_lines()[0] == (
        "health gate -health_min_success_ratio failed: success ratio not measured, "
        "where at least 0.5 was asked"
    )


def test_the_verdict_is_in_the_summary_and_says_each_failure_in_one_line() -> None:
    report = evaluate(_document(), HealthGates(max_failed_calls=1, min_success_ratio=0.5))
    assert report.as_dict() == {
        "passed": False,
        "gates": [
            {"name": "min_success_ratio", "limit": 0.5, "value": 0.8, "passed": True},
            {"name": "max_failed_calls", "limit": 1, "value": 2, "passed": False},
        ],
    }
    assert report.failure_lines() == [
        "health gate -health_max_failed_calls failed: failed calls 2, where at most 1 was asked"
    ]
    assert summary_dict(RunCounters(), "x")["health"] == {"passed": True, "gates": []}


@pytest.mark.parametrize(
    ("received", "lost", "expected"), [(900, 100, 10.0), (1000, 0, 0.0), (1010, -10, 0.0)]
)
def test_rtp_loss_is_lost_over_expected_and_duplicates_never_make_it_negative(
    received: int, lost: int, expected: float
) -> None:
    document = _document()
    document["media"]["receive"].update(packets=received, lost=lost)
    [gate] = evaluate(document, HealthGates(max_rtp_loss_pct=5.0)).gates
    assert gate.value == pytest.approx(expected)
