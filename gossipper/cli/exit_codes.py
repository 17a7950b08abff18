"""Process exit codes, identical to SIPp's so lab scripts keep their checks."""

from gossipper.outcome import RunOutcome

EXIT_ALL_CALLS_OK = 0
EXIT_CALLS_FAILED = 1
EXIT_HEALTH_FAILED = 2  # gossipper's own: a -health_* gate failed
EXIT_DEGRADED = 3  # gossipper's own: a -cluster node was lost mid-run
EXIT_INTERNAL_COMMAND = 97
EXIT_NO_CALLS = 99
EXIT_FATAL = 255
EXIT_BIND_FAILED = 254
EXIT_RTP_CHECK_FAILED = 253

EXIT_STATUS: dict[RunOutcome, int] = {
    RunOutcome.ALL_SUCCEEDED: EXIT_ALL_CALLS_OK,
    RunOutcome.SOME_FAILED: EXIT_CALLS_FAILED,
    RunOutcome.STOPPED_BY_COMMAND: EXIT_INTERNAL_COMMAND,
    RunOutcome.NOTHING_DONE: EXIT_NO_CALLS,
    RunOutcome.TIMED_OUT: EXIT_FATAL,
    RunOutcome.RTP_CHECK_FAILED: EXIT_RTP_CHECK_FAILED,
    RunOutcome.HEALTH_FAILED: EXIT_HEALTH_FAILED,
    RunOutcome.DEGRADED: EXIT_DEGRADED,
}
