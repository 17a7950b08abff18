"""Outgoing call generation: -r calls per -rp period, capped by -l and -m.

Calls are created against a schedule (created so far vs. rate x elapsed) rather than
one timer per call, so a late tick catches up and a rate change re-bases the schedule,
as SIPp's call generation task does.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

MIN_TICK_S = 0.001
MAX_TICK_S = 0.05


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
    ) -> None:
        self._loop = loop
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

    @property
    def rate(self) -> float:
        """Calls per rate period, as -r and the screen express it."""
        return self._rate

    @property
    def calls_per_second(self) -> float:
        return self._rate / self._period_s if self._period_s else 0.0

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
        self._base_time = time.monotonic()
        self._reschedule(0.0)

    def stop(self) -> None:
        self.stopped = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _rebase(self) -> None:
        self._base_time = time.monotonic()
        self._base_created = self.created

    def _due(self, now: float) -> int:
        if self.paused:
            return 0
        expected = self._base_created + math.floor(self.calls_per_second * (now - self._base_time) + 1e-9) + 1
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
        for _ in range(self._due(now)):
            self.created += 1
            self._create_call()
            if self.exhausted:
                return
        if self.max_concurrent > 0 and self._active_calls() >= self.max_concurrent:
            return  # notify_call_ended wakes us when a slot frees up
        self._reschedule(self._next_delay(now))

    def _next_delay(self, now: float) -> float:
        cps = self.calls_per_second
        if self.paused or cps <= 0:
            return MAX_TICK_S
        next_call_at = self._base_time + (self.created - self._base_created) / cps
        return min(MAX_TICK_S, max(MIN_TICK_S, next_call_at - now))

    def _reschedule(self, delay: float) -> None:
        if self.stopped:
            return
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_later(delay, self._tick)

    def notify_call_ended(self) -> None:
        """A slot under -l freed up: try to create the calls the schedule owes."""
        if not self.exhausted and self.max_concurrent > 0 and self._handle is None:
            self._reschedule(0.0)
