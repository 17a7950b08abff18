"""One call: a small interpreter walking the scenario, driven by messages and timers.

Like SIPp, a call is a state machine, not a task: it advances through sends, pauses
and actions until it must wait (a recv, a pause), and every incoming message is
matched against the scenario from the current position (SIPp's rules for optional
steps, retransmissions and unexpected messages). No thread or task per call.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Protocol

from gossipper.engine import authentication, default_messages
from gossipper.engine.actions import ActionOutcome, is_set, run_actions, to_number
from gossipper.engine.call_journal import CallJournal
from gossipper.engine.context import CallContext
from gossipper.engine.keywords import AUTH_PLACEHOLDER, next_url, render_message, resolve
from gossipper.engine.settings import CallPolicy, DefaultBehavior
from gossipper.media.sdp import sdp_of_body
from gossipper.scenario import model
from gossipper.scenario.model import PAUSED_UNTIL, RETURN_ADDRESS, UNEXPECTED_LABEL
from gossipper.sip.message import SentFacts, SipMessage, SipParseError, facts_of, sent_facts
from gossipper.sip.transport import Address, SipTransport
from gossipper.stats.counters import RunCounters

AUTO_ANSWERED = ("INFO", "NOTIFY", "OPTIONS", "UPDATE")
MAX_PAUSE_MS = 2**31 - 1  # SIPp's int milliseconds: about 24.8 days
_AUTH_MARK = AUTH_PLACEHOLDER.encode()
_CARRY_ON = ActionOutcome()  # what a step without actions asks: read, never changed


class Timer(Protocol):
    def cancel(self) -> None: ...


class CallHost(Protocol):
    """Everything a call needs from the run around it, its clock and timers included.

    A call never reads the time, arms a timer or touches a socket by itself, so its
    rules (matching, retransmissions, timeouts, aborts) run unchanged against a host
    that is only a clock and a list of what was sent.
    """

    counters: RunCounters
    scenario: model.Scenario
    policy: CallPolicy

    def now(self) -> float:
        """Seconds on a monotonic clock."""
        ...

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Timer: ...
    def transmit(self, data: bytes, transport: SipTransport, destination: Address) -> None: ...
    def trace_message(self, direction: str, data: bytes, peer: Address, transport: SipTransport) -> None: ...
    def trace_error(self, text: str) -> None: ...
    def log(self, kind: str, text: str) -> None: ...
    def media_action(self, call: Call, action: model.Exec) -> tuple[str, str] | None: ...
    def media_stop(self, call: Call) -> None: ...
    def media_sdp(self, call: Call, sdp: bytes) -> None: ...
    def run_command(self, command: str) -> None: ...
    def internal_command(self, command: str) -> None: ...
    def fatal_error(self, text: str) -> None: ...
    def send_twin_command(self, call: Call, data: bytes) -> None: ...
    def abort_twin_call(self, call: Call) -> None: ...
    def call_ended(self, call: Call, failure_class: str | None, reason: str, *, counted: bool = True) -> None:
        """The call is over: failed (a class), successful (None); not `counted`, neither."""
        ...


class SentMessage:
    """A message as it went out. Parsed only when something reads its fields: most ACKs
    and BYEs never are, and parsing every one back is a cost per call (bench/sip_rate.py);
    a response's few facts are read without building it (sent_facts)."""

    def __init__(self, data: bytes, index: int, method: str | None) -> None:
        self.data = data
        self.index = index
        self.method = method  # the request method the template names; None for a response
        self.parsed: SipMessage | None = None
        self.facts: SentFacts | None = None

    @property
    def message(self) -> SipMessage:
        if self.parsed is None:
            self.parsed = SipMessage.parse(self.data)
        return self.parsed

    def read_facts(self) -> SentFacts:
        """is_request, method, status_code, cseq_method, To; SipParseError if it does not parse."""
        facts = self.facts
        if facts is None:
            parsed = self.parsed
            facts = self.facts = sent_facts(self.data) if parsed is None else facts_of(parsed)
        return facts

    @property
    def request_method(self) -> str:
        return self.method or self.read_facts()[1]


class Call:
    def __init__(
        self,
        host: CallHost,
        context: CallContext,
        transport: SipTransport,
        is_server: bool,
        owns_transport: bool = False,
    ) -> None:
        self.host = host
        self.context = context
        self.transport = transport
        self.is_server = is_server
        self.owns_transport = owns_transport  # -t un / tn: closed with the call
        self.scenario = host.scenario
        self.policy = host.policy
        self.index = 0
        self.finished = False
        self.started_at = host.now()
        self.established = False
        self.ack_pending = False
        self.methods_sent: tuple[str, ...] = ()  # few, and none at all for most server calls
        self.last_sent: SentMessage | None = None
        self.last_invite: SipMessage | None = None  # received, or sent and read back (_invite)
        # The INVITE sent, parsed back only when something reads it: few calls ever do
        self._invite_unread: SentMessage | None = None
        self._local_party_from: SentMessage | None = None  # the sent INVITE whose From it is
        self.last_response: SipMessage | None = None
        self.local_party: str | None = None  # our From/To header value inside the dialog
        self.remote_party: str | None = None
        self.invite_sent_at: float | None = None
        # -call_records: what the call sent and received, step by step, and its response
        # times; None (nothing kept) unless the run writes call records.
        self.journal: CallJournal | None = None
        # SIPp starts every response-time timer with the call; start_rtd restarts one, and a
        # stop without repeat_rtd ends it (None). Only those are kept, and only once there is one
        self._rtd_started: dict[str, float | None] | None = None
        self.last_recv_hash: int | None = None
        self.last_recv_index = -1
        self.retrans_of_recv_hash: int | None = None  # a re-received message to answer again
        self.retrans_reply: SentMessage | None = None
        self._retrans_count = 0
        self._retrans_delay_ms = 0
        self._retrans_timer: Timer | None = None
        self._wait_timer: Timer | None = None
        self._in_advance = False
        # A failed action's (failure class, reason), or (None, reason) after a nop's stop_call:
        # what the call's end counts instead of a success, as SIPp's last_action_result.
        self._verdict: tuple[str | None, str] | None = None
        self._queued: tuple[SipMessage, int] | None = None  # for the recv after _unexp.main
        self._pause_ends_at = 0.0
        self._paused_step: model.Pause | None = None
        self._invite_cseq_received: int | None = None  # -default_behaviors cseq checks ACKs against it

    # ------------------------------------------------------------------ running
    @property
    def call_id(self) -> str:
        return self.context.call_id

    def start(self) -> None:
        self._advance()

    def _step(self) -> model.Step | None:
        steps = self.scenario.steps
        return steps[self.index] if self.index < len(steps) else None

    def _advance(self) -> None:
        """Run steps until one must wait; re-entrancy safe (actions may end the call)."""
        if self._in_advance:
            return
        self._in_advance = True
        try:
            while not self.finished:
                step = self._step()
                if step is None:
                    self._end_of_scenario()
                    return
                if not self._should_run(step):
                    self.index += 1
                    continue
                # tuples, not `A | B`: mypyc tests its native classes directly, where a union
                # is built (and its classes looked up) on every test
                if isinstance(step, (model.Pause, model.Nop, model.SendCmd)):
                    self.host.counters.count_message(step.counter)  # SIPp's do_bookkeeping
                if isinstance(step, model.Send):
                    if not self._do_send(step):
                        return
                    self._goto_next(step)
                elif isinstance(step, (model.Recv, model.RecvCmd)):
                    if self._queued is not None and isinstance(step, model.Recv):
                        message, digest = self._queued
                        self._queued = None
                        self._match(message, digest)  # moves the call on, or ends it
                        continue
                    self._wait_for_message(step)
                    return
                elif isinstance(step, model.Pause):
                    if self._start_pause(step):
                        return
                elif isinstance(step, model.Nop):
                    if not self._apply(self._actions(step, None), step):
                        return
                    self._goto_next(step)
                elif isinstance(step, model.SendCmd):
                    self._send_twin(step)
                    self._goto_next(step)
        finally:
            self._in_advance = False

    def _should_run(self, step: model.Step) -> bool:
        if step.condexec is None:
            return True
        result = is_set(self.context.variables.get(step.condexec))
        return result != step.condexec_inverse

    def _next_index(self, step: model.Step, index: int) -> int:
        if step.next is None:
            return index + 1
        if step.test is not None and not is_set(self.context.variables.get(step.test)):
            return index + 1
        if step.chance is not None and random.random() >= step.chance:
            return index + 1
        return self.scenario.labels[step.next]

    def _goto_next(self, step: model.Step) -> None:
        self.index = self._next_index(step, self.index)

    def _actions(self, step: model.Step, message: SipMessage | None) -> ActionOutcome:
        if not step.actions:
            return _CARRY_ON
        return run_actions(self, step.actions, message, self._jump_target)

    def _jump_target(self, value: float) -> int:
        """<jump value=N>: N counts the scenario's messages as SIPp does (labels are no steps);
        the actions refuse a value that is no number (a variable the peer set to inf or nan)."""
        return min(max(0, int(value)), len(self.scenario.steps))

    def _apply(self, outcome: ActionOutcome, step: model.Step) -> bool:
        """Act on what the step's actions asked; False when the call ended.

        As SIPp (call.cpp executeMessage, process_incoming, terminate): a failed action does
        not stop the call, which runs to the end of its scenario and is counted failed there;
        after a <send> SIPp drops the actions' result altogether. stop_call ends the call at
        once only from a recv (rejectCall: failed, nothing more sent); from a nop it too
        waits for the end, which then counts the call neither failed nor successful."""
        if outcome.fatal is not None:
            self.host.fatal_error(outcome.fatal)
            return False
        if outcome.failure or outcome.stop_call:
            verdict = (outcome.failure, outcome.failure_reason or "stopped by stop_call")
            if isinstance(step, model.Send):
                where = f"call {self.call_id}: step {self.index}"
                self.host.trace_error(f"{where}: {verdict[1]} (an action of a send: no effect, as in SIPp)")
            elif outcome.stop_call and isinstance(step, (model.Recv, model.RecvCmd)):
                self.host.counters.calls_rejected += 1
                self._finish("scenario_error", "stopped by stop_call")
                return False
            else:
                self._verdict = verdict
        if outcome.jump_to is not None:
            self.index = outcome.jump_to - 1  # _goto_next adds one, as SIPp's jump does
        return True

    # ------------------------------------------------------------------ sending
    def render(self, template: model.MessageTemplate) -> bytes:
        return render_message(self.context, template)

    def render_text(self, template: model.MessageTemplate) -> str:
        return template.render_text(lambda token: resolve(self.context, token))

    def _do_send(self, step: model.Send) -> bool:
        self.context.send_index = self.index + 1
        method = step.message.method
        if method is not None and method not in ("ACK", "CANCEL"):
            self.context.cseq += 1
        data = self.render(step.message)
        if data.find(_AUTH_MARK) >= 0:  # `in` on bytes raises and clears an error first
            data = self._authenticate(data)
        if _lacks_request_uri(data):
            first_line = data.split(b"\r\n", 1)[0].decode("utf-8", errors="replace")
            where = f"step {self.index} (line {step.line})"
            self._abort("scenario_error", f"{where} renders a request line without a URI: {first_line!r}")
            return False
        sent = SentMessage(data, self.index, method)
        # What is read back later must parse now: responses and INVITEs always are, and a
        # step's actions see the message. A plain ACK or BYE goes out as rendered.
        message: SipMessage | None = None
        if method is None or method == "INVITE" or step.actions:
            try:
                if step.actions:
                    message = sent.message
                sent.read_facts()
            except SipParseError as error:
                self._abort("scenario_error", f"step {self.index} renders an invalid SIP message: {error}")
                return False
        self._record_sent(sent)
        if self.journal is not None:
            self.journal.sent(self.index, sent, self.host.now())
        counters = self.host.counters
        if self._lost(step):
            counters.steps[self.index].messages += 1
        else:
            self._transmit(data)
            counters.steps[self.index].messages += 1
        self.last_sent = sent
        if self.last_recv_hash is not None:
            self.retrans_of_recv_hash = self.last_recv_hash
            self.retrans_reply = self.last_sent
        now = self.host.now()
        for name in step.start_rtd:
            self._set_rtd(name, now)
        if step.rtd:
            self._stop_rtds(step.rtd, now, step.repeat_rtd)
        counters.count_message(step.counter)
        self._cancel_retrans()
        if step.retrans_ms and not self.transport.is_reliable and self.policy.retransmissions:
            self._retrans_count = 0
            self._retrans_delay_ms = step.retrans_ms
            self._retrans_timer = self.host.call_later(step.retrans_ms / 1000, self._retransmit)
        return self._apply(self._actions(step, message), step)

    def _record_sent(self, sent: SentMessage) -> None:
        method = sent.method
        if method is None:  # a response, or a request line the template builds from keywords
            is_request, method, status_code, cseq_method, to = sent.read_facts()
            if not is_request:
                if cseq_method == "INVITE" and 200 <= (status_code or 0) < 300:
                    self.local_party = to
                    self.ack_pending = True
                return
        if method not in self.methods_sent:
            self.methods_sent += (method,)
        if method == "INVITE":
            self._invite_unread = sent
            self.last_invite = sent.parsed
            if self.invite_sent_at is None:
                self.invite_sent_at = self.host.now()
            if self.local_party is None and self._local_party_from is None:
                self._local_party_from = sent
        elif method == "ACK":
            self.established = self.established or self.ack_pending
            self.ack_pending = False

    def _transmit(self, data: bytes) -> None:
        self.host.transmit(data, self.transport, self.context.remote)
        self.host.counters.messages_sent += 1

    def _authenticate(self, data: bytes) -> bytes:
        user = self.policy.auth_username or self.context.run.keywords.service
        data, problem = authentication.authorize(
            data, self.context, user, self.policy.auth_password, self.policy.auth_uri
        )
        if problem is not None:
            self.host.trace_error(f"call {self.call_id}: {problem}")
        return data

    def _retransmit(self) -> None:
        self._retrans_timer = None
        sent = self.last_sent
        if self.finished or sent is None:
            return
        is_invite = sent.request_method == "INVITE"
        if self._retrans_count >= self.policy.max_retrans(is_invite):
            self.host.counters.steps[sent.index].timeouts += 1
            reason = f"no answer after {self._retrans_count} retransmissions of step {sent.index}"
            self._timed_out(self.scenario.steps[sent.index].ontimeout, reason, retransmissions=True)
            return
        self._retrans_count += 1
        self.host.counters.retransmissions += 1
        if self.journal is not None:
            self.journal.retransmissions += 1
        self.host.counters.steps[sent.index].retransmissions += 1
        self._transmit(sent.data)
        self._retrans_delay_ms = self._retrans_delay_ms * 2
        if not is_invite:
            self._retrans_delay_ms = min(self._retrans_delay_ms, self.policy.t2_ms)
        self._retrans_timer = self.host.call_later(self._retrans_delay_ms / 1000, self._retransmit)

    def _cancel_retrans(self) -> None:
        if self._retrans_timer is not None:
            self._retrans_timer.cancel()
            self._retrans_timer = None

    def _set_rtd(self, name: str, started: float | None) -> None:
        """Restart a response-time timer (started: now), or stop it (None)."""
        if self._rtd_started is None:
            self._rtd_started = {}
        self._rtd_started[name] = started

    def _stop_rtds(self, names: list[str], now: float, repeat: bool) -> None:
        for name in names:
            # Every timer named by the scenario started with the call (SIPp), unless restarted
            # since; a stopped one (None) measures nothing until it is started again.
            started = (
                self.started_at if self._rtd_started is None else self._rtd_started.get(name, self.started_at)
            )
            if started is None:
                continue
            bounds = self.scenario.response_time_repartition
            stat = self.host.counters.rtd_stat(name, bounds) if bounds else self.host.counters.rtd_stat(name)
            stat.add((now - started) * 1000)
            if self.journal is not None:
                self.journal.response_times_ms[name] = (now - started) * 1000
            if not repeat:
                self._set_rtd(name, None)

    # ------------------------------------------------------------------ waiting
    def _compact_retained(self) -> None:
        """The call waits: what it keeps of the messages it holds is their bytes."""
        for message in (self.context.last_message, self.last_invite, self.last_response):
            if message is not None:
                message.compact()

    def _wait_for_message(self, step: model.Recv | model.RecvCmd) -> None:
        self._compact_retained()
        timeout_ms = step.timeout_ms if step.timeout_ms else self.policy.recv_timeout_ms
        if timeout_ms:
            self._set_wait_timer(timeout_ms / 1000, self._recv_timed_out)

    def _set_wait_timer(self, delay_s: float, callback: Callable[[], None]) -> None:
        if self._wait_timer is not None:
            self._wait_timer.cancel()
        self._wait_timer = self.host.call_later(delay_s, callback)

    def _recv_timed_out(self) -> None:
        self._wait_timer = None
        step = self._step()
        if self.finished or step is None:
            return
        self.host.counters.steps[self.index].timeouts += 1
        self._timed_out(step.ontimeout, f"timeout while waiting at step {self.index}")

    def _timed_out(self, ontimeout: str | None, reason: str, retransmissions: bool = False) -> None:
        """A recv's wait or a send's retransmissions ran out: go to the ontimeout label, or
        fail the call. SIPp fails it too when the label has nothing after it."""
        if ontimeout is not None:
            target = self.scenario.labels[ontimeout]
            if target < len(self.scenario.steps):
                if self._wait_timer is not None:
                    self._wait_timer.cancel()
                    self._wait_timer = None
                self.index = target
                self._advance()
                return
            reason = f"{reason}; its ontimeout label {ontimeout!r} ends the scenario"
        self.host.counters.timeouts += 1
        self.host.counters.calls_max_retrans += retransmissions  # SIPp's FailedMaxUDPRetrans
        self._abort("timeout", reason)

    def _start_pause(self, step: model.Pause) -> bool:
        """SIPp's executeMessage: the length is drawn first, then the pause's actions run as it
        starts (a jump among them decides where the call goes when it ends). -> whether the
        call waits; a pause of 0 ms that can go nowhere but on (SIPp's uac with -d 0) is over
        at once, without a turn of the loop."""
        delay_ms = self._pause_ms(step)
        if delay_ms is None:
            return True
        self.host.counters.steps[self.index].messages += 1
        if not self._apply(self._actions(step, None), step):
            return True
        if delay_ms <= 0 and not step.actions and step.next is None:
            self._goto_next(step)
            return False
        self._paused_step = step
        self._compact_retained()
        self._pause_ends_at = self.host.now() + max(0, delay_ms) / 1000
        self._set_wait_timer(max(0, delay_ms) / 1000, self._pause_over)
        return True

    def _pause_ms(self, step: model.Pause) -> int | None:
        """None when a <pause variable> holds no usable length: the call has failed."""
        if step.variable:  # a value the peer may have sent (ereg), so anything at all
            value = to_number(self.context, step.variable)
            if not (math.isfinite(value) and value <= MAX_PAUSE_MS):
                self._abort(
                    "scenario_error",
                    f"step {self.index}: <pause variable> ${step.variable} holds {value:g}, "
                    f"not a pause of at most {MAX_PAUSE_MS} ms",
                )
                return None
            return int(value)
        if step.milliseconds is not None:
            return step.milliseconds
        sample = step.sample_ms()
        if sample is not None:
            return int(sample)
        return self.policy.default_pause_ms(step.default_ms)

    def _pause_over(self) -> None:
        self._wait_timer = None
        step = self._paused_step
        if self.finished or step is None:
            return
        self._paused_step = None
        self._goto_next(step)
        self._advance()

    # ------------------------------------------------------------------ receiving
    def on_message(self, message: SipMessage, raw: bytes, source: Address, transport: SipTransport) -> None:
        """Match an incoming message against the scenario from the current step (SIPp's rules)."""
        if self.finished:
            return
        counters = self.host.counters
        counters.messages_received += 1
        self.host.trace_message("received", raw, source, transport)
        if message.header("To") is None:
            self._process_unexpected(message, " (no To header)")  # SIPp: it belongs to no step
            return
        if transport.is_reliable:
            self.transport = transport
        if self.policy.ignore_during_pause and isinstance(self._step(), model.Pause):
            return  # -pause_msg_ign: SIPp drops it before any matching
        if (
            message.method == "ACK"
            and self.policy.has(DefaultBehavior.CHECK_ACK_CSEQ)
            and message.cseq_number != self._invite_cseq_received
        ):
            reason = f"ACK CSeq {message.cseq_number} is not the INVITE's ({self._invite_cseq_received or 0})"
            self.host.log("warning", f"call {self.call_id}: {reason}: call aborted")
            self._finish("unexpected_sip", reason)  # SIPp's checkAckCSeq: no BYE, the call is deleted
            return
        if self.is_server and self.index == 0 and self.last_recv_index < 0:
            self.context.remote = source
        digest = retransmission_digest(message, raw) if self.policy.loose_retrans_check else hash(raw)
        if not transport.is_reliable and self.policy.retransmissions and self._handle_retransmission(digest):
            return
        self._match(message, digest)

    def _match(self, message: SipMessage, digest: int) -> None:
        found = self._find_recv(message)
        if found is None:
            self._unexpected(message, digest)
            return
        self._accept(found, message, digest)

    def _handle_retransmission(self, digest: int) -> bool:
        if digest == self.retrans_of_recv_hash and self.retrans_reply is not None:
            counters = self.host.counters
            counters.retransmissions += 1
            counters.steps[self.retrans_reply.index].retransmissions += 1
            if self.journal is not None:
                self.journal.retransmissions += 1
            self._transmit(self.retrans_reply.data)
            return True
        if digest == self.last_recv_hash and self.last_recv_index >= 0:
            self.host.counters.steps[self.last_recv_index].retransmissions += 1
            return True
        return False

    def _matches(self, step: model.Step, message: SipMessage) -> bool:
        """SIPp's matches_scenario: regexp_match is a search (POSIX regexec, no implicit
        anchors), over the method of a request or over the digits of a status code."""
        if not isinstance(step, model.Recv):
            return False
        if step.expects_response:
            if message.is_request:
                return False
            code = message.status_code or 0
            if step.response_regexp is not None:
                if step.pattern().search(str(code)) is None:
                    return False
            elif code != step.response:
                return False
            return not self.methods_sent or message.cseq_method in self.methods_sent
        return message.is_request and step.accepts_request(message.method)

    def _find_recv(self, message: SipMessage) -> int | None:
        steps = self.scenario.steps
        for index in range(self.index, len(steps)):
            step = steps[index]
            if self._matches(step, message):
                return index
            if not (isinstance(step, model.Recv) and step.optional):
                break
        contiguous = True
        for index in range(self.index - 1, -1, -1):
            step = steps[index]
            if not (isinstance(step, model.Recv) and step.optional):
                contiguous = False
            if self._matches(step, message):
                if contiguous or (isinstance(step, model.Recv) and step.optional_global):
                    return index
                if self._resend_ack_after(index, message):
                    return -1
                # SIPp searches on: an optional=global recv further back may still take it
        return None

    def _resend_ack_after(self, index: int, message: SipMessage) -> bool:
        """A late copy of an INVITE's response, its recv behind a mandatory step: SIPp re-sends
        the ACK <send> that follows that recv, which quenches the peer's retransmissions. Any
        other late match (a 180 once the 200 was ACKed) is an unexpected message."""
        if message.is_request or message.cseq_method != "INVITE":
            return False
        steps = self.scenario.steps
        if index + 1 >= len(steps):
            return False
        step = steps[index + 1]
        if not (isinstance(step, model.Send) and step.message.method == "ACK"):
            return False
        self.context.send_index = index + 2
        self._transmit(self.render(step.message))
        self.host.counters.steps[index].retransmissions += 1
        return True

    def _accept(self, index: int, message: SipMessage, digest: int) -> None:
        if index < 0:
            return
        step = self.scenario.steps[index]
        assert isinstance(step, model.Recv)
        counters = self.host.counters
        if self._lost(step):
            return
        counters.steps[index].messages += 1
        self._settle_retransmission(index, message)
        self._learn_from(step, message)
        now = self.host.now()
        if self.journal is not None:
            self.journal.received(index, message, now)
        if step.rtd:
            self._stop_rtds(step.rtd, now, step.repeat_rtd)
        for name in step.start_rtd:
            self._set_rtd(name, now)
        counters.count_message(step.counter)
        self.last_recv_hash = digest
        self.last_recv_index = index
        self.retrans_of_recv_hash = None
        outcome = self._actions(step, message)
        advances = not step.optional or (
            step.next is not None and (step.test is None or is_set(self.context.variables.get(step.test)))
        )
        if not self._apply(outcome, step):
            return
        if not advances:
            return
        if self._wait_timer is not None:
            self._wait_timer.cancel()
            self._wait_timer = None
        if outcome.jump_to is not None:
            self.index += 1
        else:
            self.index = self._next_index(step, index)
        self._advance()

    def _lost(self, step: model.Send | model.Recv) -> bool:
        """Lost on purpose: the step's lost= percentage, else -lost's."""
        percent = step.lost if step.lost is not None else self.policy.lost_percent
        return percent > 0 and random.random() * 100 < percent

    def _settle_retransmission(self, index: int, message: SipMessage) -> None:
        """SIPp's rule: a response, ACK, CANCEL, BYE or PRACK matched past the step being
        retransmitted ends its retransmissions, except that a provisional response to a
        non-INVITE only slows them to one every T2 until the final response (RFC 3261 17.1.2.2)."""
        sent = self.last_sent
        if self._retrans_timer is None or sent is None or index <= sent.index:
            return
        if message.is_request:
            if message.method in ("ACK", "CANCEL", "BYE", "PRACK"):
                self._cancel_retrans()
            return
        if (message.status_code or 0) < 200 and message.cseq_method != "INVITE":
            self._cancel_retrans()
            self._retrans_delay_ms = self.policy.t2_ms
            self._retrans_timer = self.host.call_later(self.policy.t2_ms / 1000, self._retransmit)
            return
        self._cancel_retrans()

    def _learn_from(self, step: model.Recv, message: SipMessage) -> None:
        """Remember what later keywords and default messages need of this message."""
        context = self.context
        context.last_message = message
        sdp = _sdp_in(message)
        if sdp is not None:
            context.remote_sdp = sdp
            self.host.media_sdp(self, sdp)
        if message.is_request:
            context.peer_tag = message.from_tag or context.peer_tag
            if message.method == "INVITE":
                self._invite_cseq_received = message.cseq_number
                self.remote_party = message.header("From")
                if self.last_invite is None and self._invite_unread is None:
                    self.last_invite = message
            elif message.method == "ACK":
                self.established = True
                self.ack_pending = False
            context.cseq = max(context.cseq, message.cseq_number)
        else:
            self.last_response = message
            context.peer_tag = message.to_tag or context.peer_tag
            code = message.status_code or 0
            if message.cseq_method == "INVITE":
                if self.invite_sent_at is not None and code >= 200:
                    self.host.counters.invite_rtt.add((self.host.now() - self.invite_sent_at) * 1000)
                    if self.journal is not None:
                        self.journal.response_times_ms["invite"] = (
                            self.host.now() - self.invite_sent_at
                        ) * 1000
                    self.invite_sent_at = None
                if 200 <= code < 300:
                    self.remote_party = message.header("To")
                    self.ack_pending = True
                    self.established = True
        if step.rrs and context.route_set is None:  # SIPp records a dialog's route set once
            self._learn_route_set(message)
        if step.auth and message.status_code in (401, 407):
            if message.status_code == 401:
                context.challenge = ("Authorization", message.header("WWW-Authenticate") or "")
            else:
                context.challenge = ("Proxy-Authorization", message.header("Proxy-Authenticate") or "")

    def _learn_route_set(self, message: SipMessage) -> None:
        """SIPp's computeRouteSetAndRemoteTargetUri: the Record-Route entries in the order this
        side routes (a response's reversed), the Contact the remote target ([next_url]); a
        first hop without ;lr is a strict router, so it becomes the target and the Contact
        the last route (RFC 3261 12.2.1.1)."""
        contact = message.header("Contact")
        if not contact:
            self.host.trace_error(f'call {self.call_id}: rrs="true" on a message without Contact')
            return
        records = message.header_values("Record-Route")
        routes = [part.strip() for value in records for part in value.split(",") if part.strip()]
        if not message.is_request:
            routes.reverse()
        target = contact
        if routes and ";lr" not in routes[0]:
            target, routes = routes[0], [*routes[1:], contact.strip()]
        if routes:
            self.context.route_set = routes
        self.context.next_url = _uri_of(target)

    # ------------------------------------------------------------------ unexpected
    def _unexpected(self, message: SipMessage, digest: int) -> None:
        """SIPp's order: the scenario's own _unexp.main handler, else the automatic responses
        (checkAutomaticResponseMode: BYE, CANCEL, PING, and INFO/NOTIFY/OPTIONS/UPDATE under
        -aa), else its process_unexpected."""
        policy = self.policy
        method = message.method if message.is_request else None
        if method == "ACK" and self.is_server:
            return  # a late ACK for a response we already moved past
        if self.journal is not None:
            self.journal.received(self._unexpected_step(), message, self.host.now(), expected=False)
        if self._jump_to_unexpected_label(message, digest):
            return
        if method in ("BYE", "CANCEL"):
            self._count_unexpected()
            if not policy.has(DefaultBehavior.ABORT_UNEXPECTED):
                self.host.trace_error(f"call {self.call_id}: continuing on an unexpected {method}")
                return
            if policy.has(DefaultBehavior.BYE):
                self._answer_ok(message)
            self.context.last_message = message
            self._abort_twin_call()
            self._finish("unexpected_sip", f"unexpected {method} at step {self._unexpected_step()}")
            return
        if method == "PING":
            # SIPp's pingreply: answer, and the call ends neither failed nor successful.
            if policy.has(DefaultBehavior.PING_REPLY):
                self.host.counters.auto_answered += 1
                self._answer_ok(message)
                self._abort_twin_call()
                self._finish(None, "ended by a PING", counted=False)
            return
        if method in AUTO_ANSWERED and policy.auto_answer:
            self.host.counters.auto_answered += 1
            self._answer_ok(message)  # the call's last message stays what it was, as in SIPp
            return
        self._process_unexpected(message)

    def _jump_to_unexpected_label(self, message: SipMessage, digest: int) -> bool:
        """SIPp's _unexp.main: the call notes where it was (_unexp.retaddr, the step; and
        _unexp.pausedaddr, the end of its pause) and goes to the label, where the message is
        matched again by the recv that follows. Already there (_unexp.retaddr not 0), the
        message is an ordinary unexpected one."""
        target = self.scenario.labels.get(UNEXPECTED_LABEL)
        if target is None:
            return False
        variables = self.context.variables
        if to_number(self.context, RETURN_ADDRESS) != 0:
            self._process_unexpected(message)
            return True
        variables[RETURN_ADDRESS] = float(self.index)  # SIPp's message number: labels are no steps
        paused = self._wait_timer is not None and isinstance(self._step(), model.Pause)
        variables[PAUSED_UNTIL] = float(int(self._pause_ends_at * 1000)) if paused else 0.0
        if self._wait_timer is not None:
            self._wait_timer.cancel()
            self._wait_timer = None
        self._queued = (message, digest)
        self.index = target
        self._advance()
        return True

    def _process_unexpected(self, message: SipMessage, why: str = "") -> None:
        """Count it at the current step; with abortunexp the call fails (abortCall's tidy-up)."""
        self._count_unexpected()
        step_index = self._unexpected_step()
        first_line = message.first_line
        if not message.is_request:
            self.host.counters.unexpected_response(message.status_code or 0)
        self.host.trace_error(
            f"unexpected message{why} for call {self.call_id} at step {step_index}: {first_line}"
        )
        if self.policy.has(DefaultBehavior.ABORT_UNEXPECTED):
            self.context.last_message = message
            if not message.is_request:
                self.last_response = message
            self._abort_twin_call()
            self._abort("unexpected_sip", f"unexpected {first_line!r} at step {step_index}")

    def _unexpected_step(self) -> int:
        return min(self.index, len(self.scenario.steps) - 1)

    def _count_unexpected(self) -> None:
        self.host.counters.unexpected_messages += 1
        self.host.counters.steps[self._unexpected_step()].unexpected += 1

    def _answer_ok(self, request: SipMessage) -> None:
        self._transmit(bytes(default_messages.ok_for(request, self._local_tag())))

    def _invite(self) -> SipMessage | None:
        unread = self._invite_unread
        if unread is not None:
            self._invite_unread = None
            self.last_invite = unread.message
        return self.last_invite

    def _local_party(self) -> str | None:
        """Our From/To header value inside the dialog."""
        sent = self._local_party_from
        if self.local_party is None and sent is not None:
            self._local_party_from = None
            self.local_party = sent.message.header("From")
        return self.local_party

    def _local_tag(self) -> str | None:
        party = self._local_party() or ""
        marker = party.lower().find(";tag=")
        return party[marker + 5 :].split(";")[0] if marker >= 0 else None

    # ------------------------------------------------------------------ twin (3PCC)
    def _send_twin(self, step: model.SendCmd) -> None:
        self.host.send_twin_command(self, self.render(step.message))

    def _abort_twin_call(self) -> None:
        """SIPp's 3pcc_abort: a 3PCC call that an unexpected message ends past its first step
        resets its twin's side of the call too."""
        if self.scenario.uses_3pcc and self.index > 0:
            self.host.abort_twin_call(self)

    def on_twin_command(self, message: SipMessage) -> None:
        step = self._step()
        if self.finished:
            return
        if not isinstance(step, model.RecvCmd):
            self.host.counters.unexpected_messages += 1
            self._abort("unexpected_sip", f"unexpected 3PCC command at step {self.index}")
            return
        self.context.last_message = message
        self.host.counters.steps[self.index].messages += 1
        self.host.counters.count_message(step.counter)
        if self._wait_timer is not None:
            self._wait_timer.cancel()
            self._wait_timer = None
        if not self._apply(self._actions(step, message), step):
            return
        self._goto_next(step)
        self._advance()

    # ------------------------------------------------------------------ actions host
    def log(self, kind: str, text: str) -> None:
        self.host.log(kind, text)

    def media_action(self, action: model.Exec) -> tuple[str, str] | None:
        return self.host.media_action(self, action)

    def run_command(self, command: str) -> None:
        self.host.run_command(command)

    def internal_command(self, command: str) -> None:
        self.host.internal_command(command)

    def set_destination(self, host: str, port: int) -> None:
        self.context.remote = (host.strip("[]"), port)

    # ------------------------------------------------------------------ ending
    def _abort(self, failure_class: str, reason: str) -> None:
        """A failed call: SIPp's abortCall tidies its dialog only under -default_behaviors bye."""
        if self.policy.has(DefaultBehavior.BYE):
            self._send_abort_messages()
        self._finish(failure_class, reason)

    def abort_now(self, failure_class: str = "cancelled", reason: str = "run stopped") -> None:
        """SIPp's call::abort, for each call still live at a hard stop (Q, -timeout): it fails,
        and a client call tidies its dialog whatever -default_behaviors says, so the peer
        keeps no dialog open: CANCEL before a final answer, ACK and BYE after a 2xx. A call
        only waiting out its final <timewait> has done all it had to: it succeeds."""
        if self.finished:
            return
        if self.in_final_timewait:
            self.end_timewait()
            return
        self._send_abort_messages()
        self._finish(failure_class, reason)

    @property
    def in_final_timewait(self) -> bool:
        return isinstance(self._step(), model.Timewait) and not self.finished

    def end_timewait(self) -> None:
        """The run stops while the call waits for late retransmissions: its scenario is done."""
        self._end_of_scenario()

    def terminate(self, failure_class: str, reason: str) -> None:
        """SIPp's call::terminate: the call fails where it stands, sending nothing (its
        connection is gone)."""
        self._finish(failure_class, reason)

    def abandon(self, tidy: bool = False) -> None:
        """The run quits under the call (stop_now, a signal): its timers and media stop and it
        is not counted, so it is still a current call in the final counters, as in SIPp.
        With tidy (stop_now) a client call first ends its dialog as abort_now does, so the
        peer keeps nothing open; SIPp exits without that."""
        if self.finished:
            return
        if tidy:
            self._send_abort_messages()
        self.finished = True
        self._cancel_retrans()
        if self._wait_timer is not None:
            self._wait_timer.cancel()
            self._wait_timer = None
        self.host.media_stop(self)

    def _send_abort_messages(self) -> None:
        """abortCall's messages: only a client call that got somewhere sends any (SIPp)."""
        if self.is_server or self.index == 0 or self.last_sent is None:
            return
        try:
            invite, response = self._invite(), self.last_response
            if not self.established and invite is not None and self._last_sent_invite():
                if response is not None and (response.status_code or 0) >= 400:
                    self._transmit(bytes(default_messages.ack_for_failure(invite, response)))
                elif response is not None:
                    self._transmit(bytes(default_messages.cancel_for(invite)))
            elif self.context.last_message is not None and self._local_party() and self.remote_party:
                if self.ack_pending and invite is not None:
                    self._transmit(bytes(self._dialog_request("ACK", invite.cseq_number)))
                self.context.cseq += 1
                self._transmit(bytes(self._dialog_request("BYE", self.context.cseq)))
        except (ValueError, IndexError) as error:
            self.host.trace_error(f"call {self.call_id}: could not build abort message: {error}")

    def _last_sent_invite(self) -> bool:
        sent = self.last_sent
        return sent is not None and sent.request_method == "INVITE"

    def _dialog_request(self, method: str, cseq: int) -> SipMessage:
        run = self.context.run
        # SIPp's default BYE goes to [next_url]; never to an empty Request-URI.
        invite = self._invite()
        target = next_url(self.context) or (invite.request_uri if invite else "") or ""
        local_port = self.context.local_port or run.local_port
        via_host = (
            f"{run.local_ip}:{local_port}" if ":" not in run.local_ip else f"[{run.local_ip}]:{local_port}"
        )
        return default_messages.in_dialog_request(
            method,
            target,
            self._local_party() or "",
            self.remote_party or "",
            self.call_id,
            cseq,
            via_host,
            run.transport_name,
            self.context.route_set,
        )

    def _end_of_scenario(self) -> None:
        """Past the last step: a success, unless an action failed or a nop stopped it."""
        if self._verdict is None:
            self._finish(None, "")
        else:
            failure_class, reason = self._verdict
            self._finish(failure_class, reason, counted=failure_class is not None)

    def _finish(self, failure_class: str | None, reason: str, *, counted: bool = True) -> None:
        """End the call: failed (a class), successful (None), or, not counted, neither."""
        if self.finished:
            return
        self.abandon()
        self.host.call_ended(self, failure_class, reason, counted=counted)

    @property
    def duration_ms(self) -> float:
        return (self.host.now() - self.started_at) * 1000


def _sdp_in(message: SipMessage) -> bytes | None:
    """The SDP a message carries: an SDP body, or (as SIPp's call.cpp reads it) the
    application/sdp part of a multipart body."""
    if not message.body:
        return None
    content_type = message.header("Content-Type") or ""  # a boundary is case-sensitive
    kind = content_type.lower()
    if "sdp" in kind:
        return message.body
    if kind.startswith("multipart/") and b"application/sdp" in message.body.lower():
        return sdp_of_body(message.body, content_type)
    return None


def _uri_of(name_addr: str) -> str:
    """The URI inside a Contact/Route value: between <> when present."""
    start = name_addr.find("<")
    if start >= 0:
        end = name_addr.find(">", start)
        return name_addr[start + 1 : end if end > 0 else None]
    return name_addr.split(";")[0].strip()


def _lacks_request_uri(data: bytes) -> bool:
    """'ACK  SIP/2.0': a request whose URI keyword ([next_url], [last_Request_URI]) came out
    empty. A peer would reject it as malformed; the call fails with the step named instead."""
    if data.startswith(b"SIP/"):
        return False
    end = data.find(b"\r\n")
    if end < 0:
        end = len(data)
    method_end = data.find(b" ", 0, end)  # found, not split: every request sent passes here
    if method_end < 0:
        return True
    uri_end = data.find(b" ", method_end + 1, end)
    return uri_end < 0 or uri_end == method_end + 1


def retransmission_digest(message: SipMessage, raw: bytes) -> int:
    """-rtcheck loose (RFC 2543 11.5): a request is the same one again when its To, From,
    Call-ID and CSeq are; a response also keeps its status line and body."""
    parts = [message.header(name) or "" for name in ("To", "From", "Call-ID", "CSeq")]
    if not message.is_request:
        head, _, body = raw.partition(b"\r\n\r\n")
        parts.append(head.split(b"\r\n", 1)[0].decode("utf-8", errors="replace"))
        parts.append(body.decode("utf-8", errors="replace"))
    return hash("\0".join(parts))
