"""The rate governor caps creation at what the loop's core sustains, and lets go of it."""

from __future__ import annotations

import pytest

from gossipper.engine.governor import GovernorClock, RateGovernor, Window


def test_a_saturated_loop_caps_creation_at_what_its_cpu_per_call_allows() -> None:
    governor = RateGovernor()
    # 0.5 s, 0.49 s of CPU for 1,500 calls: 327 us per call, 0.8 of a core = 2,449 calls/s
    cap = governor.observe(Window(0.5, 0.49, 1500, 0.0), offered_cps=5000, creating_cps=5000)
    assert cap == pytest.approx(0.8 * 1500 / 0.49)
    assert governor.reason is not None and governor.reason.startswith("CPU-bound: the event loop used 98%")
    assert "creating 2449 of 5000 calls/s" in governor.reason


def test_still_saturated_under_the_cap_backs_off_further() -> None:
    governor = RateGovernor()
    first = governor.observe(Window(0.5, 0.5, 1000, 0.0), 5000, 5000)
    assert first == pytest.approx(1600)
    # the backlog (retransmissions) keeps the loop busy: creating fewer calls costs as much CPU
    second = governor.observe(Window(0.5, 0.5, 800, 0.0), 5000, first)
    assert second == pytest.approx(first * 0.8)
    assert governor.throttled_s == pytest.approx(0.5)


def test_a_late_window_is_saturation_even_when_the_cpu_share_reads_low() -> None:
    governor = RateGovernor()
    cap = governor.observe(Window(0.9, 0.4, 500, 0.4), 5000, 5000)
    assert cap is not None and "400 ms late" in (governor.reason or "")


def test_headroom_raises_the_cap_step_by_step_back_to_the_offered_rate() -> None:
    governor = RateGovernor()
    cap = governor.observe(Window(0.5, 0.5, 1000, 0.0), 2000, 2000)
    assert cap == pytest.approx(1600)
    caps = []
    while cap is not None and len(caps) < 10:
        cap = governor.observe(Window(0.5, 0.2, 400, 0.0), 2000, cap)
        caps.append(cap)
    assert caps[0] == pytest.approx(1600 * 1.1 + 1)
    assert caps[-1] is None and len(caps) == 3  # 1761, 1938, then past 2000: no cap


def test_an_idle_or_busy_but_sustainable_loop_is_left_alone() -> None:
    governor = RateGovernor()
    assert governor.observe(Window(0.5, 0.1, 100, 0.0), 200, 200) is None
    assert governor.observe(Window(0.5, 0.48, 0, 0.0), 200, 200) is None  # busy, but not creating
    # saturated, yet one core sustains more than is offered: nothing to cap
    assert governor.observe(Window(0.5, 0.46, 1000, 0.0), 1000, 1000) is None
    assert governor.reason is None and governor.throttled_s == 0


def test_the_clock_reads_windows_between_calls() -> None:
    readings = iter([(10.0, 1.0), (10.5, 1.25), (11.2, 1.3)])
    now = {"wall": 0.0, "cpu": 0.0}

    def advance() -> None:
        now["wall"], now["cpu"] = next(readings)

    advance()
    clock = GovernorClock(wall=lambda: now["wall"], cpu=lambda: now["cpu"])
    advance()
    window = clock.window(created=7, due_at=10.5)
    assert (window.wall_s, window.cpu_s, window.created, window.late_s) == (0.5, 0.25, 7, 0.0)
    assert window.busy == 0.5
    advance()
    late = clock.window(created=0, due_at=11.0)
    assert late.wall_s == pytest.approx(0.7) and late.late_s == pytest.approx(0.2)


def test_a_burst_of_calls_not_yet_answered_is_judged_by_the_calls_the_loop_completed() -> None:
    """At start under heavy overload the loop creates calls faster than it can answer them:
    their cost shows only when their responses come back, so the cap follows the calls that
    ended (never below half the created-based cap, as a loop just begun has ended few)."""
    governor = RateGovernor()
    cap = governor.observe(Window(0.5, 0.5, 8000, 0.0, ended=5000), 50000, 50000)
    assert cap == pytest.approx(0.8 * 5000 / 0.5)
    assert RateGovernor().observe(Window(0.5, 0.5, 8000, 0.0, ended=100), 50000, 50000) == pytest.approx(6400)


def test_a_high_offered_rate_starts_slow_and_doubles_while_the_loop_keeps_up() -> None:
    governor = RateGovernor()
    assert RateGovernor().start(2000) is None  # a rate one core surely carries starts at once
    assert governor.start(50000) == 5000
    assert governor.observe(Window(0.2, 0.05, 1000, 0.0), 50000, 5000) == 10000
    assert governor.observe(Window(0.2, 0.16, 2000, 0.0), 50000, 10000) == 10000  # busy: holds
    assert governor.observe(Window(0.2, 0.1, 2000, 0.0), 50000, 10000) == 20000
    # saturated: slow start ends, the cap follows what the loop completed
    cap = governor.observe(Window(0.2, 0.2, 4000, 0.0, ended=3000), 50000, 20000)
    assert cap == pytest.approx(0.8 * 3000 / 0.2) and not governor.starting
    assert governor.reason is not None and governor.throttled_s == pytest.approx(0.2)
    near = RateGovernor()
    assert near.start(8000) == 5000
    assert near.observe(Window(0.2, 0.05, 1000, 0.0), 8000, 5000) is None  # doubled past the offered rate
