"""The split of a run over nodes: shares add up exactly, differ by at most one unit, and the
resources each node alone uses (media ports, call numbers, Call-IDs) never overlap."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gossipper.cluster.split import (
    CALL_NUMBER_STRIDE,
    RunTotals,
    plan,
    split_count,
    split_rate,
)
from gossipper.errors import InvalidValue

NODES = st.integers(min_value=1, max_value=64)


@given(total=st.integers(min_value=0, max_value=10**12), nodes=NODES)
def test_count_shares_add_up_and_differ_by_at_most_one(total: int, nodes: int) -> None:
    shares = split_count(total, nodes)
    assert len(shares) == nodes
    assert sum(shares) == total
    assert max(shares) - min(shares) <= 1
    assert shares == sorted(shares, reverse=True)  # the extra units go to the first nodes


@given(
    total=st.floats(min_value=0.0, max_value=1e9, allow_nan=False, allow_infinity=False)
    | st.floats(min_value=0.0, max_value=1e-300, allow_subnormal=True),
    nodes=NODES,
)
def test_rate_shares_sum_to_the_rate_exactly(total: float, nodes: int) -> None:
    shares = split_rate(total, nodes)
    assert len(shares) == nodes
    assert sum(shares) == total  # left to right, as any caller adds them: exact, not approximate
    assert math.fsum(shares) == total
    assert all(share >= 0.0 for share in shares)
    assert max(shares) - min(shares) <= 1e-9 * max(total, 1e-300)


def test_rate_that_floats_cannot_divide_evenly() -> None:
    shares = split_rate(100.0, 3)
    assert sum(shares) == 100.0
    assert shares[0] == pytest.approx(100 / 3)


def test_bad_node_counts_and_totals_are_refused() -> None:
    with pytest.raises(InvalidValue):
        split_count(5, 0)
    with pytest.raises(InvalidValue):
        split_count(-1, 2)
    with pytest.raises(InvalidValue):
        split_rate(float("nan"), 2)


TOTALS = st.builds(
    RunTotals,
    rate=st.floats(min_value=0.0, max_value=10_000.0, allow_nan=False),
    max_calls=st.integers(min_value=0, max_value=10**7),
    max_concurrent=st.integers(min_value=0, max_value=10**6),
    streams=st.integers(min_value=0, max_value=30_000),
    users=st.integers(min_value=0, max_value=10**5),
    rate_increase=st.floats(min_value=0.0, max_value=1_000.0, allow_nan=False),
    rate_max=st.floats(min_value=0.0, max_value=10_000.0, allow_nan=False),
    base_port=st.integers(min_value=1024, max_value=40_000),
    max_port=st.just(65535),
)


@given(totals=TOTALS, nodes=st.integers(min_value=1, max_value=16))
def test_plan_shares_add_up(totals: RunTotals, nodes: int) -> None:
    shares = plan(totals, nodes)
    assert [share.index for share in shares] == list(range(nodes))
    assert sum(share.rate for share in shares) == totals.rate
    assert sum(share.max_calls for share in shares) == totals.max_calls
    assert sum(share.max_concurrent for share in shares) == totals.max_concurrent
    assert sum(share.streams for share in shares) == totals.streams
    assert sum(share.users for share in shares) == totals.users
    assert sum(share.rate_increase for share in shares) == totals.rate_increase
    assert sum(share.rate_max for share in shares) == totals.rate_max
    for field in ("max_calls", "max_concurrent", "streams", "users"):
        values = [getattr(share, field) for share in shares]
        assert max(values) - min(values) <= 1


@given(totals=TOTALS, nodes=st.integers(min_value=1, max_value=16))
def test_port_slices_are_disjoint_inside_the_range_and_hold_each_nodes_streams(
    totals: RunTotals, nodes: int
) -> None:
    shares = plan(totals, nodes)
    ports: set[int] = set()
    for share in shares:
        assert totals.base_port <= share.base_port <= share.max_port <= totals.max_port
        slice_ports = set(range(share.base_port, share.max_port + 1))
        assert not ports & slice_ports
        ports |= slice_ports
        pairs_in_range = (totals.max_port - totals.base_port + 1) // 2
        if totals.streams <= pairs_in_range:  # a run that fits one host fits the slices
            assert share.streams <= share.port_pairs
    pair_counts = [share.port_pairs for share in shares]
    assert max(pair_counts) - min(pair_counts) <= 1


@given(totals=TOTALS, nodes=st.integers(min_value=1, max_value=16))
def test_call_numbers_and_call_ids_cannot_collide(totals: RunTotals, nodes: int) -> None:
    shares = plan(totals, nodes)
    assert len({share.call_id_prefix for share in shares}) == nodes
    # no prefix is the start of another's, so prefixed Call-IDs differ whatever follows
    prefixes = [share.call_id_prefix for share in shares]
    assert not any(a != b and b.startswith(a) for a in prefixes for b in prefixes)
    spans = [
        (
            share.call_number_base,
            share.call_number_base + (share.max_calls if totals.max_calls else CALL_NUMBER_STRIDE),
        )
        for share in shares
    ]
    for (start_a, end_a), (start_b, end_b) in pairwise(spans):
        assert start_a <= end_a <= start_b <= end_b


def test_nodes_left_without_work_are_idle() -> None:
    shares = plan(RunTotals(rate=10.0, max_calls=2), 3)
    assert [share.idle for share in shares] == [False, False, True]
    assert [share.max_calls for share in shares] == [1, 1, 0]
    shares = plan(RunTotals(streams=0, rate=10.0), 3)  # -m 0: no limit, every node works
    assert not any(share.idle for share in shares)
    shares = plan(RunTotals(users=2), 3)  # -users 0 would mean a rate-driven node
    assert [share.idle for share in shares] == [False, False, True]


def test_a_share_describes_itself_in_a_line() -> None:
    streams, calls = (
        plan(RunTotals(streams=3, base_port=6000, max_port=6011), 2)[0],
        plan(RunTotals(rate=10.0, max_calls=5, max_concurrent=4, base_port=6000, max_port=6011), 2)[1],
    )
    assert streams.describe() == "2 stream(s) from ports 6000..6005"
    assert calls.describe() == (
        "-r 5, -m 2, -l 2, media ports 6006..6011, calls numbered from 4, Call-IDs n1-..."
    )


def test_too_few_ports_for_the_nodes_is_refused() -> None:
    with pytest.raises(InvalidValue, match="fewer than 3 nodes"):
        plan(RunTotals(base_port=6000, max_port=6003), 3)
