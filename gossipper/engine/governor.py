"""The creation rate a CPU-bound run can complete, so overload degrades instead of collapsing.

When the event loop cannot keep up with the offered rate, every call it starts anyway
costs more than a call: answers wait in the socket until they overflow it, the peer
retransmits, each retransmission is more work, and successes fall towards zero while
calls keep being created. SIPp has the same failure past its (higher) ceiling. Here the
loop watches its own thread's CPU time and lateness each window; when it is saturated it
caps creation at what one core sustains at the CPU cost per call it just measured, and
when it has headroom again it raises the cap step by step back to the offered rate.
The peer being slow is not the loop's overload: that is left to the user, as in SIPp.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_S = 0.2  # short: under overload each window lets the socket overflow before it acts
BUSY_OVERLOADED = 0.90  # loop thread's CPU share of a window that counts as saturated
LATE_OVERLOADED_S = 0.25  # a window timer this late means callbacks are queueing
BUSY_HEADROOM = 0.75  # below this share (and on time), the cap may rise
TARGET_SHARE = 0.80  # the share of a core a capped run aims at
BACKOFF = 0.8  # still saturated at the cap: the backlog needs a lower one
RAISE = 1.1
# A run offered more than this starts creating at it and doubles each window the loop keeps
# up (TCP's slow start): a core offered many times what it can carry from the first moment
# sends a burst of INVITEs that overflows both sides' sockets, and the calls whose every
# retransmission meets the same synchronized burst fail after 32 s.
SLOW_START_CPS = 5000.0


@dataclass
class Window:
    """One window's readings: wall seconds, loop-thread CPU seconds, calls created, lateness."""

    wall_s: float
    cpu_s: float
    created: int
    late_s: float
    ended: int = -1  # calls that ended in the window (-1: not counted)

    @property
    def busy(self) -> float:
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0


class RateGovernor:
    """Decides the cap on the creation rate (calls/s) from one window to the next."""

    def __init__(self) -> None:
        self.cap_cps: float | None = None  # None: creating at the offered rate
        self.reason: str | None = None  # why the last cap was set, for the screen and the JSON
        self.throttled_s = 0.0
        self.starting = False  # in slow start: the cap doubles while the loop keeps up

    def start(self, offered_cps: float) -> float | None:
        """The cap a run begins with: SLOW_START_CPS when more is offered, else none."""
        if offered_cps > SLOW_START_CPS:
            self.cap_cps, self.starting = SLOW_START_CPS, True
        return self.cap_cps

    def observe(self, window: Window, offered_cps: float, creating_cps: float) -> float | None:
        """The new cap after this window (None: no cap); the caller applies it."""
        busy = window.busy
        saturated = busy >= BUSY_OVERLOADED or window.late_s >= LATE_OVERLOADED_S
        if self.starting and self.cap_cps is not None and not saturated:
            if busy < BUSY_HEADROOM:
                doubled = self.cap_cps * 2
                self.cap_cps = None if doubled >= offered_cps else doubled
                self.starting = self.cap_cps is not None
            return self.cap_cps
        self.starting = False
        if self.cap_cps is not None:
            self.throttled_s += window.wall_s
        if saturated and window.created > 0 and creating_cps > 0:
            sustainable = TARGET_SHARE * window.created / window.cpu_s if window.cpu_s > 0 else creating_cps
            if window.ended >= 0 and window.cpu_s > 0:
                # Calls created in a burst cost little until their answers come back: what the
                # loop completed is the better measure (not below half the other, as a loop
                # that had just begun completes few of what it started)
                completed = TARGET_SHARE * window.ended / window.cpu_s
                sustainable = min(sustainable, max(completed, sustainable / 2))
            cap = min(sustainable, creating_cps * BACKOFF if self.cap_cps is not None else sustainable)
            cap = max(1.0, min(cap, offered_cps))
            if cap < offered_cps:
                self.cap_cps = cap
                self.reason = (
                    f"CPU-bound: the event loop used {busy * 100:.0f}% of a core"
                    + (f", {window.late_s * 1000:.0f} ms late" if window.late_s >= LATE_OVERLOADED_S else "")
                    + f"; creating {cap:.0f} of {offered_cps:.0f} calls/s"
                )
        elif self.cap_cps is not None and busy < BUSY_HEADROOM and window.late_s < LATE_OVERLOADED_S / 5:
            raised = self.cap_cps * RAISE + 1
            self.cap_cps = None if raised >= offered_cps else raised
        return self.cap_cps


class GovernorClock:
    """Readings for RateGovernor windows: wall time and this (the loop's) thread's CPU time."""

    def __init__(
        self,
        wall: Callable[[], float] = time.monotonic,
        cpu: Callable[[], float] = time.thread_time,
    ) -> None:
        self._wall, self._cpu = wall, cpu
        self._last_wall, self._last_cpu = wall(), cpu()

    def window(self, created: int, due_at: float, ended: int = -1) -> Window:
        """The window since the last call; due_at: when the window's timer should have fired."""
        wall, cpu = self._wall(), self._cpu()
        window = Window(wall - self._last_wall, cpu - self._last_cpu, created, max(0.0, wall - due_at), ended)
        self._last_wall, self._last_cpu = wall, cpu
        return window
