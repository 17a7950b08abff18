"""The exit status a run's ending means, as SIPp's sipp_exit decides it (src/sipp.cpp)."""

from __future__ import annotations

import pytest

from gossipper.engine.run_end import RunEnd
from gossipper.outcome import RunOutcome
from gossipper.stats.counters import RunCounters


def _counters(succeeded: int, failed: int) -> RunCounters:
    counters = RunCounters()
    counters.calls_succeeded = succeeded
    for _ in range(failed):
        counters.call_failed("cancelled")
    return counters


@pytest.mark.parametrize(
    ("succeeded", "failed", "time_limit_hit", "expected"),
    [
        (0, 0, False, RunOutcome.ALL_SUCCEEDED),  # a graceful stop of an idle run: SIPp exits 0
        (3, 0, False, RunOutcome.ALL_SUCCEEDED),
        (3, 1, False, RunOutcome.SOME_FAILED),
        (0, 0, True, RunOutcome.STOPPED_BY_COMMAND),  # -timeout, nothing succeeded: 97
        (2, 0, True, RunOutcome.ALL_SUCCEEDED),  # -timeout after successes, none running: 0
        (2, 3, True, RunOutcome.SOME_FAILED),  # -timeout aborted running calls: 1
    ],
    ids=["idle", "all-ok", "one-failed", "timeout-idle", "timeout-after-successes", "timeout-aborted-calls"],
)
def test_the_outcome_follows_the_counters_as_sipp_exit_does(
    succeeded: int, failed: int, time_limit_hit: bool, expected: RunOutcome
) -> None:
    ending = RunEnd()
    ending.time_limit_hit = time_limit_hit
    assert ending.outcome(_counters(succeeded, failed)) is expected


@pytest.mark.parametrize(
    ("decide", "expected"),
    [
        (RunEnd.stopped_by_command, RunOutcome.STOPPED_BY_COMMAND),
        (RunEnd.timed_out_as_error, RunOutcome.TIMED_OUT),
    ],
)
def test_an_internal_command_or_a_timeout_error_decides_whatever_the_calls_did(
    decide: object, expected: RunOutcome
) -> None:
    ending = RunEnd()
    assert callable(decide)
    decide(ending)
    assert ending.outcome(_counters(5, 2)) is expected
