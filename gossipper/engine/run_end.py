"""How a run comes to its end: the signals that stop it, and what its ending means.

SIPp's exit status depends on the way a run stopped as much as on its calls (an
internal stop_now, -timeout with or without -timeout_error), so the run records the
way here and asks for its outcome once, at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable

from gossipper.outcome import RunOutcome
from gossipper.stats.counters import RunCounters


class RunEnd:
    def __init__(self) -> None:
        self.soft_stopping = False  # no new calls; the run ends when the last one does
        self.time_limit_hit = False
        self._decided: RunOutcome | None = None  # an ending that overrides the calls' results
        self.fatal_message: str | None = None  # a scenario's <error>: the run ends in error

    def stopped_by_command(self) -> None:
        self._decided = RunOutcome.STOPPED_BY_COMMAND

    def fatal(self, text: str) -> None:
        if self.fatal_message is None:
            self.fatal_message = text

    def timed_out_as_error(self) -> None:
        self._decided = RunOutcome.TIMED_OUT

    def outcome(self, counters: RunCounters) -> RunOutcome:
        """SIPp's sipp_exit: any failed call is 1; none failed is 0, even with no call at all
        (a graceful stop of an idle UAS), except that -timeout with no successful call is 97."""
        if self._decided is not None:
            return self._decided
        if counters.media.rtp_check_failures:  # SIPp's sipp_exit: RTP errors before call results
            return RunOutcome.RTP_CHECK_FAILED
        if counters.calls_failed:
            return RunOutcome.SOME_FAILED
        if self.time_limit_hit and not counters.calls_succeeded:
            return RunOutcome.STOPPED_BY_COMMAND
        return RunOutcome.ALL_SUCCEEDED


def install_signal_handlers(
    loop: asyncio.AbstractEventLoop,
    soft_stop: Callable[[], None],
    quit_now: Callable[[], None],
    dump_screen: Callable[[], None],
) -> None:
    """SIPp's signals: USR1 quits gracefully, USR2 dumps the screen; INT and TERM quit at once
    (its sipp_sighandler: no call tidied, the exit status from the counters as they stand)."""
    handlers = {
        signal.SIGUSR1: soft_stop,
        signal.SIGUSR2: dump_screen,
        signal.SIGINT: quit_now,
        signal.SIGTERM: quit_now,
    }
    for signum, handler in handlers.items():
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, handler)
