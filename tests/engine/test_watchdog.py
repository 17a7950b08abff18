"""SIPp's watchdog on a virtual clock: late firings trip it, too many trips end the run."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from gossipper.engine.settings import WatchdogSettings
from gossipper.engine.watchdog import Watchdog


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


_LOOP = asyncio.new_event_loop()  # timers are armed on it, never run: tests fire by hand


@pytest.fixture(scope="module", autouse=True)
def _close_loop() -> Iterator[None]:
    yield
    _LOOP.close()


def _watchdog(settings: WatchdogSettings) -> tuple[Watchdog, _Clock, list[str], list[str]]:
    clock, warnings, failures = _Clock(), [], []
    watchdog = Watchdog(_LOOP, settings, warnings.append, failures.append, clock)
    watchdog.start()
    watchdog.stop()  # the test fires it by hand, at the clock's times
    return watchdog, clock, warnings, failures


def _fire_at(watchdog: Watchdog, clock: _Clock, *times: float) -> None:
    for when in times:
        clock.now = when
        watchdog.fire()
        watchdog.stop()


def test_on_time_firings_trip_nothing() -> None:
    watchdog, clock, warnings, failures = _watchdog(WatchdogSettings())
    _fire_at(watchdog, clock, 0.4, 0.8, 1.2)
    assert (watchdog.minor_trips, watchdog.major_trips, warnings, failures) == (0, 0, [], [])


def test_minor_and_major_trips_count_and_too_many_fail_the_run() -> None:
    settings = WatchdogSettings(minor_maxtriggers=1, major_maxtriggers=5)
    watchdog, clock, warnings, failures = _watchdog(settings)
    _fire_at(watchdog, clock, 0.6)  # 600 ms after the last: minor
    _fire_at(watchdog, clock, 4.0)  # 3.4 s: major
    assert (watchdog.minor_trips, watchdog.major_trips, failures) == (1, 1, [])
    assert "minor watchdog timer (500 ms) tripped after 600 ms, 0 trips remaining" in warnings[0]
    _fire_at(watchdog, clock, 4.7)  # a second minor trip: one more than allowed
    assert failures == ["overload: the watchdog tripped its minor threshold of 500 ms 2 times (1 allowed)"]


def test_trip_counts_reset_after_a_quiet_period() -> None:
    watchdog, clock, warnings, _ = _watchdog(WatchdogSettings(reset_ms=1000))
    _fire_at(watchdog, clock, 0.6, 1.0, 1.4, 1.8)
    assert watchdog.minor_trips == 0  # more than 1 s after the trip at 0.6 s
    assert "trip counts reset" in warnings[-1]


def test_interval_zero_is_no_watchdog() -> None:
    watchdog = Watchdog(_LOOP, WatchdogSettings(interval_ms=0), print, print)
    watchdog.start()
    assert not watchdog.armed
    watchdog = Watchdog(_LOOP, WatchdogSettings(), print, print)
    watchdog.start()
    assert watchdog.armed
    watchdog.stop()
