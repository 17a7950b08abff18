"""What one call did, step by step, kept only when the run writes call records.

A call record (-call_records) says how each call went without the message log: what it sent
and received at each step and when, its response times and retransmissions. The journal is
filled as the call runs and read once when it ends; a run without records keeps none, so
the call engine pays one `is None` test per message for the feature.
"""

from __future__ import annotations

from typing import Protocol

from gossipper.sip.message import SentFacts, SipMessage
from gossipper.stats.summary import iso_utc


class _Sent(Protocol):
    """What the journal reads of a message the call sent (engine.call.SentMessage)."""

    @property
    def method(self) -> str | None: ...
    def read_facts(self) -> SentFacts: ...


class CallJournal:
    def __init__(self, started_at: float) -> None:
        self.started_at = started_at  # the call's start, on the run's monotonic clock
        # (step, "sent", "received" or "unexpected", a request's method or a response's
        # status code, when)
        self.events: list[tuple[int, str, str, float]] = []
        self.response_times_ms: dict[str, float] = {}  # "invite" and the scenario's rtd names
        self.retransmissions = 0

    def sent(self, step: int, message: _Sent, now: float) -> None:
        what = message.method
        if what is None:
            is_request, method, status_code, _, _ = message.read_facts()
            what = method if is_request else str(status_code)
        self.events.append((step, "sent", what, now))

    def received(self, step: int, message: SipMessage, now: float, expected: bool = True) -> None:
        """A message the step took, or (not expected) one no step was waiting for."""
        what = message.method if message.is_request else str(message.status_code)
        self.events.append((step, "received" if expected else "unexpected", what or "", now))

    def steps(self) -> list[dict[str, object]]:
        """The events as a record lists them, times in ms from the call's start."""
        start = self.started_at
        return [
            {"step": step, direction: what, "at_ms": round((at - start) * 1000, 3)}
            for step, direction, what, at in self.events
        ]


def call_record(
    *,
    number: int,
    call_id: str,
    side: str,
    journal: CallJournal,
    ended_at: float,
    wall_offset: float,
    failure_class: str | None,
    reason: str,
    counted: bool,
    media: dict[str, object] | None,
) -> dict[str, object]:
    """One ended call as -call_records writes it. Times on the monotonic clock become UTC
    through wall_offset (time.time() - time.monotonic(), taken once per run)."""
    outcome = "uncounted" if not counted else "success" if failure_class is None else "failed"
    return {
        "call": number,
        "call_id": call_id,
        "side": side,
        "start": iso_utc(journal.started_at + wall_offset),
        "end": iso_utc(ended_at + wall_offset),
        "duration_ms": round((ended_at - journal.started_at) * 1000, 3),
        "outcome": outcome,
        "failure_class": failure_class,
        "reason": reason or None,
        "sip": journal.steps(),
        "response_times_ms": {name: round(value, 3) for name, value in journal.response_times_ms.items()},
        "retransmissions": journal.retransmissions,
        "media": media,
    }
