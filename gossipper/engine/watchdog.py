"""SIPp's watchdog: the event loop's own health check under load.

A timer is asked for every -watchdog_interval; when it fires later than the minor (or
major) threshold after the previous firing, the loop was too busy: a minor (major) trip
is counted and warned about. More trips than -watchdog_*_maxtriggers end the run as a
fatal error, since its timings can no longer be trusted; trip counts start again after
-watchdog_reset without a trip. -watchdog_interval 0 turns it off.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from gossipper.engine.settings import WatchdogSettings


class Watchdog:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        settings: WatchdogSettings,
        warn: Callable[[str], None],
        fail: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loop = loop
        self._settings = settings
        self._warn = warn
        self._fail = fail
        self._clock = clock
        self.minor_trips = 0
        self.major_trips = 0
        self._last_fire = self._last_trip = clock()
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        if self._settings.interval_ms > 0:
            self._last_fire = self._last_trip = self._clock()
            self._handle = self._loop.call_later(self._settings.interval_ms / 1000, self.fire)

    @property
    def armed(self) -> bool:
        """Whether its next firing is scheduled."""
        return self._handle is not None

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def fire(self) -> None:
        """One firing: judge its lateness, then ask for the next (public for tests' clocks)."""
        settings = self._settings
        now = self._clock()
        late_ms = (now - self._last_fire) * 1000
        if late_ms > settings.major_threshold_ms:
            self.major_trips += 1
            self._last_trip = now
            self._warn(
                f"overload: the major watchdog timer ({settings.major_threshold_ms} ms) tripped after "
                f"{late_ms:.0f} ms, {settings.major_maxtriggers - self.major_trips} trips remaining"
            )
        elif late_ms > settings.minor_threshold_ms:
            self.minor_trips += 1
            self._last_trip = now
            self._warn(
                f"overload: the minor watchdog timer ({settings.minor_threshold_ms} ms) tripped after "
                f"{late_ms:.0f} ms, {settings.minor_maxtriggers - self.minor_trips} trips remaining"
            )
        if settings.major_maxtriggers != -1 and self.major_trips > settings.major_maxtriggers:
            self._fail(
                f"overload: the watchdog tripped its major threshold of {settings.major_threshold_ms} ms "
                f"{self.major_trips} times ({settings.major_maxtriggers} allowed)"
            )
            return
        if settings.minor_maxtriggers != -1 and self.minor_trips > settings.minor_maxtriggers:
            self._fail(
                f"overload: the watchdog tripped its minor threshold of {settings.minor_threshold_ms} ms "
                f"{self.minor_trips} times ({settings.minor_maxtriggers} allowed)"
            )
            return
        quiet_ms = (now - self._last_trip) * 1000
        if settings.reset_ms > 0 and (self.major_trips or self.minor_trips) and quiet_ms > settings.reset_ms:
            self._warn(f"watchdog: trip counts reset after {quiet_ms:.0f} ms without a trip")
            self.major_trips = self.minor_trips = 0
        self._last_fire = now
        self._handle = self._loop.call_later(settings.interval_ms / 1000, self.fire)
