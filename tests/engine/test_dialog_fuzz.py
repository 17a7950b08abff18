"""Property-based dialog fuzzing of the call engine, in process on FakeHost's virtual clock.

Whatever a peer sends a call, in any order (answers of any status to any request it made,
its own requests, retransmissions, time passing between them), the call never raises, ends
within its scenario's timers, and is counted exactly once: succeeded, failed with a class,
or (a stop) not counted. Built-in uac and uas and a UAC with actions on the answers.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gossipper.engine.call import Call
from gossipper.engine.settings import CallPolicy
from gossipper.scenario.builtins import load_builtin
from gossipper.sip.message import SipMessage
from tests.engine.fake_host import (
    CALL_ID,
    FakeHost,
    load,
    request,
    response_to,
    start_call,
)

CODES = [100, 180, 183, 200, 202, 300, 401, 404, 407, 486, 487, 500, 503, 603, 699]
METHODS = ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "UPDATE", "PRACK", "NOTIFY"]

# a peer's move: answer the call's n-th message sent, send a request, repeat the last, wait
_answer = st.tuples(st.just("answer"), st.integers(0, 20), st.sampled_from(CODES), st.booleans())
_request = st.tuples(st.just("request"), st.sampled_from(METHODS), st.integers(1, 5), st.booleans())
_repeat = st.tuples(st.just("repeat"), st.just(0), st.just(0), st.just(False))
_wait = st.tuples(st.just("wait"), st.integers(1, 40_000), st.just(0), st.just(False))
MOVES = st.lists(st.one_of(_answer, _request, _repeat, _wait), max_size=25)

UAC_WITH_ACTIONS = """<scenario name="uac with actions">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:sipp@[local_ip]:[local_port]>
Content-Length: 0
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true">
    <action>
      <ereg regexp="X-Delay: *([^\\r\\n]*)" search_in="msg" assign_to="_,delay"/>
      <todouble assign_to="delay" variable="delay"/>
    </action>
  </recv>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Content-Length: 0
]]></send>
  <pause variable="delay"/>
  <send retrans="500"><![CDATA[
BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Content-Length: 0
]]></send>
  <recv response="200" crlf="true"/>
</scenario>
"""

SCENARIOS = {
    "uac": (load_builtin("uac"), False),
    "uas": (load_builtin("uas"), True),
    "uac_actions": (load(UAC_WITH_ACTIONS), False),
}


def _peer_request(method: str, cseq: int, from_peer: bool) -> SipMessage:
    tag = ";tag=peer" if from_peer else ""
    return request(
        method,
        "sip:gossipper@127.0.0.1:5060",
        call_id=CALL_ID,
        from_=f"<sip:peer@127.0.0.1>{tag}",
        to="<sip:gossipper@127.0.0.1>",
        cseq=cseq,
        branch=f"z9hG4bK-fuzz-{method}-{cseq}",
        headers=[("X-Delay", "inf")] if method == "INVITE" else [],
    )


Move = tuple[str, int | str, int, bool]


def _play(host: FakeHost, call: Call, moves: list[Move]) -> None:
    last: bytes | None = None
    for kind, first, second, flag in moves:
        if call.finished:
            break
        if kind == "wait":
            host.advance(int(first) / 1000)
            continue
        if kind == "repeat":
            if last is not None:
                host.deliver(call, last)
            continue
        if kind == "answer":
            requests = [sent for sent in host.sent if sent.message.is_request]
            if not requests:
                continue
            sent = requests[int(first) % len(requests)]
            headers = [("X-Delay", "nan" if flag else "1e400")]
            message = response_to(sent.message, second, headers=headers, to_tag=None if flag else "peer")
        else:
            message = _peer_request(str(first), second, flag)
        last = host.deliver(call, message)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(SCENARIOS)), moves=MOVES)
def test_whatever_the_peer_sends_a_call_ends_counted_once(name: str, moves: list[Move]) -> None:
    scenario, is_server = SCENARIOS[name]
    host, call = start_call(scenario, CallPolicy(), is_server=is_server)
    if is_server:
        host.deliver(call, _peer_request("INVITE", 1, True))
    _play(host, call, moves)
    host.run_until_idle(limit_s=24 * 3600)
    if not call.finished:  # a server call waiting for its peer: a hard stop ends it
        call.abort_now()
    assert call.finished
    counted = host.counters.calls_succeeded + host.counters.calls_failed + len(host.uncounted)
    assert counted == 1
    assert host.counters.calls_active == 0
    assert host.fatal_errors == []
