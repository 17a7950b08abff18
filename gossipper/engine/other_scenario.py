"""Calls that run a second scenario of the run: SIPp's out-of-call scenario (-oocsf/-oocsn),
which a client run gives each request outside its calls, and mixed mode's receiving scenario
(-rxsf/-rxrn), which a client run gives each new incoming call.

They share the run's clock, sockets, media and traces, but, as in SIPp, where each scenario
keeps its own statistics, their calls are counted apart: the screen, the -trace_stat file
and the exit status stay the main scenario's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gossipper.engine.call import Call, CallHost, Timer
from gossipper.scenario import model
from gossipper.sip.transport import Address, SipTransport
from gossipper.stats.counters import RunCounters


@dataclass(frozen=True)
class OtherScenario:
    """The second scenario: receiving (mixed mode, with its own -rxinf files) or out-of-call."""

    scenario: model.Scenario
    receiving: bool
    injection_files: tuple[str, ...] = ()


class OtherScenarioHost:
    """The CallHost of one other scenario's calls: the run's host, but that scenario and its counters."""

    def __init__(self, run: CallHost, scenario: model.Scenario, ended: Callable[[Call], None]) -> None:
        self._run = run
        self._ended = ended
        self.scenario = scenario
        self.policy = run.policy
        self.counters = RunCounters()
        self.counters.ensure_steps(len(scenario.steps))

    def now(self) -> float:
        return self._run.now()

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Timer:
        return self._run.call_later(delay_s, callback)

    def transmit(self, data: bytes, transport: SipTransport, destination: Address) -> None:
        self._run.transmit(data, transport, destination)

    def trace_message(self, direction: str, data: bytes, peer: Address, transport: SipTransport) -> None:
        self._run.trace_message(direction, data, peer, transport)

    def trace_error(self, text: str) -> None:
        self._run.trace_error(text)

    def log(self, kind: str, text: str) -> None:
        self._run.log(kind, text)

    def media_action(self, call: Call, action: model.Exec) -> tuple[str, str] | None:
        return self._run.media_action(call, action)

    def media_stop(self, call: Call) -> None:
        self._run.media_stop(call)

    def media_sdp(self, call: Call, sdp: bytes) -> None:
        self._run.media_sdp(call, sdp)

    def run_command(self, command: str) -> None:
        self._run.run_command(command)

    def internal_command(self, command: str) -> None:
        self._run.internal_command(command)

    def send_twin_command(self, call: Call, data: bytes) -> None:
        self._run.send_twin_command(call, data)

    def abort_twin_call(self, call: Call) -> None:
        self._run.abort_twin_call(call)

    def fatal_error(self, text: str) -> None:
        self._run.fatal_error(text)

    def call_ended(self, call: Call, failure_class: str | None, reason: str, *, counted: bool = True) -> None:
        counters = self.counters
        counters.calls_active -= 1
        if not counted:
            pass  # an answered PING: neither failed nor successful
        elif failure_class is None:
            counters.calls_succeeded += 1
            counters.call_length.add(call.duration_ms)
        else:
            counters.call_failed(failure_class)
            self._run.trace_error(
                f"{self.scenario.name} call {call.call_id} failed ({failure_class}): {reason}"
            )
        self._ended(call)
