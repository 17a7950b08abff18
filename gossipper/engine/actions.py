"""Scenario actions (ereg, assign, test, log, exec, jump, ...) run against one call.

Actions only touch the call's variables and ask the host (the call) for effects that
reach outside: logging, media, jumps, ending the call or the run.
"""

from __future__ import annotations

import math
import operator
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Protocol

from gossipper.engine.context import CallContext, VariableValue
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
    "divide": operator.truediv,  # a zero divisor never gets here: SIPp warns and leaves the variable
}


class ActionOutcome:
    """What the call must do after its actions ran; the defaults mean 'carry on'.

    A plain class rather than a dataclass: compiled, a dataclass' __init__ is still the one
    the dataclasses module writes in Python, and every step with actions makes one."""

    __slots__ = ("failure", "failure_reason", "fatal", "jump_to", "stop_call")

    def __init__(
        self,
        failure: str | None = None,  # failure class: the call fails
        failure_reason: str = "",
        stop_call: bool = False,
        jump_to: int | None = None,
        fatal: str | None = None,  # an <error> action's text: the whole run ends, as SIPp's ERROR()
    ) -> None:
        self.failure = failure
        self.failure_reason = failure_reason
        self.stop_call = stop_call
        self.jump_to = jump_to
        self.fatal = fatal


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
    """SIPp's test= and condexec=: a boolean by its value, a double when non-zero, a
    string (or regexp match) when assigned at all."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return value != 0
    return True


def to_number(call: CallContext, name: str) -> float:
    """The variable's double, as SIPp's getDouble reads it: 0 unless a double was stored.

    Strings, regexp matches and booleans read as 0 here; <todouble> converts them.
    """
    value = call.variables.get(name)
    return value if isinstance(value, float) and not isinstance(value, bool) else 0.0


def _operand(call: CallContext, operand: model.Operand) -> float:
    return to_number(call, operand.variable) if operand.variable is not None else operand.value or 0.0


def _string(call: CallContext, name: str) -> str:
    """SIPp's getString: a string or regexp match as stored, anything else empty."""
    value = call.variables.get(name)
    return value if isinstance(value, str) else ""


def _to_double(value: VariableValue | None) -> float | None:
    """SIPp's toDouble: booleans as 0/1, strings only when they are wholly a number."""
    if value is None:
        return None
    if isinstance(value, (bool, float)):
        return float(value)
    text = value.strip()
    if not text or "_" in text:  # Python's float() takes 1_000; strtod does not
        return None
    try:
        return float(text)
    except ValueError:
        return None


def header_text(text: str, name: str, case_indep: bool, occurrence: int, line_start: bool) -> str:
    """What SIPp's ereg search_in="hdr" searches: the rest of the line after the
    occurrence-th match of `name` anywhere in the message (at a line start only with
    start_line), so header="From" leaves ": value" and header="From:" leaves " value"."""
    haystack, needle = (text.lower(), name.lower()) if case_indep else (text, name)
    remaining, start = max(occurrence, 1), 0
    while True:
        position = haystack.find(needle, start)
        if position < 0:
            return ""
        start = position + 1
        if line_start and position > 0 and haystack[position - 1] != "\n":
            continue
        remaining -= 1
        if remaining == 0:
            break
    rest = text[position + len(needle) :]
    return rest[: min((i for i in (rest.find("\r"), rest.find("\n")) if i >= 0), default=len(rest))]


def _ereg_subject(call: CallContext, action: model.Ereg, message: SipMessage | None) -> str | None:
    """The text searched; None when the part to search is missing (SIPp: header not found)."""
    if action.search_in == "var":
        return _string(call, action.variable or "")
    if message is None:
        return None
    if action.search_in == "body":
        return message.body.decode("utf-8", errors="replace")
    text = (message.raw or bytes(message)).decode("utf-8", errors="replace")
    if action.search_in == "hdr":
        found = header_text(
            text, action.header or "", action.case_indep, action.occurrence, action.start_line
        )
        return found or None
    return text


def _ereg(call: CallContext, action: model.Ereg, message: SipMessage | None) -> ActionOutcome:
    subject = _ereg_subject(call, action, message)
    if subject is None and action.check_it:
        what = f"header {action.header!r}" if action.search_in == "hdr" else "the text to search"
        return ActionOutcome(
            failure="scenario_error", failure_reason=f"regexp {action.regexp!r}: {what} not found"
        )
    found = action.pattern.search(subject or "")
    if found is not None:
        # As SIPp: the whole match, then each group that took part; a miss leaves all as they were.
        for index, name in enumerate(action.assign_to):
            group = found.group(index)
            if group is not None:
                call.variables[name] = group
    if action.check_it and found is None:
        return ActionOutcome(
            failure="scenario_error", failure_reason=f"regexp {action.regexp!r} did not match"
        )
    if action.check_it_inverse and found is not None:
        return ActionOutcome(failure="scenario_error", failure_reason=f"regexp {action.regexp!r} matched")
    return ActionOutcome()


def run_actions(
    host: ActionHost,
    actions: Sequence[model.Action],
    message: SipMessage | None,
    jump_targets: Callable[[float], int],
) -> ActionOutcome:
    """Run actions in order; the first failure, call stop or fatal error ends the list."""
    call = host.context
    outcome = ActionOutcome()
    for action in actions:
        step = _run_one(host, call, action, message, jump_targets)
        if step.jump_to is not None:
            outcome.jump_to = step.jump_to
        if step.failure or step.stop_call or step.fatal is not None:
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
    variables = call.variables
    if isinstance(action, model.Ereg):
        return _ereg(call, action, message)
    if isinstance(action, (model.Test, model.Strcmp)):
        return _compare(call, action)
    if isinstance(action, model.Assign):
        variables[action.assign_to] = _operand(call, action.operand)
    elif isinstance(action, model.AssignStr):
        variables[action.assign_to] = host.render_text(action.value)
    elif isinstance(action, model.Arith):
        operand = _operand(call, action.operand)
        if action.op == "divide" and operand == 0:
            host.log(
                "warning", f"line {action.line}: cannot divide ${action.assign_to} by zero; left unchanged"
            )
        else:
            variables[action.assign_to] = _ARITH[action.op](to_number(call, action.assign_to), operand)
    elif isinstance(action, model.ToDouble):
        converted = _to_double(variables.get(action.variable))
        if converted is None:
            host.log(
                "warning",
                f"line {action.line}: ${action.variable} is not a number; ${action.assign_to} unchanged",
            )
        else:
            variables[action.assign_to] = converted
    elif isinstance(action, model.GetTimeOfDay):
        now_us = time.time_ns() // 1000
        variables[action.seconds_to] = float(now_us // 1_000_000)
        variables[action.microseconds_to] = float(now_us % 1_000_000)
    elif isinstance(action, model.Sample):
        variables[action.assign_to] = float(action.sampler())
    elif isinstance(action, model.StringEdit):
        variables[action.variable] = _STRING_EDITS[action.op](_string(call, action.variable))
    elif isinstance(action, (model.Log, model.Warning, model.Error)):
        kind = type(action).__name__.lower()
        host.log(kind, host.render_text(action.message))
        if isinstance(action, model.Error):
            return ActionOutcome(fatal=host.render_text(action.message))
    elif isinstance(action, model.Exec):
        return _exec(host, action)
    elif isinstance(action, model.Jump):
        value = _operand(call, action.operand)
        if not math.isfinite(value):  # a variable the peer may have set
            return _scenario_error(f"<jump>: {value:g} is no message number")
        return ActionOutcome(jump_to=jump_targets(value))
    elif isinstance(action, model.SetDest):
        port = host.render_text(action.port).strip()
        if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
            return _scenario_error(f"<setdest>: port {port[:40]!r} is no port")
        host.set_destination(host.render_text(action.host), int(port))
    return ActionOutcome()


def _scenario_error(reason: str) -> ActionOutcome:
    return ActionOutcome(failure="scenario_error", failure_reason=reason)


def _compare(call: CallContext, action: model.Test | model.Strcmp) -> ActionOutcome:
    """<test> on doubles, <strcmp> on strings; check_it fails the call when false."""
    if isinstance(action, model.Test):
        left, right = to_number(call, action.variable), _operand(call, action.operand)
        result: float | bool = _COMPARE[action.compare](left, right)
        holds = bool(result)
        shown = f"{action.variable}:{left:f} {action.compare} {right:f}"
    else:
        first = _string(call, action.variable)
        second = _string(call, action.variable2) if action.variable2 is not None else action.value or ""
        result = float((first > second) - (first < second))
        holds = result == 0
        shown = f"{action.variable}:{first!r} and {second!r}"
    if (action.check_it and not holds) or (action.check_it_inverse and holds):
        inverse = "" if action.check_it else "_inverse"
        return ActionOutcome(
            failure="scenario_error",
            failure_reason=f"<{type(action).__name__.lower()}> {shown} failed check_it{inverse}",
        )
    if action.assign_to is not None:
        call.variables[action.assign_to] = result
    return ActionOutcome()


_STRING_EDITS: dict[str, Callable[[str], str]] = {
    "trim": lambda text: text.strip(" \t\n\r\f\v"),
    "urlencode": lambda text: urllib.parse.quote(text, safe=""),
    "urldecode": urllib.parse.unquote_plus,
}


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
