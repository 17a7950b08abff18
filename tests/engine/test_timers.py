"""The calls' timer wheel, on the default asyncio loop and on uvloop (what runs use)."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from gossipper.engine.timers import TimerWheel

Runner = Callable[[Coroutine[Any, Any, None]], None]
RUNNERS = pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])


@RUNNERS
def test_timers_fire_in_order_never_early_and_not_when_cancelled(run: Runner) -> None:
    async def scenario() -> None:
        wheel = TimerWheel(asyncio.get_running_loop())
        fired: list[tuple[float, float, float]] = []  # due (from before and after arming), fired
        done = asyncio.Event()
        delays = [random.uniform(0.0005, 0.2) for _ in range(500)]
        cancelled = []
        for index, delay in enumerate(delays):
            slot: list[float] = []

            def record(slot: list[float] = slot) -> None:
                fired.append((slot[0], slot[1], time.monotonic()))
                if len(fired) == len(delays) - len(cancelled):
                    done.set()

            slot.append(time.monotonic() + delay)
            timer = wheel.call_later(delay, record)
            slot.append(time.monotonic() + delay)  # the wheel read its clock between the two
            if index % 5 == 0:
                timer.cancel()
                cancelled.append(delay)
        assert wheel.pending() == len(delays) - len(cancelled)
        await asyncio.wait_for(done.wait(), 10)
        await asyncio.sleep(0.05)  # nothing cancelled fires after
        assert len(fired) == len(delays) - len(cancelled)
        assert all(at >= due_before for due_before, _, at in fired)
        # in the order they were due, to the millisecond their due time is rounded up to
        assert all(later[1] + 0.001 >= earlier[0] for earlier, later in itertools.pairwise(fired))
        assert wheel.pending() == 0
        wheel.close()

    run(scenario())


@RUNNERS
def test_a_coarse_resolution_gathers_timers_and_still_never_fires_early(run: Runner) -> None:
    """-timer_resol 10: timers due within one 10 ms tick fire in one wake-up, at or after
    their due time, as SIPp's wheel expires its paused calls once per resolution."""

    async def scenario() -> None:
        wheel = TimerWheel(asyncio.get_running_loop(), resolution_ms=10)
        fired: list[tuple[float, float]] = []  # due, fired
        done = asyncio.Event()
        delays = [index / 1000 for index in range(1, 101)]  # one per millisecond for 100 ms
        for delay in delays:
            due = time.monotonic() + delay

            def record(due: float = due) -> None:
                fired.append((due, time.monotonic()))
                if len(fired) == len(delays):
                    done.set()

            wheel.call_later(delay, record)
        await asyncio.wait_for(done.wait(), 10)
        assert all(at >= due for due, at in fired)
        assert all(at - due < 0.5 for due, at in fired)  # late by a tick, and whatever the machine adds
        # a wake-up: timers fired within 0.2 ms of each other (one _fire runs them back to back)
        gaps = [after - before for (_, before), (_, after) in itertools.pairwise(fired)]
        wake_ups = 1 + sum(1 for gap in gaps if gap > 0.0002)
        assert wake_ups <= 15  # 100 ms of 10 ms ticks (11), where 1 ms ticks would take ~100
        wheel.close()

    run(scenario())


def test_many_timers_hold_one_loop_timer() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        wheel = TimerWheel(loop)
        before = len(loop._scheduled)  # type: ignore[attr-defined]
        timers = [wheel.call_later(0.5 + index / 1000, lambda: None) for index in range(1000)]
        assert len(loop._scheduled) - before == 1  # type: ignore[attr-defined]
        for timer in timers:
            timer.cancel()
        wheel.close()

    asyncio.run(scenario())


@RUNNERS
def test_a_failing_callback_reaches_the_loop_and_stops_no_other(run: Runner) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        seen: list[object] = []
        loop.set_exception_handler(lambda _loop, context: seen.append(context["exception"]))
        wheel = TimerWheel(loop)
        fired: list[str] = []

        def fail() -> None:
            raise RuntimeError("planted")

        wheel.call_later(0.01, fail)
        wheel.call_later(0.01, lambda: fired.append("after"))
        # a timer armed from a firing one, for the same millisecond or later, still fires
        wheel.call_later(0.01, lambda: wheel.call_later(0.001, lambda: fired.append("chained")))
        await asyncio.sleep(0.1)
        assert fired == ["after", "chained"]
        assert len(seen) == 1 and str(seen[0]) == "planted"
        wheel.close()
        wheel.call_later(0.001, lambda: fired.append("closed"))
        await asyncio.sleep(0.02)
        assert fired == ["after", "chained"]

    run(scenario())


def test_milliseconds_whose_timers_were_all_cancelled_never_wake_the_loop() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        wheel = TimerWheel(loop)
        fired: list[str] = []

        def next_wakeup() -> float:
            handles = [handle for handle in loop._scheduled if not handle.cancelled()]  # type: ignore[attr-defined]
            assert len(handles) == 1
            return float(handles[0].when()) - loop.time()

        wheel.call_later(0.02, lambda: fired.append("first"))
        cancelled = [
            wheel.call_later(0.03 + index / 1000, lambda: fired.append("cancelled")) for index in range(50)
        ]
        wheel.call_later(0.3, lambda: fired.append("last"))
        both = [wheel.call_later(0.1, lambda: fired.append("kept")), wheel.call_later(0.1, lambda: None)]
        for timer in cancelled:
            timer.cancel()
        both[1].cancel()
        await asyncio.sleep(0.05)
        assert fired == ["first"]
        # the emptied milliseconds were passed over: the loop waits for the one still holding a timer
        assert 0.03 < next_wakeup() <= 0.051
        await asyncio.sleep(0.07)
        assert fired == ["first", "kept"]
        assert 0.15 < next_wakeup() <= 0.181
        # cancelling the timer the loop waits for moves the loop timer on at once
        later = wheel.call_later(0.5, lambda: fired.append("later"))
        assert wheel.pending() == 2
        early = wheel.call_later(0.01, lambda: fired.append("early"))
        assert next_wakeup() <= 0.011
        early.cancel()
        assert 0.15 < next_wakeup() <= 0.181
        await asyncio.sleep(0.25)
        assert fired == ["first", "kept", "last"]
        later.cancel()
        assert wheel.pending() == 0
        assert not [handle for handle in loop._scheduled if not handle.cancelled()]  # type: ignore[attr-defined]
        wheel.close()

    asyncio.run(scenario())
