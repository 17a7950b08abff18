"""Every call's timers on one event-loop timer, gathered by tick (a millisecond, or -timer_resol).

A call arms two to four timers (a retransmission, a pause, a timewait, a receive
timeout), and most are cancelled before they fire. As event-loop timers each costs a
handle, a libuv timer, a heap insert and a heap removal, about a tenth of a UAS's CPU
at thousands of calls per second (bench/sip_rate.py --side uas). Here a timer is one
small object appended to the list of its tick; the loop holds a single timer for the
earliest tick, and cancelling only forgets the callback.

Timers never fire before their delay: the due tick is rounded up from the monotonic
clock when armed, and the loop timer is checked against the same clock when it fires
(libuv measures its own timers from a time read when the loop turn began). A coarser
tick, as SIPp's -timer_resol gives its own wheel, gathers more timers per wake-up: less
CPU, later timers.

A tick whose timers were all cancelled never wakes the loop: most retransmission timers
are cancelled by the answer, and at a few hundred calls per second nearly every
millisecond holds one, so waking for them cost more loop turns than the calls' messages.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import Callable
from time import monotonic  # a global, not a module attribute: read per timer

MAX_ARMED_S = 3600.0


class WheelTimer:
    """A timer armed on a TimerWheel: cancel() before it fires and it never does."""

    __slots__ = ("_bucket", "_wheel", "callback")

    def __init__(self, callback: Callable[[], None], bucket: _Bucket, wheel: TimerWheel) -> None:
        self.callback: Callable[[], None] | None = callback
        self._bucket = bucket
        self._wheel = wheel

    def cancel(self) -> None:
        if self.callback is None:
            return
        self.callback = None  # the callback (and the call it holds) is let go at once
        bucket = self._bucket
        bucket.live -= 1
        if bucket.live == 0:
            self._wheel._bucket_emptied(bucket)


class _Bucket:
    """The timers due in one tick, and how many of them are still armed. Its timers
    point back at it: the list is emptied when the bucket is done with, so that the pair is
    freed at once rather than left to the garbage collector (which cycles make run sooner)."""

    __slots__ = ("live", "tick", "timers")

    def __init__(self, tick: int) -> None:
        self.tick = tick
        self.timers: list[WheelTimer] = []
        self.live = 0


class TimerWheel:
    def __init__(self, loop: asyncio.AbstractEventLoop, resolution_ms: int = 1) -> None:
        self._loop = loop
        self._ticks_per_s = 1000.0 / resolution_ms
        self._buckets: dict[int, _Bucket] = {}
        self._ticks: list[int] = []  # heap of the ticks that have a bucket
        self._handle: asyncio.TimerHandle | None = None
        self._armed_tick = 0
        self._firing = False
        self._closed = False

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> WheelTimer:
        tick = math.ceil((monotonic() + delay_s) * self._ticks_per_s)
        bucket = self._buckets.get(tick)
        if bucket is None:
            bucket = self._buckets[tick] = _Bucket(tick)
            heapq.heappush(self._ticks, tick)
            if not self._firing and (self._handle is None or tick < self._armed_tick):
                self._arm(tick)
        timer = WheelTimer(callback, bucket, self)
        bucket.timers.append(timer)
        bucket.live += 1
        return timer

    def pending(self) -> int:
        """Timers armed and not yet fired or cancelled."""
        return sum(bucket.live for bucket in self._buckets.values())

    def close(self) -> None:
        self._closed = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        for bucket in self._buckets.values():
            bucket.timers.clear()
        self._buckets.clear()
        self._ticks.clear()

    def _bucket_emptied(self, bucket: _Bucket) -> None:
        """The loop timer waits for this bucket only: move it to the next one with a timer."""
        if self._firing or self._handle is None or bucket.tick != self._armed_tick:
            return  # skipped when the loop timer reaches it
        self._handle.cancel()
        self._handle = None
        self._arm_next()

    def _arm_next(self) -> None:
        """Arm the loop timer for the first tick still holding a timer, forgetting
        the emptied ones before it."""
        ticks, buckets = self._ticks, self._buckets
        while ticks and buckets[ticks[0]].live == 0:
            buckets.pop(heapq.heappop(ticks)).timers.clear()
        if ticks:
            self._arm(ticks[0])

    def _arm(self, tick: int) -> None:
        if self._closed:
            return
        if self._handle is not None:
            self._handle.cancel()
        self._armed_tick = tick
        # whole milliseconds, rounded up: the loop counts its timers in them
        delay = math.ceil((tick / self._ticks_per_s - monotonic()) * 1000.0) / 1000.0
        # a far timer (a pause of days) wakes the loop hourly and is re-armed: the loop's own
        # timers overflow on delays past a few hundred years
        self._handle = self._loop.call_later(min(max(delay, 0.0), MAX_ARMED_S), self._fire)

    def _fire(self) -> None:
        self._handle = None
        now_tick = math.floor(monotonic() * self._ticks_per_s)
        ticks, buckets = self._ticks, self._buckets
        self._firing = True
        try:
            while ticks and ticks[0] <= now_tick:
                bucket = buckets.pop(heapq.heappop(ticks))
                for timer in bucket.timers:
                    callback = timer.callback
                    if callback is None:
                        continue
                    timer.callback = None
                    bucket.live -= 1
                    try:
                        callback()
                    except Exception as error:  # as the loop does: one failing callback stops no other
                        self._loop.call_exception_handler(
                            {"message": "Exception in timer callback", "exception": error}
                        )
                bucket.timers.clear()  # popped: a timer armed from a callback gets a new bucket
        finally:
            self._firing = False
        self._arm_next()
