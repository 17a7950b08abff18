"""Scenario actions (ereg, assign, test, log, exec, jump, ...) run against one call.

Actions only touch the call's variables and ask the host (the call) for effects that
reach outside: logging, media, jumps, ending the call or the run.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from gossipper.engine.context import CallContext, VariableValue, format_variable
from gossipper.scenario import model
from gossipper.sip.message import SipMessage

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "equal": operator.eq,
    "not_equal": operator.ne,
    "greater_than": operator.gt,
    "less_than": operator.lt,
    "greater_than_equal": operator.ge,
    "less_than_equal": operator.le,
}
_ARITH: dict[str, Callable[[float, float], float]] = {
    "add": operator.add,
    "subtract": operator.sub,
    "multiply": operator.mul,
    "divide": lambda a, b: a / b if b else math.inf,
}


@dataclass
class ActionOutcome:
    """What the call must do after its actions ran; the defaults mean 'carry on'."""

    failure: str | None = None  # failure class: the call fails
    failure_reason: str = ""
    stop_call: bool = False
    jump_to: int | None = None


class ActionHost(Protocol):
    """The effects an action may ask of the call that runs it."""

    context: CallContext

    def render_text(self, template: model.MessageTemplate) -> str: ...
    def log(self, kind: str, text: str) -> None: ...
    def media_action(self, action: model.Exec) -> tuple[str, str] | None: ...
    def run_command(self, command: str) -> None: ...
    def internal_command(self, command: str) -> None: ...
    def set_destination(self, host: str, port: int) -> None: ...


def is_set(value: VariableValue | None) -> bool:
    """SIPp's test="var": booleans by value, anything else by presence."""
    if value is None:
        return False
    return value if isinstance(value, bool) else True


def to_number(call: CallContext, text: str) -> float:
    """A literal number, or the numeric value of a variable of that name."""
    try:
        return float(text)
    except ValueError:
        pass
    value = call.variables.get(text.lstrip("$"))
    if value is None or isinstance(value, bool):
        return float(bool(value))
    try:
        return float(value)
    except ValueError:
        return 0.0


def _ereg(call: CallContext, action: model.Ereg, message: SipMessage | None) -> ActionOutcome:
    subjects = _ereg_subjects(action, message)
    flags = re.IGNORECASE if action.case_indep else 0
    pattern = re.compile(action.regexp, flags | re.DOTALL)  # POSIX extended: "." crosses lines, as in SIPp
    found: re.Match[str] | None = None
    occurrence = max(1, action.occurrence)
    seen = 0
    for subject in subjects:
        for candidate in pattern.finditer(subject):
            seen += 1
            if seen == occurrence:
                found = candidate
                break
        if found:
            break
    for index, name in enumerate(action.assign_to):
        if found is not None and index <= (pattern.groups):
            call.variables[name] = found.group(index) or ""
        else:
            call.variables.pop(name, None)
    if action.check_it and found is None:
        return ActionOutcome(
            failure="scenario_error", failure_reason=f"regexp {action.regexp!r} did not match"
        )
    if action.check_it_inverse and found is not None:
        return ActionOutcome(failure="scenario_error", failure_reason=f"regexp {action.regexp!r} matched")
    return ActionOutcome()


def _ereg_subjects(action: model.Ereg, message: SipMessage | None) -> list[str]:
    if message is None:
        return []
    if action.search_in == "hdr" and action.header:
        return message.header_values(action.header.strip().rstrip(":").strip())
    if action.search_in == "body":
        return [message.body.decode("utf-8", errors="replace")]
    text = bytes(message).decode("utf-8", errors="replace")
    if action.start_line:
        return [text.split("\r\n", 1)[0]]
    return [text]


def run_actions(
    host: ActionHost,
    actions: Sequence[model.Action],
    message: SipMessage | None,
    jump_targets: Callable[[float], int],
) -> ActionOutcome:
    """Run actions in order; the first failure or call stop ends the list."""
    call = host.context
    outcome = ActionOutcome()
    for action in actions:
        step = _run_one(host, call, action, message, jump_targets)
        if step.jump_to is not None:
            outcome.jump_to = step.jump_to
        if step.failure or step.stop_call:
            step.jump_to = outcome.jump_to
            return step
    return outcome


def _run_one(
    host: ActionHost,
    call: CallContext,
    action: model.Action,
    message: SipMessage | None,
    jump_targets: Callable[[float], int],
) -> ActionOutcome:
    if isinstance(action, model.Ereg):
        return _ereg(call, action, message)
    if isinstance(action, model.Assign):
        call.variables[action.assign_to] = to_number(call, action.value)
    elif isinstance(action, model.AssignStr):
        call.variables[action.assign_to] = host.render_text(action.value)
    elif isinstance(action, model.Arith):
        current = to_number(call, action.assign_to)
        call.variables[action.assign_to] = _ARITH[action.op](current, to_number(call, action.value))
    elif isinstance(action, model.ToDouble):
        call.variables[action.assign_to] = to_number(call, action.variable)
    elif isinstance(action, model.Test):
        left = to_number(call, action.variable)
        call.variables[action.assign_to] = _COMPARE[action.compare](left, to_number(call, action.value))
    elif isinstance(action, model.Strcmp):
        first = _string_value(call, action.variable)
        second = _string_value(call, action.variable2) if action.variable2 else (action.value or "")
        call.variables[action.assign_to] = float((first > second) - (first < second))
    elif isinstance(action, model.Log | model.Warning | model.Error):
        kind = type(action).__name__.lower()
        host.log(kind, host.render_text(action.message))
        if isinstance(action, model.Error):
            return ActionOutcome(failure="scenario_error", failure_reason=host.render_text(action.message))
    elif isinstance(action, model.Exec):
        return _exec(host, action)
    elif isinstance(action, model.Jump):
        target = to_number(call, action.variable) if action.variable else to_number(call, action.value or "0")
        return ActionOutcome(jump_to=jump_targets(target))
    elif isinstance(action, model.SetDest):
        host.set_destination(host.render_text(action.host), int(host.render_text(action.port)))
    return ActionOutcome()


def _string_value(call: CallContext, name: str) -> str:
    value = call.variables.get(name.lstrip("$"))
    return "" if value is None else format_variable(value)


def _exec(host: ActionHost, action: model.Exec) -> ActionOutcome:
    if action.command is not None:
        host.run_command(host.render_text(action.command))
    if action.int_cmd:
        if action.int_cmd == "stop_call":
            return ActionOutcome(stop_call=True)
        host.internal_command(action.int_cmd)
    if action.rtp_stream or action.play_pcap_audio or action.play_pcap_video:
        failure = host.media_action(action)
        if failure is not None:
            return ActionOutcome(failure=failure[0], failure_reason=failure[1])
    return ActionOutcome()
