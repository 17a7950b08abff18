"""An in-process CallHost: a virtual clock, timers in a heap, and a record of what a call sent.

A `Call` never reads the time, arms a timer or touches a socket itself; it asks its
host. `FakeHost` answers with a clock that only moves when a test calls `advance`,
fires the due timers in order on the way, and keeps every message the call sends
(parsed, with the virtual time it left at). Nothing here opens a socket, starts a
process or reads the wall clock, so a test of thirty seconds of retransmissions runs
in a millisecond and always the same way.

The module also builds what the far end would send: responses to a request the call
sent (same Via, From, Call-ID and CSeq; To with the peer's tag) and requests of a
peer inside the call's dialog.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable
from typing import NamedTuple

from gossipper.engine.call import Call, CallHost
from gossipper.engine.context import CallContext, RunContext
from gossipper.engine.injection import Injection
from gossipper.engine.settings import CallPolicy, KeywordSettings
from gossipper.scenario import model
from gossipper.scenario.loader import parse_scenario
from gossipper.sip.message import SipMessage
from gossipper.sip.transport import Address, SipTransport
from gossipper.stats.counters import RunCounters

LOCAL: Address = ("127.0.0.1", 5060)
REMOTE: Address = ("127.0.0.2", 5070)
PID = 4242
CALL_ID = f"1-{PID}@{LOCAL[0]}"
PEER_TAG = "peer-1"
PEER_CONTACT = f"<sip:peer@{REMOTE[0]}:{REMOTE[1]}>"

REASONS = {
    100: "Trying",
    180: "Ringing",
    183: "Session Progress",
    200: "OK",
    401: "Unauthorized",
    404: "Not Found",
    407: "Proxy Authentication Required",
    486: "Busy Here",
    487: "Request Terminated",
    500: "Server Internal Error",
}


# ---------------------------------------------------------------------- clock and network
class FakeTimer:
    """What call_later returns; cancelling it keeps it in the heap but it never fires."""

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False
        self.fired = False

    def cancel(self) -> None:
        self.cancelled = True

    @property
    def live(self) -> bool:
        return not (self.cancelled or self.fired)


class FakeTransport:
    """A SipTransport that is only its two properties: calls send through the host."""

    def __init__(self, is_reliable: bool = False, local_address: Address = LOCAL) -> None:
        self.is_reliable = is_reliable
        self.protocol_name = "TCP" if is_reliable else "UDP"
        self.local_address = local_address
        self.closed = False
        self.sent: list[tuple[bytes, Address]] = []  # anything sent past the host (a call never should)

    def send(self, data: bytes, remote: Address) -> None:
        self.sent.append((data, remote))

    def close(self) -> None:
        self.closed = True


class Sent(NamedTuple):
    """One message the call transmitted: parsed, where to, and when on the virtual clock."""

    message: SipMessage
    destination: Address
    at: float
    data: bytes
    transport: SipTransport

    @property
    def what(self) -> str:
        """The method of a request ("INVITE"), the code of a response ("200"): the helpers' names."""
        message = self.message
        return message.method if message.is_request else str(message.status_code)

    @property
    def cseq(self) -> str:
        return self.message.header("CSeq") or ""


class Ending(NamedTuple):
    failure_class: str | None  # None: the call succeeded
    reason: str
    at: float


class FakeHost:
    """CallHost for one or more calls, on a virtual clock that starts at `start`."""

    def __init__(
        self, scenario: model.Scenario, policy: CallPolicy | None = None, start: float = 0.0
    ) -> None:
        self.scenario = scenario
        self.policy = policy if policy is not None else CallPolicy()
        self.counters = RunCounters()
        self.counters.ensure_steps(len(scenario.steps))
        self.clock = start
        self._timers: list[tuple[float, int, FakeTimer]] = []
        self._order = itertools.count()
        self.sent: list[Sent] = []
        self.ended: list[Ending] = []
        self.uncounted: list[Ending] = []  # calls that ended neither failed nor successful
        self.errors: list[str] = []  # trace_error texts
        self.logs: list[tuple[str, str]] = []
        self.traces: list[tuple[str, bytes, Address]] = []  # (direction, data, peer) of trace_message
        self.media_actions: list[model.Exec] = []
        self.media_sdps: list[bytes] = []
        self.media_stopped: list[str] = []  # Call-IDs, in the order their media was stopped
        self.commands: list[str] = []
        self.internal_commands: list[str] = []
        self.twin_commands: list[bytes] = []
        self.fatal_errors: list[str] = []

    # ------------------------------------------------------------------ CallHost
    def now(self) -> float:
        return self.clock

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(self.clock + max(0.0, delay_s), callback)
        heapq.heappush(self._timers, (timer.when, next(self._order), timer))
        return timer

    def transmit(self, data: bytes, transport: SipTransport, destination: Address) -> None:
        self.sent.append(Sent(SipMessage.parse(data), destination, self.clock, data, transport))
        self.trace_message("sent", data, destination, transport)

    def trace_message(self, direction: str, data: bytes, peer: Address, transport: SipTransport) -> None:
        self.traces.append((direction, data, peer))

    def trace_error(self, text: str) -> None:
        self.errors.append(text)

    def log(self, kind: str, text: str) -> None:
        self.logs.append((kind, text))

    def media_action(self, call: Call, action: model.Exec) -> tuple[str, str] | None:
        self.media_actions.append(action)
        return None

    def media_stop(self, call: Call) -> None:
        self.media_stopped.append(call.call_id)

    def media_sdp(self, call: Call, sdp: bytes) -> None:
        self.media_sdps.append(sdp)

    def run_command(self, command: str) -> None:
        self.commands.append(command)

    def internal_command(self, command: str) -> None:
        self.internal_commands.append(command)

    def fatal_error(self, text: str) -> None:
        self.fatal_errors.append(text)

    def send_twin_command(self, call: Call, data: bytes) -> None:
        self.twin_commands.append(data)

    def abort_twin_call(self, call: Call) -> None:
        self.twin_commands.append(b"abort_call")

    def call_ended(self, call: Call, failure_class: str | None, reason: str, *, counted: bool = True) -> None:
        """Counted as the real run counts it (runner.Run.call_ended), and recorded."""
        counters = self.counters
        counters.calls_active -= 1
        if not counted:
            self.uncounted.append(Ending(failure_class, reason, self.clock))
            return
        if failure_class is None:
            counters.calls_succeeded += 1
            counters.call_length.add(call.duration_ms)
        else:
            counters.call_failed(failure_class)
        self.ended.append(Ending(failure_class, reason, self.clock))

    # ------------------------------------------------------------------ the clock
    def advance(self, seconds: float) -> None:
        """Move the clock forward, firing every timer that falls due on the way, in order."""
        self.advance_to(self.clock + seconds)

    def advance_to(self, when: float) -> None:
        # Timers armed by a callback fire in the same call if they fall due before `when`.
        while self._timers and self._timers[0][0] <= when + 1e-9:
            at, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self.clock = max(self.clock, at)
            timer.fired = True
            timer.callback()
        self.clock = max(self.clock, when)

    def run_until_idle(self, limit_s: float = 3600.0) -> None:
        """Fire timers until none is live; a call still arming them after `limit_s` is a bug."""
        deadline = self.clock + limit_s
        while (due := self.next_timer_at()) is not None:
            if due > deadline:
                raise AssertionError(f"timers still armed after {limit_s} s (next at {due})")
            self.advance_to(due)

    def next_timer_at(self) -> float | None:
        live = [at for at, _, timer in self._timers if timer.live]
        return min(live) if live else None

    @property
    def pending_timers(self) -> list[float]:
        """When each live timer will fire, soonest first."""
        return sorted(at for at, _, timer in self._timers if timer.live)

    # ------------------------------------------------------------------ the network
    def deliver(
        self,
        call: Call,
        message: SipMessage | bytes,
        source: Address = REMOTE,
        transport: SipTransport | None = None,
    ) -> bytes:
        """Hand the call a message as the dispatcher would (parsed, with its raw bytes)."""
        raw = message if isinstance(message, bytes) else bytes(message)
        call.on_message(
            SipMessage.parse(raw), raw, source, transport if transport is not None else call.transport
        )
        return raw

    # ------------------------------------------------------------------ what was sent
    def sent_what(self) -> list[str]:
        """Each sent message as "INVITE" or "200", in order."""
        return [sent.what for sent in self.sent]

    def sent_of(self, what: str) -> list[Sent]:
        return [sent for sent in self.sent if sent.what == what]

    def times_of(self, what: str) -> list[float]:
        return [sent.at for sent in self.sent_of(what)]

    def last(self, what: str | None = None) -> Sent:
        found = self.sent if what is None else self.sent_of(what)
        assert found, f"nothing sent as {what!r}; sent: {self.sent_what()}"
        return found[-1]

    def sent_since(self, count: int) -> list[Sent]:
        """What was sent after the first `count` messages (take len(host.sent) before acting)."""
        return self.sent[count:]

    # ------------------------------------------------------------------ how it ended
    @property
    def ending(self) -> Ending:
        assert len(self.ended) == 1, f"expected one ending, got {self.ended}"
        return self.ended[0]


def _conforms(host: FakeHost) -> CallHost:
    return host  # mypy checks here that FakeHost is a CallHost


# ---------------------------------------------------------------------- building calls
def load(xml: str, name: str = "test") -> model.Scenario:
    return parse_scenario(xml.encode(), f"{name}.xml")


def make_context(
    number: int = 1,
    call_id: str = CALL_ID,
    remote: Address = REMOTE,
    keywords: KeywordSettings | None = None,
    transport_name: str = "UDP",
) -> CallContext:
    """A call's context as the call factory makes it (cseq one below -base_cseq)."""
    keywords = keywords if keywords is not None else KeywordSettings()
    run = RunContext(
        keywords=keywords,
        local_ip=LOCAL[0],
        local_port=LOCAL[1],
        transport_name=transport_name,
        media_ip=LOCAL[0],
        media_base_port=6000,
        injection=Injection([]),
        pid=PID,
    )
    context = CallContext(
        run=run, number=number, call_id=call_id, remote=remote, user_id=number, cseq=keywords.base_cseq - 1
    )
    context.variables.update(keywords.variables)
    return context


def start_call(
    scenario: model.Scenario | str,
    policy: CallPolicy | None = None,
    *,
    is_server: bool = False,
    reliable: bool = False,
    start: float = 0.0,
) -> tuple[FakeHost, Call]:
    """A host and a started call (a client runs until it first waits; a server waits at once)."""
    if isinstance(scenario, str):
        scenario = load(scenario)
    host = FakeHost(scenario, policy, start=start)
    transport = FakeTransport(is_reliable=reliable)
    call = Call(
        host, make_context(transport_name="TCP" if reliable else "UDP"), transport, is_server=is_server
    )
    host.counters.calls_created += 1
    host.counters.calls_active += 1
    call.start()
    return host, call


# ---------------------------------------------------------------------- the far end's messages
def _with_tag(value: str, tag: str | None) -> str:
    if tag is None or ";tag=" in value.lower():
        return value
    return f"{value};tag={tag}"


def response_to(
    request: SipMessage,
    code: int,
    reason: str | None = None,
    *,
    to_tag: str | None = PEER_TAG,
    cseq: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> SipMessage:
    """The response a peer would send to `request`: every Via, From, Call-ID and CSeq copied,
    To tagged (except on 100), Contact on a dialog-making response."""
    lines = [("Via", via) for via in request.header_values("Via")]
    lines.append(("From", request.header("From") or ""))
    to = request.header("To") or ""
    lines.append(("To", to if code == 100 else _with_tag(to, to_tag)))
    lines.append(("Call-ID", request.call_id))
    lines.append(("CSeq", cseq if cseq is not None else request.header("CSeq") or ""))
    if 100 < code < 300:
        lines.append(("Contact", PEER_CONTACT))
    lines.extend(headers)
    if content_type is not None:
        lines.append(("Content-Type", content_type))
    lines.append(("Content-Length", str(len(body))))
    text = reason if reason is not None else REASONS.get(code, "Whatever")
    return SipMessage.parse(bytes(SipMessage(f"SIP/2.0 {code} {text}", lines, body)))


def request(
    method: str,
    uri: str,
    *,
    call_id: str,
    from_: str,
    to: str,
    cseq: int,
    branch: str,
    via_host: str = f"{REMOTE[0]}:{REMOTE[1]}",
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> SipMessage:
    lines = [
        ("Via", f"SIP/2.0/UDP {via_host};branch={branch}"),
        ("From", from_),
        ("To", to),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {method}"),
        ("Max-Forwards", "70"),
    ]
    if method not in ("ACK", "BYE", "CANCEL"):
        lines.append(("Contact", PEER_CONTACT))
    lines.extend(headers)
    lines.append(("Content-Length", str(len(body))))
    return SipMessage.parse(bytes(SipMessage(f"{method} {uri} SIP/2.0", lines, body)))


def peer_request(
    method: str, invite: SipMessage, cseq: int, *, peer_tag: str = PEER_TAG, branch: str | None = None
) -> SipMessage:
    """A request the called party sends inside the dialog our INVITE made (From and To swapped)."""
    contact = invite.header("Contact") or ""
    start, end = contact.find("<"), contact.find(">")
    uri = contact[start + 1 : end] if 0 <= start < end else invite.request_uri or ""
    return request(
        method,
        uri,
        call_id=invite.call_id,
        from_=_with_tag(invite.header("To") or "", peer_tag),
        to=invite.header("From") or "",
        cseq=cseq,
        branch=branch or f"z9hG4bK-peer-{method.lower()}-{cseq}",
    )
