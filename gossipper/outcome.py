"""How a run ended, in the run's terms; `cli/` turns it into SIPp's exit status."""

from __future__ import annotations

from enum import Enum


class RunOutcome(Enum):
    ALL_SUCCEEDED = "all calls (or streams) succeeded"
    SOME_FAILED = "at least one call failed (or a stream had send errors)"
    STOPPED_BY_COMMAND = "ended by an internal command, or by the run's time limit"
    NOTHING_DONE = "no call was processed (no packet sent)"
    TIMED_OUT = "the run's time limit was reached, and that counts as an error"
    RTP_CHECK_FAILED = "an echoed RTP stream failed its check (SIPp's rtpcheck), or an rtp_echo broke"
    HEALTH_FAILED = "a health gate (-health_*) failed"
    DEGRADED = "a cluster node was lost mid-run; the counts cover what it reported"

    def gated(self, healthy: bool) -> RunOutcome:
        """The outcome once the health gates are judged: a failed gate outranks how the calls
        went, but not a run that timed out as an error or failed its RTP check, which say
        more about what went wrong, nor one that lost a cluster node, whose figures are short."""
        if healthy or self in (RunOutcome.TIMED_OUT, RunOutcome.RTP_CHECK_FAILED, RunOutcome.DEGRADED):
            return self
        return RunOutcome.HEALTH_FAILED
