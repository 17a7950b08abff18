"""Loss, duplicates, reordering and jitter as RFC 3550 appendix A defines them."""

from __future__ import annotations

import pytest

from gossipper.media.classic.receive_stats import ReceiveStats
from gossipper.media.classic.rtcp import ntp_middle

STEP = 160
INTERVAL = 0.02


def feed(stats: ReceiveStats, sequences: list[int], delays: list[float] | None = None) -> None:
    """Packet i carries sequence s and the timestamp of slot s; arrives at slot time + delay."""
    for index, sequence in enumerate(sequences):
        delay = delays[index] if delays else 0.0
        stats.record(
            sequence & 0xFFFF, (sequence * STEP) & 0xFFFFFFFF, 160, 100.0 + sequence * INTERVAL + delay
        )


def test_clean_stream() -> None:
    stats = ReceiveStats(1, 8000, 0)
    feed(stats, list(range(100)))
    assert (stats.packets, stats.expected, stats.lost, stats.duplicates, stats.out_of_order) == (
        100,
        100,
        0,
        0,
        0,
    )
    assert stats.jitter == pytest.approx(0.0, abs=1e-6)
    assert stats.octets == 16000


def test_loss_duplicates_and_reordering() -> None:
    stats = ReceiveStats(1, 8000, 0)
    feed(stats, [0, 1, 2, 4, 3, 3, 6, 7, 7, 9])  # 5 and 8 lost, 3 late, 3 and 7 repeated
    assert stats.packets == 8
    assert stats.expected == 10
    assert stats.lost == 2
    assert stats.duplicates == 2
    assert stats.out_of_order == 1


def test_sequence_wrap() -> None:
    stats = ReceiveStats(1, 8000, 0)
    feed(stats, list(range(65530, 65546)))
    assert stats.expected == 16 and stats.lost == 0
    assert stats.highest_sequence == (1 << 16) | (65545 & 0xFFFF)


def test_jitter_follows_the_estimator() -> None:
    """Alternating 0/10 ms delays: |D| is 80 ticks each packet after the first."""
    stats = ReceiveStats(1, 8000, 0)
    sequences = list(range(50))
    feed(stats, sequences, [0.010 * (i % 2) for i in sequences])
    expected = 0.0
    for _ in sequences[1:]:
        expected += (80 - expected) / 16
    assert stats.jitter == pytest.approx(expected, rel=1e-6)
    assert stats.jitter_ms == pytest.approx(expected / 8, rel=1e-6)


def test_report_block_interval_fraction_and_lsr() -> None:
    stats = ReceiveStats(0xABC, 8000, 0)
    feed(stats, [0, 1, 2, 3])  # nothing lost
    first = stats.report_block(200.0)
    assert (first.fraction_lost, first.cumulative_lost, first.highest_sequence) == (0, 0, 3)
    feed(stats, [4, 6, 8, 9])  # 5 and 7 lost out of 6 expected
    stats.note_sender_report(0x0001_2345_6789_0000, 199.5)
    second = stats.report_block(200.0)
    assert second.fraction_lost == (2 << 8) // 6
    assert second.cumulative_lost == 2
    assert second.last_sr == ntp_middle(0x0001_2345_6789_0000)
    assert second.delay_since_last_sr == 32768  # half a second in 1/65536 s
