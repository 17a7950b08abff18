"""Outgoing call generation: -r calls per -rp period, capped by -l and -m.

Calls are created against a schedule (created so far vs. rate x elapsed) rather than
one timer per call, so a late tick catches up and a rate change re-bases the schedule,
as SIPp's call generation task does. A tick creates for a bounded time only, so that
answers, timers and signals are served between bursts whatever the rate, and a
RateGovernor may cap the rate when the loop is CPU-bound (engine/governor.py).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from gossipper.engine.governor import WINDOW_S, GovernorClock, RateGovernor

MIN_TICK_S = 0.001
MAX_TICK_S = 0.05
MAX_TICK_WORK_S = 0.01  # creating calls for longer than this starves the receive path
# A wake-up of the loop costs more than creating a call (bench/sip_rate.py: at 2000 calls/s,
# ticks every 1 ms cost 40% more CPU per call than every 5 ms): a tick waits until about
# this many calls are due, up to MAX_GATHER_S, so that ticks create calls a few at a time.
CALLS_PER_TICK = 40
MAX_GATHER_S = 0.005


class CallGenerator:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        rate: float,
        period_ms: int,
        max_calls: int,
        max_concurrent: int,
        create_call: Callable[[], None],
        active_calls: Callable[[], int],
        on_window: Callable[[RateGovernor], None] | None = None,
        resolution_ms: int | None = None,
    ) -> None:
        """`resolution_ms` (-timer_resol) makes every tick that long, as SIPp's scheduler
        creates the calls due once per resolution; None gathers CALLS_PER_TICK calls."""
        self._loop = loop
        resolution_s = None if resolution_ms is None else resolution_ms / 1000.0
        self._min_tick_s = MIN_TICK_S if resolution_s is None else resolution_s
        self._max_gather_s = MAX_GATHER_S if resolution_s is None else resolution_s
        self._max_tick_s = max(MAX_TICK_S, self._min_tick_s)
        self._period_s = period_ms / 1000.0
        self._rate = rate
        self.max_calls = max_calls
        self.max_concurrent = max_concurrent
        self._create_call = create_call
        self._active_calls = active_calls
        self.created = 0
        self.paused = False
        self.stopped = False
        self._base_time = time.monotonic()
        self._base_created = 0
        self._handle: asyncio.TimerHandle | None = None
        self.governor = RateGovernor()
        self._clock: GovernorClock | None = None
        self._window_start_created = 0  # self.created when the window opened
        self.ended = 0  # calls that ended (notify_call_ended)
        self._window_start_ended = 0
        self._window_due = 0.0
        self._window_handle: asyncio.TimerHandle | None = None
        self._on_window = on_window

    @property
    def rate(self) -> float:
        """Calls per rate period, as -r and the screen express it."""
        return self._rate

    @property
    def calls_per_second(self) -> float:
        """The offered rate, as asked (-r, the keys, the control socket)."""
        return self._rate / self._period_s if self._period_s else 0.0

    @property
    def creating_cps(self) -> float:
        """The rate calls are created at: the offered one, or the governor's cap below it."""
        offered = self.calls_per_second
        cap = self.governor.cap_cps
        return offered if cap is None else min(offered, cap)

    @property
    def exhausted(self) -> bool:
        return self.stopped or (self.max_calls > 0 and self.created >= self.max_calls)

    def set_rate(self, rate: float) -> None:
        self._rebase()
        self._rate = max(0.0, rate)
        self._reschedule(0.0)

    def pause(self, paused: bool) -> None:
        self._rebase()
        self.paused = paused
        if not paused:
            self._reschedule(0.0)

    def start(self) -> None:
        self.governor.start(self.calls_per_second)
        self._base_time = time.monotonic()
        self._reschedule(0.0)
        self._clock = GovernorClock()
        self._schedule_window()

    def stop(self) -> None:
        self.stopped = True
        for handle in (self._handle, self._window_handle):
            if handle is not None:
                handle.cancel()
        self._handle = self._window_handle = None

    def _schedule_window(self) -> None:
        self._window_due = time.monotonic() + WINDOW_S
        self._window_start_created = self.created
        self._window_start_ended = self.ended
        self._window_handle = self._loop.call_later(WINDOW_S, self._end_window)

    def _end_window(self) -> None:
        assert self._clock is not None
        window = self._clock.window(
            self.created - self._window_start_created, self._window_due, self.ended - self._window_start_ended
        )
        before = self.creating_cps
        if not self.paused:
            self.governor.observe(window, self.calls_per_second, before)
        if self.creating_cps != before:
            self._rebase()
            self._reschedule(0.0)
        if self._on_window is not None:
            self._on_window(self.governor)
        if not self.exhausted:
            self._schedule_window()

    def _rebase(self) -> None:
        self._base_time = time.monotonic()
        self._base_created = self.created

    def _due(self, now: float) -> int:
        if self.paused:
            return 0
        expected = self._base_created + math.floor(self.creating_cps * (now - self._base_time) + 1e-9) + 1
        due = expected - self.created
        if self.max_calls > 0:
            due = min(due, self.max_calls - self.created)
        if self.max_concurrent > 0:
            due = min(due, self.max_concurrent - self._active_calls())
        return max(0, due)

    def _tick(self) -> None:
        self._handle = None
        if self.exhausted:
            return
        now = time.monotonic()
        stop_at = now + MAX_TICK_WORK_S
        for count in range(1, self._due(now) + 1):
            self.created += 1
            self._create_call()
            if self.exhausted:
                return
            if count % 8 == 0 and time.monotonic() > stop_at:
                self._reschedule(0.0)  # the rest are still due: created after the loop has turned once
                return
        if self.max_concurrent > 0 and self._active_calls() >= self.max_concurrent:
            return  # notify_call_ended wakes us when a slot frees up
        self._reschedule(self._next_delay(now))

    def _next_delay(self, now: float) -> float:
        cps = self.creating_cps
        if self.paused or cps <= 0:
            return self._max_tick_s
        next_call_at = self._base_time + (self.created - self._base_created) / cps
        gather = min(self._max_gather_s, CALLS_PER_TICK / cps)
        return min(self._max_tick_s, max(self._min_tick_s, gather, next_call_at - now))

    def _reschedule(self, delay: float) -> None:
        if self.stopped:
            return
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_later(delay, self._tick)

    def notify_call_ended(self) -> None:
        """A call ended: counted for the governor, and its slot under -l may be taken."""
        self.ended += 1
        self.wake()

    def wake(self) -> None:
        """A slot under -l freed up (or -l rose): try to create the calls the schedule owes."""
        if not self.exhausted and self.max_concurrent > 0 and self._handle is None:
            self._reschedule(0.0)
