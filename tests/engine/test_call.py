"""The call interpreter in process: SIPp's rules for matching, retransmissions, timeouts,
aborts, unexpected messages and pauses, on FakeHost's virtual clock.

Each test builds a Call from a small SIPp scenario and plays the far end by hand,
answering the messages the call sent (same Call-ID, CSeq, Via; the peer's To tag).
No socket, no subprocess, no wall clock. Where SIPp's rule is not the obvious one, the test
says where in SIPp's source (src/call.cpp) it comes from.
"""

from __future__ import annotations

import pytest

from gossipper.engine.call import Call, _lacks_request_uri
from gossipper.engine.settings import CallPolicy, DefaultBehavior
from gossipper.errors import FileProblem
from gossipper.scenario import model
from gossipper.sip.message import SipMessage
from tests.engine.fake_host import (
    CALL_ID,
    LOCAL,
    PEER_CONTACT,
    PEER_TAG,
    REMOTE,
    FakeHost,
    load,
    peer_request,
    request,
    response_to,
    start_call,
)

BYE_BEHAVIOR, ABORT_UNEXPECTED, PING_REPLY = (
    DefaultBehavior.BYE,
    DefaultBehavior.ABORT_UNEXPECTED,
    DefaultBehavior.PING_REPLY,
)
ONLY_COUNT_UNEXPECTED = CallPolicy(behaviors=frozenset({BYE_BEHAVIOR, PING_REPLY}))
NO_BYE = CallPolicy(behaviors=frozenset({ABORT_UNEXPECTED, PING_REPLY}))
UAS_TAG = "4242SIPpTag011"  # [pid]SIPpTag01[call_number]


# ---------------------------------------------------------------------- scenario pieces (SIPp syntax)
def send_request(
    method: str,
    attributes: str = "",
    *,
    in_dialog: bool = False,
    uri: str = "sip:[service]@[remote_ip]:[remote_port]",
    branch: str = "[branch]",
    subject: str = "Performance Test",
) -> str:
    to_tag = "[peer_tag_param]" if in_dialog else ""
    return f"""
  <send {attributes}>
    <![CDATA[
      {method} {uri} SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch={branch}
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: [service] <sip:[service]@[remote_ip]:[remote_port]>{to_tag}
      Call-ID: [call_id]
      CSeq: [cseq] {method}
      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Subject: {subject}
      Content-Length: 0
    ]]>
  </send>"""


def send_response(code: int, reason: str, *, add_tag: bool = True) -> str:
    tag = ";tag=[pid]SIPpTag01[call_number]" if add_tag else ""
    return f"""
  <send>
    <![CDATA[
      SIP/2.0 {code} {reason}
      [last_Via:]
      [last_From:]
      [last_To:]{tag}
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0
    ]]>
  </send>"""


def recv(what: int | str, **attributes: str) -> str:
    kind = "response" if isinstance(what, int) else "request"
    extra = "".join(f' {name}="{value}"' for name, value in attributes.items())
    return f'\n  <recv {kind}="{what}"{extra}/>'


def scenario(*steps: str) -> str:
    return (
        '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="test">'
        + "".join(steps)
        + "\n</scenario>\n"
    )


INVITE = send_request("INVITE", 'retrans="500"')
INVITE_ONCE = send_request("INVITE")
ACK = send_request("ACK", in_dialog=True)
BYE = send_request("BYE", 'retrans="500"', in_dialog=True)
REGISTER = send_request("REGISTER", 'retrans="500"', uri="sip:[remote_ip]:[remote_port]")
OPTIONAL = {"optional": "true"}

# 0 INVITE, 1 recv 200, 2 ACK, 3 pause 5 s, 4 BYE, 5 recv 200
ESTABLISHED = scenario(INVITE, recv(200), ACK, '\n  <pause milliseconds="5000"/>', BYE, recv(200))


def sent_invite(host: FakeHost) -> SipMessage:
    return host.sent_of("INVITE")[0].message


def established(policy: CallPolicy | None = None) -> tuple[FakeHost, Call, SipMessage, SipMessage]:
    """ESTABLISHED answered at 0.1 s: host, call, our INVITE and the peer's 200."""
    host, call = start_call(ESTABLISHED, policy)
    invite = sent_invite(host)
    host.advance(0.1)
    ok = response_to(invite, 200)
    host.deliver(call, ok)
    assert host.sent_what() == ["INVITE", "ACK"]
    return host, call, invite, ok


def finish_with_bye(host: FakeHost, call: Call, at: float) -> None:
    """Let the pause run out, check the BYE went at `at`, answer it: the call succeeds."""
    host.advance_to(at + 0.1)
    bye = host.last("BYE")
    assert bye.at == pytest.approx(at)
    host.deliver(call, response_to(bye.message, 200))
    assert host.ending.failure_class is None
    assert host.counters.calls_succeeded == 1


# ---------------------------------------------------------------------- 1. response matching
def test_recv_response_matches_only_a_response_to_a_method_the_call_sent() -> None:
    host, call = start_call(scenario(INVITE, recv(200), ACK), ONLY_COUNT_UNEXPECTED)
    invite = sent_invite(host)
    assert host.sent[0].destination == REMOTE
    host.advance(0.1)

    host.deliver(call, response_to(invite, 200, cseq="1 REGISTER"))  # a 200, but to nothing we sent
    assert not call.finished
    assert host.sent_what() == ["INVITE"]
    assert host.counters.unexpected_messages == 1
    assert (host.counters.steps[1].unexpected, host.counters.steps[1].messages) == (1, 0)

    host.deliver(call, response_to(invite, 200))
    assert host.sent_what() == ["INVITE", "ACK"]
    ack = host.last("ACK").message
    assert ack.header("CSeq") == "1 ACK"
    assert ack.to_tag == PEER_TAG
    assert host.counters.steps[1].messages == 1
    assert host.ending == (None, "", 0.1)
    assert host.counters.calls_succeeded == 1


@pytest.mark.parametrize("provisionals", [(), (180,), (100, 180)], ids=["none", "180", "100-180"])
def test_optional_provisionals_are_skipped_when_a_later_response_matches(
    provisionals: tuple[int, ...],
) -> None:
    host, call = start_call(scenario(INVITE, recv(100, **OPTIONAL), recv(180, **OPTIONAL), recv(200), ACK))
    invite = sent_invite(host)
    host.advance(0.05)
    for code in provisionals:
        host.deliver(call, response_to(invite, code))
    assert not call.finished
    counters = host.counters
    expected = [int(100 in provisionals), int(180 in provisionals), 0]
    assert [counters.steps[i].messages for i in (1, 2, 3)] == expected

    host.advance_to(1.25)
    host.deliver(call, response_to(invite, 200))
    # A provisional to the INVITE stops its retransmissions (0.5 s would have been the first).
    assert host.sent_what() == (["INVITE", "ACK"] if provisionals else ["INVITE", "INVITE", "ACK"])
    assert counters.steps[3].messages == 1
    assert counters.unexpected_messages == 0
    assert host.ending == (None, "", 1.25)
    assert counters.invite_rtt.count == 1
    assert counters.invite_rtt.max_ms == pytest.approx(1250.0)


def test_a_provisional_arriving_again_before_the_final_response_is_absorbed() -> None:
    # 0 INVITE, 1 recv 100 (opt), 2 recv 180 (opt), 3 recv 200, 4 ACK
    host, call = start_call(scenario(INVITE, recv(100, **OPTIONAL), recv(180, **OPTIONAL), recv(200), ACK))
    invite = sent_invite(host)
    steps = host.counters.steps
    host.advance(0.05)
    ringing = host.deliver(call, response_to(invite, 180))
    host.deliver(call, response_to(invite, 100))  # late: overtaken by the 180
    assert (steps[1].messages, steps[2].messages) == (1, 1)

    host.deliver(call, ringing)  # the 180 again, after the 100: matched again
    assert steps[2].messages == 2
    host.deliver(call, ringing)  # the very last message again: a retransmission, only counted
    assert (steps[2].messages, steps[2].retransmissions) == (2, 1)
    assert host.counters.unexpected_messages == 0
    assert host.counters.retransmissions == 0  # nothing was sent again
    assert host.sent_what() == ["INVITE"]
    assert not call.finished

    host.deliver(call, response_to(invite, 200))
    assert host.sent_what() == ["INVITE", "ACK"]
    assert host.ending.failure_class is None


def test_a_global_optional_response_after_the_call_moved_on_is_absorbed() -> None:
    # 0 INVITE, 1 recv 180 (optional=global), 2 recv 200, 3 ACK, 4 pause 1 s, 5 BYE, 6 recv 200
    host, call = start_call(
        scenario(
            INVITE,
            recv(180, optional="global"),
            recv(200),
            ACK,
            '<pause milliseconds="1000"/>',
            BYE,
            recv(200),
        )
    )
    invite = sent_invite(host)
    host.advance(0.05)
    ringing = host.deliver(call, response_to(invite, 180))
    host.advance(0.05)
    host.deliver(call, response_to(invite, 200))
    assert host.sent_what() == ["INVITE", "ACK"]

    host.advance_to(0.5)
    host.deliver(call, ringing)  # during the pause, four steps past its recv
    assert host.counters.steps[1].messages == 2
    assert host.counters.unexpected_messages == 0
    assert host.sent_what() == ["INVITE", "ACK"]
    assert not call.finished

    finish_with_bye(host, call, at=1.1)
    assert host.last("BYE").message.header("CSeq") == "2 BYE"
    assert host.last("BYE").message.to_tag == PEER_TAG


# 0 INVITE, 1 recv 100 (opt), 2 recv 180 (opt), 3 recv 200, 4 ACK, 5 pause 1 s, 6 BYE, 7 recv 200
RINGING_DIALOG = (
    INVITE,
    recv(100, **OPTIONAL),
    recv(180, **OPTIONAL),
    recv(200),
    ACK,
    '<pause milliseconds="1000"/>',
    BYE,
    recv(200),
)


def test_a_late_200_after_the_ack_gets_the_ack_again() -> None:
    host, call = start_call(scenario(*RINGING_DIALOG))
    invite = sent_invite(host)
    host.advance(0.1)
    ok = host.deliver(call, response_to(invite, 200))
    first_ack = host.last("ACK")

    host.advance_to(0.3)
    host.deliver(call, ok)  # the peer retransmits its 200: the message sent after it goes again
    assert host.times_of("ACK") == pytest.approx([0.1, 0.3])
    assert host.counters.retransmissions == 1
    assert host.counters.steps[4].retransmissions == 1

    host.advance_to(0.4)
    host.deliver(call, response_to(invite, 200, headers=[("Server", "late copy")]))  # another copy of it
    assert host.times_of("ACK") == pytest.approx([0.1, 0.3, 0.4])
    assert host.counters.steps[3].retransmissions == 1
    assert {sent.data for sent in host.sent_of("ACK")} == {first_ack.data}
    assert host.counters.unexpected_messages == 0
    assert not call.finished

    finish_with_bye(host, call, at=1.1)


def test_a_late_provisional_after_the_ack_is_unexpected_as_in_sipp() -> None:
    """call.cpp process_incoming: a match behind a mandatory step is absorbed only as an INVITE
    response followed by an ACK <send> (re-sent); a late 180 is unexpected and aborts the call."""
    host, call = start_call(scenario(*RINGING_DIALOG))
    invite = sent_invite(host)
    host.advance(0.05)
    ringing = host.deliver(call, response_to(invite, 180))
    host.advance(0.05)
    host.deliver(call, response_to(invite, 200))
    host.advance_to(0.5)
    host.deliver(call, ringing)
    assert host.counters.unexpected_messages == 1
    assert host.ending.failure_class == "unexpected_sip"
    assert host.sent_what() == ["INVITE", "ACK", "BYE"]


@pytest.mark.parametrize("ringing", [True, False], ids=["ringing", "answered-at-once"])
def test_next_on_an_optional_match_jumps_to_its_label(ringing: bool) -> None:
    # 0 INVITE, 1 recv 100 (opt), 2 recv 180 (opt, next=ringing), 3 recv 200, 4 ACK (next=done),
    # (label ringing) 5 recv 200, 6 ACK (label done): labels are no steps, as in SIPp
    host, call = start_call(
        scenario(
            INVITE,
            recv(100, **OPTIONAL),
            recv(180, optional="true", next="ringing"),
            recv(200),
            send_request("ACK", 'next="done"', in_dialog=True, subject="answered at once"),
            '\n  <label id="ringing"/>',
            recv(200),
            send_request("ACK", in_dialog=True, subject="answered after ringing"),
            '\n  <label id="done"/>',
        )
    )
    invite = sent_invite(host)
    host.advance(0.1)
    if ringing:
        host.deliver(call, response_to(invite, 180))
        assert call.index == 5  # at the label's recv
    host.deliver(call, response_to(invite, 200))

    steps = host.counters.steps
    assert host.sent_what() == ["INVITE", "ACK"]
    expected = "answered after ringing" if ringing else "answered at once"
    assert host.last("ACK").message.header("Subject") == expected
    assert (steps[3].messages, steps[5].messages) == ((0, 1) if ringing else (1, 0))
    assert (steps[4].messages, steps[6].messages) == ((0, 1) if ringing else (1, 0))
    assert host.ending.failure_class is None


def _caller_request(method: str, cseq: int = 1, to: str | None = None) -> SipMessage:
    """A request of the calling party, for a server scenario (`to`: the dialog's To, once tagged)."""
    return request(
        method,
        f"sip:service@{LOCAL[0]}:{LOCAL[1]}",
        call_id=CALL_ID,
        from_=f"<sip:caller@{REMOTE[0]}:{REMOTE[1]}>;tag=caller-1",
        to=to or f"<sip:service@{LOCAL[0]}:{LOCAL[1]}>",
        cseq=cseq,
        branch=f"z9hG4bK-caller-{method.lower()}-{cseq}",
    )


@pytest.mark.parametrize("method", ["INVITE", "OPTIONS"])
def test_regexp_match_accepts_each_request_its_pattern_names(method: str) -> None:
    host, call = start_call(
        scenario(recv("INVITE|OPTIONS", regexp_match="true"), send_response(200, "OK")), is_server=True
    )
    incoming = _caller_request(method)
    host.deliver(call, incoming)

    assert host.sent_what() == ["200"]
    answer = host.last("200").message
    assert answer.header("CSeq") == f"1 {method}"
    assert answer.header_values("Via") == incoming.header_values("Via")
    assert answer.to_tag == UAS_TAG
    assert host.counters.steps[0].messages == 1
    assert host.ending.failure_class is None


def test_regexp_match_leaves_other_requests_unexpected() -> None:
    host, call = start_call(
        scenario(recv("INVITE|OPTIONS", regexp_match="true"), send_response(200, "OK")), is_server=True
    )
    host.deliver(call, _caller_request("INFO"))
    assert host.counters.unexpected_messages == 1
    assert host.counters.steps[0].unexpected == 1
    assert host.ending.failure_class == "unexpected_sip"
    assert host.sent == []  # a server call sends nothing when it aborts


def test_regexp_match_searches_the_method_as_sipp_does() -> None:
    """call.cpp matches_scenario: regexec without implicit anchors, so "INV" finds INVITE."""
    host, call = start_call(
        scenario(recv("INV", regexp_match="true"), send_response(200, "OK")), is_server=True
    )
    host.deliver(call, _caller_request("INVITE"))
    assert host.sent_what() == ["200"]
    assert host.ending.failure_class is None


def test_an_unexpected_response_fails_the_call_as_unexpected_sip() -> None:
    host, call = start_call(scenario(INVITE, recv(200), ACK))
    invite = sent_invite(host)
    host.advance(0.1)
    host.deliver(call, response_to(invite, 180))  # no recv for a 180 here

    counters = host.counters
    assert counters.unexpected_messages == 1
    assert (counters.steps[1].unexpected, counters.steps[1].messages) == (1, 0)
    assert host.ending.failure_class == "unexpected_sip"
    assert host.ending.at == pytest.approx(0.1)
    assert counters.failure_classes == {"unexpected_sip": 1}
    assert (counters.calls_failed, counters.calls_active) == (1, 0)
    assert any("unexpected message" in line and "180" in line for line in host.errors)
    assert host.sent_what() == ["INVITE", "CANCEL"]  # -default_behaviors bye: tidy the pending INVITE
    host.advance(30)
    assert host.sent_what() == ["INVITE", "CANCEL"]  # and its retransmissions stopped with the call


def test_an_unexpected_response_is_only_counted_without_abortunexp() -> None:
    host, call = start_call(scenario(INVITE, recv(200), ACK), ONLY_COUNT_UNEXPECTED)
    invite = sent_invite(host)
    host.advance(0.1)
    host.deliver(call, response_to(invite, 180))
    assert host.counters.unexpected_messages == 1
    assert host.counters.steps[1].unexpected == 1
    assert not call.finished

    host.advance_to(0.6)  # an unmatched message does not stop the INVITE's retransmissions
    assert host.times_of("INVITE") == pytest.approx([0.0, 0.5])
    host.deliver(call, response_to(invite, 200))
    assert host.sent_what() == ["INVITE", "INVITE", "ACK"]
    assert host.ending.failure_class is None


# ---------------------------------------------------------------------- 2. retransmissions (UDP)
def test_invite_retransmissions_double_until_max_retrans_then_the_call_times_out() -> None:
    host, call = start_call(scenario(INVITE, recv(200), ACK))
    host.run_until_idle()

    times = host.times_of("INVITE")
    assert times == pytest.approx([0.0, 0.5, 1.5, 3.5, 7.5, 15.5])  # 500 ms, doubling, no cap for INVITE
    assert len({sent.data for sent in host.sent}) == 1  # the same bytes each time
    assert host.sent_what() == ["INVITE"] * 6  # never answered: nothing to CANCEL
    counters = host.counters
    assert (counters.retransmissions, counters.steps[0].retransmissions) == (5, 5)
    assert (counters.timeouts, counters.steps[0].timeouts) == (1, 1)
    assert counters.messages_sent == 6
    assert host.ending.failure_class == "timeout"
    assert host.ending.at == pytest.approx(31.5)  # the sixth timer finds the five allowed spent
    assert counters.failure_classes == {"timeout": 1}
    assert call.finished


def test_non_invite_retransmissions_are_capped_at_t2() -> None:
    host, _call = start_call(scenario(REGISTER, recv(200)))
    host.run_until_idle()

    assert host.times_of("REGISTER") == pytest.approx([0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5])
    assert host.counters.retransmissions == 7
    assert host.counters.timeouts == 1
    assert host.ending.failure_class == "timeout"
    assert host.ending.at == pytest.approx(23.5)


@pytest.mark.parametrize(
    ("step", "invite_max", "other_max", "times", "timeout_at"),
    [
        (INVITE, 2, 7, [0.0, 0.5, 1.5], 3.5),
        (INVITE, 0, 7, [0.0], 0.5),
        (REGISTER, 7, 1, [0.0, 0.5], 1.5),
        (REGISTER, 0, 3, [0.0, 0.5, 1.5, 3.5], 7.5),
    ],
    ids=["invite-2", "invite-0", "register-1", "register-3-invite-0"],
)
def test_max_retrans_bounds_the_retransmissions(
    step: str, invite_max: int, other_max: int, times: list[float], timeout_at: float
) -> None:
    policy = CallPolicy(invite_max_retrans=invite_max, other_max_retrans=other_max)
    host, _call = start_call(scenario(step, recv(200)), policy)
    host.run_until_idle()

    method = host.sent[0].what
    assert host.times_of(method) == pytest.approx(times)
    assert host.counters.retransmissions == len(times) - 1
    assert (host.counters.timeouts, host.counters.steps[0].timeouts) == (1, 1)
    assert host.ending.failure_class == "timeout"
    assert host.ending.at == pytest.approx(timeout_at)


def test_a_matching_response_stops_the_retransmissions() -> None:
    # 0 INVITE, 1 recv 180 (opt), 2 recv 200, 3 ACK, 4 pause 1 s, 5 BYE, 6 recv 200
    host, call = start_call(
        scenario(
            INVITE, recv(180, **OPTIONAL), recv(200), ACK, '<pause milliseconds="1000"/>', BYE, recv(200)
        )
    )
    invite = sent_invite(host)
    host.advance_to(0.7)
    host.deliver(call, response_to(invite, 180))
    host.advance(60)
    assert host.times_of("INVITE") == pytest.approx([0.0, 0.5])
    assert host.pending_timers == []  # and no recv timeout: the call waits for its 200
    assert not call.finished

    host.deliver(call, response_to(invite, 200))
    host.advance(1.6)
    assert host.times_of("BYE") == pytest.approx([61.7, 62.2])  # the BYE retransmits in turn
    host.deliver(call, response_to(host.last("BYE").message, 200))
    host.advance(60)
    assert host.times_of("BYE") == pytest.approx([61.7, 62.2])
    assert host.counters.retransmissions == 2
    assert host.ending.failure_class is None


def test_nothing_is_retransmitted_over_a_reliable_transport() -> None:
    host, call = start_call(scenario(INVITE, recv(200), ACK), reliable=True)
    invite = sent_invite(host)
    assert (invite.header("Via") or "").startswith("SIP/2.0/TCP ")
    host.advance(60)
    assert host.sent_what() == ["INVITE"]
    assert host.pending_timers == []
    assert host.counters.retransmissions == 0
    assert not call.finished

    host.deliver(call, response_to(invite, 200))
    assert host.sent_what() == ["INVITE", "ACK"]
    assert host.ending.failure_class is None


def test_a_provisional_to_a_non_invite_leaves_it_retransmitting_every_t2() -> None:
    """call.cpp process_incoming: a provisional stops only an INVITE's retransmissions; a
    non-INVITE goes again every T2 (next_retrans = clock_tick + global_t2) until its final response."""
    host, call = start_call(scenario(REGISTER, recv(100, **OPTIONAL), recv(200)))
    host.advance(0.2)
    host.deliver(call, response_to(host.sent[0].message, 100))
    host.advance_to(4.3)
    assert host.times_of("REGISTER") == pytest.approx([0.0, 4.2])


def test_send_ontimeout_jumps_to_its_label_when_the_retransmissions_run_out() -> None:
    """call.cpp call::run: spent retransmissions jump to the <send>'s ontimeout label."""
    # 0 REGISTER (ontimeout=gave_up), 1 recv 200 (next=done), 2 label gave_up, 3 MESSAGE, 4 label done
    host, _call = start_call(
        scenario(
            send_request(
                "REGISTER", 'retrans="500" ontimeout="gave_up"', uri="sip:[remote_ip]:[remote_port]"
            ),
            recv(200, next="done"),
            '\n  <label id="gave_up"/>',
            send_request("MESSAGE"),
            '\n  <label id="done"/>',
        ),
        CallPolicy(other_max_retrans=2),
    )
    host.run_until_idle()
    assert host.times_of("REGISTER") == pytest.approx([0.0, 0.5, 1.5])
    assert host.times_of("MESSAGE") == pytest.approx([3.5])
    assert host.counters.steps[0].timeouts == 1
    assert host.ending.failure_class is None


# ---------------------------------------------------------------------- 3. receive timeouts
def test_recv_timeout_fails_the_call_at_the_right_virtual_time() -> None:
    host, call = start_call(scenario(INVITE, recv(200), ACK), CallPolicy(recv_timeout_ms=2000))
    host.advance_to(1.99)
    assert not call.finished
    host.advance_to(2.5)

    assert host.ending.failure_class == "timeout"
    assert host.ending.at == pytest.approx(2.0)
    counters = host.counters
    assert (counters.timeouts, counters.steps[1].timeouts, counters.steps[0].timeouts) == (1, 1, 0)
    assert host.times_of("INVITE") == pytest.approx([0.0, 0.5, 1.5])  # retransmitting until then
    assert host.sent_what() == ["INVITE"] * 3  # unanswered: nothing to CANCEL
    assert host.pending_timers == []


@pytest.mark.parametrize(
    ("policy_ms", "attribute", "expected_s"),
    [(0, "500", 0.5), (10_000, "500", 0.5), (3_000, None, 3.0)],
    ids=["attribute", "attribute-over-policy", "policy"],
)
def test_the_recv_timeout_attribute_overrides_the_policy(
    policy_ms: int, attribute: str | None, expected_s: float
) -> None:
    wait = recv(200, timeout=attribute) if attribute else recv(200)
    host, _call = start_call(scenario(INVITE_ONCE, wait, ACK), CallPolicy(recv_timeout_ms=policy_ms))
    host.run_until_idle()
    assert host.ending.failure_class == "timeout"
    assert host.ending.at == pytest.approx(expected_s)
    assert host.counters.timeouts == 1


def test_ontimeout_jumps_to_its_label_and_the_call_goes_on() -> None:
    # 0 INVITE, 1 recv 180, 2 recv 200 (timeout 2 s, ontimeout=cancel), 3 ACK (next=done),
    # (label cancel) 4 CANCEL, 5 recv 200, 6 recv 487, 7 ACK (label done): labels are no steps
    host, call = start_call(
        scenario(
            INVITE,
            recv(180),
            recv(200, timeout="2000", ontimeout="cancel"),
            send_request("ACK", 'next="done"', in_dialog=True),
            '\n  <label id="cancel"/>',
            send_request("CANCEL", branch="[branch-4]"),  # the INVITE's branch, four messages back
            recv(200),
            recv(487),
            ACK,
            '\n  <label id="done"/>',
        )
    )
    invite = sent_invite(host)
    host.advance(0.1)
    host.deliver(call, response_to(invite, 180))
    host.advance_to(2.05)
    assert host.sent_what() == ["INVITE"]
    host.advance_to(2.2)

    cancel = host.last("CANCEL")
    assert cancel.at == pytest.approx(2.1)  # two seconds after the recv began to wait
    assert cancel.message.header("CSeq") == "1 CANCEL"
    assert cancel.message.top_via_branch == invite.top_via_branch
    assert host.counters.steps[2].timeouts == 1
    assert host.counters.timeouts == 0  # a timeout with somewhere to go fails nothing
    assert not call.finished

    host.deliver(call, response_to(cancel.message, 200))
    host.deliver(call, response_to(invite, 487))
    ack = host.last("ACK").message
    assert ack.header("CSeq") == "1 ACK"
    assert ack.to_tag == PEER_TAG
    assert host.sent_what() == ["INVITE", "CANCEL", "ACK"]
    assert host.ending.failure_class is None


# ---------------------------------------------------------------------- 4. aborting (SIPp's abortCall)
# 0 INVITE, 1 recv 100 (opt), 2 recv 180 (opt), 3 recv 200 (rrs), 4 ACK, 5 recv BYE (timeout 3 s), 6 200
ABORTABLE = scenario(
    INVITE,
    recv(100, **OPTIONAL),
    recv(180, **OPTIONAL),
    recv(200, rrs="true"),
    ACK,
    recv("BYE", timeout="3000"),
    send_response(200, "OK", add_tag=False),
)
ROUTES = "<sip:p1.example.com;lr>, <sip:p2.example.com;lr>"


def drive_to_abort(
    state: str, behaviors: frozenset[DefaultBehavior] | None = None
) -> tuple[FakeHost, SipMessage]:
    """Play ABORTABLE to one of SIPp's abort cases (a -recv_timeout of 5 s waits at the first recv)."""
    policy = CallPolicy(recv_timeout_ms=5000)
    if behaviors is not None:
        policy = CallPolicy(behaviors=behaviors, recv_timeout_ms=5000)
    host, call = start_call(ABORTABLE, policy)
    invite = sent_invite(host)
    host.advance(0.1)
    if state in ("ringing-timeout", "ringing-unexpected"):
        host.deliver(call, response_to(invite, 180))
        if state == "ringing-unexpected":
            host.advance_to(1.0)
            host.deliver(call, peer_request("NOTIFY", invite, 1))
    elif state == "final-error":
        host.deliver(call, response_to(invite, 100))
        host.advance_to(0.3)
        host.deliver(call, response_to(invite, 486))
    elif state == "established":
        host.deliver(call, response_to(invite, 200, headers=[("Record-Route", ROUTES)]))
    host.run_until_idle()
    assert call.finished
    return host, invite


@pytest.mark.parametrize(
    ("state", "failure_class", "at"),
    [("ringing-timeout", "timeout", 5.0), ("ringing-unexpected", "unexpected_sip", 1.0)],
)
def test_an_aborted_ringing_call_sends_cancel(state: str, failure_class: str, at: float) -> None:
    host, invite = drive_to_abort(state)
    assert host.sent_what() == ["INVITE", "CANCEL"]  # the 180 stopped the INVITE's retransmissions
    cancel = host.last("CANCEL")
    assert cancel.at == pytest.approx(at)
    message = cancel.message
    assert message.request_uri == invite.request_uri
    assert message.header_values("Via") == invite.header_values("Via")[:1]
    assert message.header("From") == invite.header("From")
    assert message.call_id == invite.call_id
    assert message.header("CSeq") == "1 CANCEL"
    assert host.ending.failure_class == failure_class
    assert host.ending.at == pytest.approx(at)


def test_an_aborted_call_with_a_final_error_sends_ack() -> None:
    host, invite = drive_to_abort("final-error")
    assert host.sent_what() == ["INVITE", "ACK"]
    ack = host.last("ACK")
    assert ack.at == pytest.approx(0.3)
    message = ack.message
    assert message.request_uri == invite.request_uri
    assert message.header_values("Via") == invite.header_values("Via")[:1]  # the INVITE's transaction
    assert message.header("From") == invite.header("From")
    assert message.to_tag == PEER_TAG  # the 486's To
    assert message.header("CSeq") == "1 ACK"
    assert host.counters.unexpected_messages == 1
    assert host.counters.steps[1].unexpected == 1  # the call still waited at the first optional recv
    assert host.ending.failure_class == "unexpected_sip"


def test_an_aborted_established_call_sends_bye_in_its_dialog() -> None:
    host, invite = drive_to_abort("established")
    assert host.sent_what() == ["INVITE", "ACK", "BYE"]
    bye = host.last("BYE")
    assert bye.at == pytest.approx(3.1)  # the recv BYE's own 3 s timeout
    message = bye.message
    assert message.request_uri == "sip:peer@127.0.0.2:5070"  # the 200's Contact (rrs)
    assert message.header("Route") == "<sip:p2.example.com;lr>, <sip:p1.example.com;lr>"  # reversed
    assert message.header("From") == invite.header("From")
    assert message.to_tag == PEER_TAG
    assert message.call_id == invite.call_id
    assert message.header("CSeq") == "2 BYE"
    assert message.top_via_branch != invite.top_via_branch
    assert host.ending.failure_class == "timeout"
    assert (host.counters.timeouts, host.counters.steps[5].timeouts) == (1, 1)


def test_an_aborted_call_whose_200_was_not_acked_sends_ack_then_bye() -> None:
    # 0 INVITE, 1 recv 200, 2 recv INFO (timeout 1 s), 3 ACK: the call gives up before ACKing
    host, call = start_call(scenario(INVITE, recv(200), recv("INFO", timeout="1000"), ACK))
    invite = sent_invite(host)
    host.advance(0.1)
    ok = response_to(invite, 200)
    host.deliver(call, ok)
    assert host.sent_what() == ["INVITE"]
    host.run_until_idle()

    assert host.sent_what() == ["INVITE", "ACK", "BYE"]
    ack, bye = host.sent[1], host.sent[2]
    assert ack.at == bye.at == pytest.approx(1.1)
    assert ack.message.header("CSeq") == "1 ACK"
    assert bye.message.header("CSeq") == "2 BYE"
    for sent in (ack, bye):
        assert sent.message.header("From") == invite.header("From")
        assert sent.message.header("To") == ok.header("To")
        assert sent.message.call_id == invite.call_id
    assert host.ending.failure_class == "timeout"


@pytest.mark.parametrize(
    ("state", "failure_class", "sent"),
    [
        ("ringing-timeout", "timeout", ["INVITE"]),
        ("ringing-unexpected", "unexpected_sip", ["INVITE"]),
        ("final-error", "unexpected_sip", ["INVITE"]),
        ("established", "timeout", ["INVITE", "ACK"]),
    ],
)
def test_without_the_bye_behaviour_an_abort_sends_nothing(
    state: str, failure_class: str, sent: list[str]
) -> None:
    host, _invite = drive_to_abort(state, NO_BYE.behaviors)
    assert host.sent_what() == sent
    assert host.ending.failure_class == failure_class


def test_abort_now_ends_the_call_cancelled_and_silences_it() -> None:
    host, call = start_call(ABORTABLE, CallPolicy(recv_timeout_ms=5000))
    invite = sent_invite(host)
    host.advance(0.2)
    assert host.pending_timers == pytest.approx([0.5, 5.0])  # the retransmission and the recv timeout
    call.abort_now()

    assert host.ending == ("cancelled", "run stopped", 0.2)
    assert host.counters.failure_classes == {"cancelled": 1}
    assert host.media_stopped == [CALL_ID]
    assert host.pending_timers == []
    host.advance(60)
    host.deliver(call, response_to(invite, 180))  # a finished call ignores what still arrives
    assert host.sent_what() == ["INVITE"]
    counters = host.counters
    assert (counters.retransmissions, counters.timeouts, counters.messages_received) == (0, 0, 0)
    assert len(host.ended) == 1


def test_abort_now_of_a_ringing_call_sends_cancel_as_sipp_does_when_it_quits() -> None:
    """sipp.cpp traffic loop -> abort_all_tasks -> call::abort -> abortCall(false): whatever
    -default_behaviors says, a ringing INVITE is CANCELled when the run stops hard."""
    host, call = start_call(ABORTABLE)
    host.advance(0.2)
    host.deliver(call, response_to(sent_invite(host), 180))
    host.advance_to(1.0)
    call.abort_now()
    assert host.sent_what() == ["INVITE", "CANCEL"]


# ---------------------------------------------------------------------- 5. unexpected messages
def test_an_unexpected_bye_is_answered_200_and_fails_the_call() -> None:
    host, call, invite, _ok = established()
    host.advance_to(2.0)
    bye = peer_request("BYE", invite, 1)
    host.deliver(call, bye)

    assert host.sent_what() == ["INVITE", "ACK", "200"]
    answer = host.last("200").message
    assert answer.header("CSeq") == "1 BYE"
    assert answer.header_values("Via") == bye.header_values("Via")
    assert (answer.header("From"), answer.header("To")) == (bye.header("From"), bye.header("To"))
    counters = host.counters
    assert (counters.unexpected_messages, counters.steps[3].unexpected) == (1, 1)  # during the pause
    assert host.ending.failure_class == "unexpected_sip"
    assert host.ending.at == pytest.approx(2.0)
    host.advance(30)
    assert host.sent_what() == ["INVITE", "ACK", "200"]  # the peer hung up: no BYE of ours


def test_an_unexpected_bye_without_abortunexp_is_not_answered_and_the_call_goes_on() -> None:
    """call.cpp automaticResponseMode E_AM_UNEXP_BYE: the 200 and the failure need abortunexp;
    without it SIPp logs 'Continuing call on an unexpected BYE' and sends nothing."""
    host, call, invite, _ok = established(ONLY_COUNT_UNEXPECTED)
    host.advance_to(2.0)
    host.deliver(call, peer_request("BYE", invite, 1))
    assert host.counters.steps[3].unexpected == 1
    assert host.sent_what() == ["INVITE", "ACK"]
    assert not call.finished


@pytest.mark.parametrize(("uses_3pcc", "expected"), [(True, [b"abort_call"]), (False, [])])
def test_an_unexpected_bye_of_a_3pcc_call_resets_its_twin(uses_3pcc: bool, expected: list[bytes]) -> None:
    """call.cpp automaticResponseMode: past its first message a 3PCC call that an unexpected
    BYE ends sends its twin 3pcc_abort (internal-cmd: abort_call)."""
    steps = [INVITE, recv(200), ACK, '\n  <pause milliseconds="5000"/>', BYE, recv(200)]
    if uses_3pcc:
        steps.append("\n  <sendCmd><![CDATA[\nCall-ID: [call_id]\n]]></sendCmd>")
    host, call = start_call(scenario(*steps))
    invite = sent_invite(host)
    host.advance(0.1)
    host.deliver(call, response_to(invite, 200))
    host.advance_to(2.0)
    host.deliver(call, peer_request("BYE", invite, 1))
    assert host.ending.failure_class == "unexpected_sip"
    assert host.twin_commands == expected


def test_an_unexpected_options_without_auto_answer_aborts_the_call_as_in_sipp() -> None:
    """call.cpp checkAutomaticResponseMode: pingreply answers only PING; OPTIONS gets its 200
    only under -aa and is otherwise an unexpected message, which aborts the call."""
    host, call, invite, _ok = established()
    host.advance_to(2.0)
    host.deliver(call, peer_request("OPTIONS", invite, 1))
    assert host.counters.unexpected_messages == 1
    assert host.ending.failure_class == "unexpected_sip"
    assert host.sent_what() == ["INVITE", "ACK", "BYE"]  # abortCall, not a 200


@pytest.mark.parametrize(
    "method",
    [
        "INFO",
        "NOTIFY",
        "UPDATE",
        "OPTIONS",
    ],
)
def test_auto_answer_gives_200_and_the_call_goes_on(method: str) -> None:
    host, call, invite, _ok = established(CallPolicy(auto_answer=True))
    host.advance_to(1.0)
    host.deliver(call, peer_request(method, invite, 5))

    assert host.sent_what() == ["INVITE", "ACK", "200"]
    answer = host.last("200")
    assert answer.at == pytest.approx(1.0)
    assert answer.message.header("CSeq") == f"5 {method}"
    assert host.counters.unexpected_messages == 0
    assert host.counters.steps[3].unexpected == 0
    assert not call.finished
    finish_with_bye(host, call, at=5.1)
    assert host.last("BYE").message.header("CSeq") == "2 BYE"


def test_a_retransmitted_request_at_a_uas_is_answered_again_with_the_last_response() -> None:
    # 0 recv INVITE, 1 200, 2 recv ACK, 3 recv BYE, 4 200, 5 timewait 4 s
    host, call = start_call(
        scenario(
            recv("INVITE"),
            send_response(200, "OK"),
            recv("ACK"),
            recv("BYE"),
            send_response(200, "OK", add_tag=False),
            '\n  <timewait milliseconds="4000"/>',
        ),
        is_server=True,
    )
    counters = host.counters
    invite = host.deliver(call, _caller_request("INVITE"))
    ok = host.last("200")
    assert ok.message.header("CSeq") == "1 INVITE"
    host.advance_to(0.5)
    host.deliver(call, invite)  # the caller did not hear the 200
    assert host.times_of("200") == pytest.approx([0.0, 0.5])
    assert host.sent[1].data == ok.data
    assert (counters.retransmissions, counters.steps[1].retransmissions) == (1, 1)
    assert counters.steps[0].messages == 1

    host.advance_to(0.6)
    dialog_to = ok.message.header("To") or ""
    host.deliver(call, _caller_request("ACK", to=dialog_to))
    host.advance_to(2.0)
    bye_raw = host.deliver(call, _caller_request("BYE", cseq=2, to=dialog_to))
    host.advance_to(2.5)
    host.deliver(call, bye_raw)  # and then not the 200 to its BYE

    assert host.sent_what() == ["200", "200", "200", "200"]
    assert host.sent[3].data == host.sent[2].data
    assert host.sent[3].message.header("CSeq") == "2 BYE"
    assert (counters.retransmissions, counters.steps[4].retransmissions) == (2, 1)
    assert (counters.steps[2].messages, counters.steps[3].messages) == (1, 1)
    assert counters.unexpected_messages == 0
    assert not call.finished
    host.run_until_idle()
    assert host.ending == (None, "", pytest.approx(6.0))  # the timewait after the last 200


# ---------------------------------------------------------------------- 6. pauses
@pytest.mark.parametrize(
    ("pause", "scenario_default_ms", "override_ms", "fallback_ms", "expected_s"),
    [
        ("<pause/>", None, 2500, 0, 2.5),  # -d given: every pause without its own length
        ("<pause/>", 30_000, 2500, 0, 2.5),  # -d beats a built-in's default hold
        ("<pause/>", 30_000, None, 1000, 30.0),  # no -d: the scenario's default
        ("<pause/>", None, None, 1000, 1.0),  # neither: -d's default value
        ('<pause milliseconds="700"/>', 30_000, 2500, 0, 0.7),  # a pause's own length wins
    ],
    ids=["override", "override-beats-default", "scenario-default", "fallback", "own-length"],
)
def test_a_pause_lasts_as_the_policy_says(
    pause: str, scenario_default_ms: int | None, override_ms: int | None, fallback_ms: int, expected_s: float
) -> None:
    # 0 INVITE, 1 recv 200, 2 ACK, 3 pause, 4 BYE, 5 recv 200
    loaded = load(
        scenario(INVITE_ONCE, recv(200), ACK, "\n  " + pause, send_request("BYE", in_dialog=True), recv(200))
    )
    step = loaded.steps[3]
    assert isinstance(step, model.Pause)
    step.default_ms = scenario_default_ms
    policy = CallPolicy(pause_override_ms=override_ms, pause_fallback_ms=fallback_ms)
    host, call = start_call(loaded, policy)
    host.advance(0.25)
    host.deliver(call, response_to(sent_invite(host), 200))
    assert host.times_of("ACK") == pytest.approx([0.25])
    assert host.counters.steps[3].messages == 1

    host.advance(expected_s - 0.01)
    assert host.sent_of("BYE") == []
    finish_with_bye(host, call, at=0.25 + expected_s)  # answered 0.1 s after it left
    assert host.ending.at == pytest.approx(0.35 + expected_s)
    assert host.counters.call_length.max_ms == pytest.approx((0.35 + expected_s) * 1000)


def test_a_pauses_actions_run_as_it_starts_and_a_jump_among_them_decides_where_it_ends() -> None:
    """call.cpp executeMessage: the pause is drawn, then executeAction runs at its start;
    when it ends, next() goes on from where a jump put the call."""
    # 0 INVITE, 1 recv 200, 2 ACK, 3 pause 1 s (log, jump to 5), 4 pause 30 s, 5 BYE, 6 recv 200
    actions = '<action><log message="paused"/><jump value="5"/></action>'
    host, call = start_call(
        scenario(INVITE_ONCE, recv(200), ACK, f'\n  <pause milliseconds="1000">{actions}</pause>',
                 '\n  <pause milliseconds="30000"/>', send_request("BYE", in_dialog=True), recv(200))
    )  # fmt: skip
    host.advance(0.1)
    host.deliver(call, response_to(sent_invite(host), 200))
    assert host.logs == [("log", "paused")]  # at the pause's start
    host.advance(0.99)
    assert host.sent_of("BYE") == []
    finish_with_bye(host, call, at=1.1)


@pytest.mark.parametrize(
    ("timewait", "expected_s"), [("<timewait/>", 2.5), ('<timewait milliseconds="700"/>', 0.7)]
)
def test_a_timewait_lasts_as_a_pause_does(timewait: str, expected_s: float) -> None:
    """scenario.cpp reads <timewait> as a <pause>: without a length of its own it waits -d."""
    host, call = start_call(
        scenario(INVITE_ONCE, recv(200), ACK, "\n  " + timewait), CallPolicy(pause_override_ms=2500)
    )
    host.advance(0.25)
    host.deliver(call, response_to(sent_invite(host), 200))
    host.advance(expected_s - 0.01)
    assert not call.finished
    host.advance(0.02)
    assert call.finished and host.ending.failure_class is None


# ---------------------------------------------------------------------- 7. response codes by regexp
# 0 INVITE, 1 recv response=PATTERN (regexp, optional), 2 recv 200, 3 ACK
def _regexp_ringing(pattern: str) -> str:
    return scenario(
        INVITE, f'\n  <recv response="{pattern}" regexp_match="true" optional="true"/>', recv(200), ACK
    )


@pytest.mark.parametrize(
    ("pattern", "code", "matched"),
    [("^18.$", 180, True), ("^18.$", 183, True), ("^18.$", 100, False), ("8", 183, True), ("^1", 486, False)],
)
def test_a_response_regexp_takes_the_codes_it_finds(pattern: str, code: int, matched: bool) -> None:
    """call.cpp matches_scenario: the code's digits searched with the regexp (regexec)."""
    host, call = start_call(_regexp_ringing(pattern))
    invite = sent_invite(host)
    host.advance(0.1)
    host.deliver(call, response_to(invite, code))
    counters = host.counters
    if not matched:
        assert (counters.steps[1].messages, counters.unexpected_messages) == (0, 1)
        assert host.ending.failure_class == "unexpected_sip"
        return
    assert (counters.steps[1].messages, counters.unexpected_messages) == (1, 0)
    host.deliver(call, response_to(invite, 200))
    assert host.sent_what() == ["INVITE", "ACK"]
    assert host.ending.failure_class is None


def test_a_response_regexp_matches_only_responses() -> None:
    host, call = start_call(
        scenario('\n  <recv response="." regexp_match="true"/>', send_response(200, "OK")), is_server=True
    )
    host.deliver(call, _caller_request("INVITE"))
    assert host.counters.steps[0].unexpected == 1
    assert host.ending.failure_class == "unexpected_sip"


def test_a_bad_response_regexp_is_a_load_error_naming_its_line() -> None:
    with pytest.raises(FileProblem, match=r"^test\.xml:\d+: <recv> response='\(18': bad regexp"):
        load(scenario(INVITE, '\n  <recv response="(18" regexp_match="true"/>'))


def test_a_response_regexp_names_its_screen_row() -> None:
    step = load(_regexp_ringing("^18.$")).steps[1]
    assert isinstance(step, model.Recv)
    assert (step.response, step.response_regexp) == (None, "^18.$")
    assert "^18.$" in step.label()


# ---------------------------------------------------------------------- 8. messages without a To header
def _without_to(message: SipMessage) -> bytes:
    lines = bytes(message).split(b"\r\n")
    return b"\r\n".join(line for line in lines if not line.lower().startswith(b"to:"))


def test_a_response_without_to_is_unexpected_and_fails_the_call() -> None:
    """call.cpp process_incoming: no To header -> process_unexpected, before any matching."""
    host, call = start_call(scenario(INVITE, recv(200), ACK))
    invite = sent_invite(host)
    host.advance(0.1)
    host.deliver(call, _without_to(response_to(invite, 200)))
    counters = host.counters
    assert (counters.unexpected_messages, counters.steps[1].unexpected) == (1, 1)
    assert counters.steps[1].messages == 0
    assert host.ending.failure_class == "unexpected_sip"
    assert counters.calls_succeeded == 0
    assert any("no To header" in line for line in host.errors)


def test_a_message_without_to_is_only_counted_without_abortunexp() -> None:
    host, call = start_call(scenario(INVITE, recv(200), ACK), ONLY_COUNT_UNEXPECTED)
    invite = sent_invite(host)
    host.advance(0.1)
    host.deliver(call, _without_to(response_to(invite, 200)))
    assert host.counters.unexpected_messages == 1
    assert not call.finished
    host.deliver(call, response_to(invite, 200))
    assert host.ending.failure_class is None


# ---------------------------------------------------------------------- 9. [next_url], [last_Request_URI]
# 0 INVITE, 1 recv 200 (RRS), 2 ACK to [next_url], 3 BYE to [last_Request_URI], 4 recv 200
def _targets(rrs: str = "false") -> str:
    return scenario(
        INVITE_ONCE,
        recv(200, rrs=rrs),
        send_request("ACK", in_dialog=True, uri="[next_url]"),
        send_request("BYE", in_dialog=True, uri="[last_Request_URI]"),
        recv(200),
    )


def test_next_url_without_a_recorded_route_is_the_uri_of_the_last_to_header() -> None:
    """call.cpp createSendingMessage E_Message_Next_Url -> get_last_request_uri: inside the <>
    of the last received message's To header."""
    host, call = start_call(_targets())
    invite = sent_invite(host)
    host.deliver(call, response_to(invite, 200, headers=[("Record-Route", "<sip:p1.example.com;lr>")]))
    expected = "sip:service@127.0.0.2:5070"
    assert [sent.message.request_uri for sent in host.sent[1:]] == [expected, expected]
    assert host.last("ACK").message.header("Route") is None  # no rrs: no route set either


# 0 INVITE, 1 recv 200 (rrs), 2 ACK to [next_url] with [routes]
ROUTED_ACK = scenario(
    INVITE_ONCE,
    recv(200, rrs="true"),
    send_request("ACK", in_dialog=True, uri="[next_url]").replace("Max-Forwards", "[routes]\n      Max"),
)


def test_next_url_after_rrs_is_the_contact_and_routes_are_reversed() -> None:
    host, call = start_call(ROUTED_ACK)
    routes = "<sip:p1.example.com;lr>, <sip:p2.example.com;lr>"
    host.deliver(call, response_to(sent_invite(host), 200, headers=[("Record-Route", routes)]))
    ack = host.last("ACK").message
    assert ack.request_uri == "sip:peer@127.0.0.2:5070"
    assert ack.header("Route") == "<sip:p2.example.com;lr>, <sip:p1.example.com;lr>"


def test_a_strict_first_hop_becomes_the_target_and_the_contact_the_last_route() -> None:
    """call.cpp computeRouteSetAndRemoteTargetUri: a first hop without ;lr is a strict router."""
    host, call = start_call(ROUTED_ACK)
    routes = "<sip:p1.example.com;lr>, <sip:strict.example.com>"
    host.deliver(call, response_to(sent_invite(host), 200, headers=[("Record-Route", routes)]))
    ack = host.last("ACK").message
    assert ack.request_uri == "sip:strict.example.com"
    assert ack.header("Route") == f"<sip:p1.example.com;lr>, {PEER_CONTACT}"


@pytest.mark.parametrize("to", ["sip:service@127.0.0.2:5070", "sip:service@127.0.0.2:5070;tag=peer-1"])
def test_a_to_header_without_angle_brackets_still_gives_a_request_uri(to: str) -> None:
    host, call = start_call(_targets())
    ok = response_to(sent_invite(host), 200, to_tag=None)
    raw = bytes(ok).replace(f"To: {ok.header('To')}".encode(), f"To: {to}".encode())
    host.deliver(call, raw)
    assert host.last("ACK").message.request_uri == "sip:service@127.0.0.2:5070"


def test_an_empty_request_uri_fails_the_call_instead_of_sending_it() -> None:
    """A request line must never go out as 'ACK  SIP/2.0' (SIPp would send it)."""
    host, call = start_call(_targets())
    invite = sent_invite(host)
    ok = response_to(invite, 200)
    host.deliver(call, _without_to(ok).replace(b"CSeq:", b"To: <>;tag=peer-1\r\nCSeq:"))
    assert host.ending.failure_class == "scenario_error"
    assert "step 2 (line" in host.ending.reason
    assert "request line without a URI: 'ACK  SIP/2.0'" in host.ending.reason
    # abortCall's own ACK and BYE (-default_behaviors bye) fall back to the INVITE's URI
    assert host.sent_what() == ["INVITE", "ACK", "BYE"]
    assert {sent.message.request_uri for sent in host.sent} == {invite.request_uri}


@pytest.mark.parametrize(
    ("first_line", "lacks"),
    [
        (b"ACK  SIP/2.0", True),
        (b"ACK SIP/2.0", True),
        (b"ACK", True),
        (b"", True),
        (b" sip:a@b SIP/2.0", False),  # no method is the parser's to refuse, not this check's
        (b"BYE sip:a@b SIP/2.0", False),
        (b"SIP/2.0 200 OK", False),
    ],
)
def test_a_request_line_lacks_its_uri_when_the_second_word_is_empty_or_missing(
    first_line: bytes, lacks: bool
) -> None:
    for message in (first_line, first_line + b"\r\nCSeq: 1 ACK\r\n\r\n"):
        assert _lacks_request_uri(message) is lacks


# ---------------------------------------------------------------------- 10. hard stop, stop_call, PING
def test_abort_now_of_an_established_call_sends_bye_to_its_target_with_its_routes() -> None:
    host, call = start_call(ABORTABLE, NO_BYE)  # a hard stop tidies whatever -default_behaviors says
    invite = sent_invite(host)
    host.advance(0.1)
    host.deliver(call, response_to(invite, 200, headers=[("Record-Route", ROUTES)]))
    host.advance_to(1.0)
    call.abort_now()
    assert host.sent_what() == ["INVITE", "ACK", "BYE"]
    bye = host.last("BYE").message
    assert bye.request_uri == "sip:peer@127.0.0.2:5070"
    assert bye.header("Route") == "<sip:p2.example.com;lr>, <sip:p1.example.com;lr>"
    assert bye.to_tag == PEER_TAG and bye.header("CSeq") == "2 BYE"
    assert host.ending.failure_class == "cancelled"


def test_abort_now_of_a_call_whose_200_is_not_acked_sends_ack_then_bye() -> None:
    host, call = start_call(scenario(INVITE, recv(200), '\n  <pause milliseconds="5000"/>', ACK))
    host.advance(0.1)
    host.deliver(call, response_to(sent_invite(host), 200))
    call.abort_now()
    assert host.sent_what() == ["INVITE", "ACK", "BYE"]


def test_abort_now_of_a_server_call_sends_nothing() -> None:
    """call.cpp abortCall: only creationMode != MODE_SERVER tidies the dialog."""
    host, call = start_call(
        scenario(recv("INVITE"), send_response(200, "OK"), recv("ACK"), recv("BYE")), is_server=True
    )
    host.deliver(call, _caller_request("INVITE"))
    call.abort_now()
    assert host.sent_what() == ["200"]
    assert host.ending.failure_class == "cancelled"


def test_abandon_sends_nothing_and_counts_nothing() -> None:
    """stop_now: SIPp exits at once; the live call is neither tidied nor counted."""
    host, call = start_call(ABORTABLE)
    host.advance(0.1)
    host.deliver(call, response_to(sent_invite(host), 180))
    call.abandon()
    host.advance(60)
    assert host.sent_what() == ["INVITE"]
    assert host.ended == [] and host.counters.calls_active == 1
    assert host.media_stopped == [CALL_ID]


def test_a_tidy_abandon_cancels_a_ringing_call_and_still_counts_nothing() -> None:
    """stop_now: the issue's hard stop ends the peer's dialog (CANCEL here), while the call
    stays uncounted as SIPp's exit at once leaves it."""
    host, call = start_call(ABORTABLE)
    host.advance(0.1)
    host.deliver(call, response_to(sent_invite(host), 180))
    call.abandon(tidy=True)
    host.advance(60)
    assert host.sent_what() == ["INVITE", "CANCEL"]
    assert host.ended == [] and host.counters.calls_active == 1


def test_an_error_action_ends_the_run_and_the_call_sends_nothing_more() -> None:
    """call.cpp E_AT_LOG_ERROR: SIPp's ERROR() quits the whole run at once."""
    error = '\n  <nop><action><error message="bad [call_id]"/></action></nop>'
    host, call = start_call(scenario(INVITE_ONCE, recv(200), ACK, error, BYE, recv(200)))
    host.advance(0.1)
    host.deliver(call, response_to(sent_invite(host), 200))
    assert host.fatal_errors == [f"bad {CALL_ID}"]
    assert host.sent_what() == ["INVITE", "ACK"]


STOP_CALL = '<action><exec int_cmd="stop_call"/></action>'


def test_stop_call_on_a_recv_fails_the_call_at_once_without_a_bye() -> None:
    """call.cpp process_incoming E_AR_STOP_CALL -> rejectCall: failed, nothing more sent."""
    stopped_200 = f'\n  <recv response="200">{STOP_CALL}</recv>'
    host, call = start_call(scenario(INVITE, stopped_200, ACK, BYE, recv(200)))
    host.advance(0.1)
    host.deliver(call, response_to(sent_invite(host), 200))
    assert host.sent_what() == ["INVITE"]
    assert host.ending == ("scenario_error", "stopped by stop_call", pytest.approx(0.1))
    assert host.counters.calls_failed == 1


def test_stop_call_on_a_nop_runs_on_and_the_call_counts_neither_way() -> None:
    """call.cpp executeMessage keeps a nop's E_AR_STOP_CALL in last_action_result and goes on;
    terminate() then counts the call neither failed nor successful."""
    host, call = start_call(scenario(INVITE, recv(200), ACK, f"\n  <nop>{STOP_CALL}</nop>", BYE, recv(200)))
    host.advance(0.1)
    host.deliver(call, response_to(sent_invite(host), 200))
    assert host.sent_what() == ["INVITE", "ACK", "BYE"]
    host.deliver(call, response_to(host.last("BYE").message, 200))
    assert host.ended == [] and [ending.reason for ending in host.uncounted] == ["stopped by stop_call"]
    assert (host.counters.calls_succeeded, host.counters.calls_failed) == (0, 0)


def test_stop_call_on_a_send_has_no_effect() -> None:
    """call.cpp executeMessage drops the result of a send's actions."""
    acked = send_request("ACK", in_dialog=True).replace("</send>", f"{STOP_CALL}</send>")
    host, call = start_call(scenario(INVITE, recv(200), acked))
    host.advance(0.1)
    host.deliver(call, response_to(sent_invite(host), 200))
    assert host.ending.failure_class is None
    assert any("no effect" in line for line in host.errors)


def test_a_failed_check_lets_the_call_run_to_its_end_and_fails_it_there() -> None:
    """call.cpp process_incoming: an action error 'goes on with the scenario'; terminate()
    counts the call failed at its end (E_FAILED_REGEXP_DOESNT_MATCH)."""
    check = '<action><ereg regexp="^never$" search_in="msg" check_it="true" assign_to="_"/></action>'
    host, call = start_call(scenario(INVITE, f'\n  <recv response="200">{check}</recv>', ACK, BYE, recv(200)))
    host.advance(0.1)
    host.deliver(call, response_to(sent_invite(host), 200))
    assert host.sent_what() == ["INVITE", "ACK", "BYE"]  # the call goes on, no abort
    assert not call.finished
    host.advance(0.1)
    host.deliver(call, response_to(host.last("BYE").message, 200))
    assert host.ending.failure_class == "scenario_error"
    assert "did not match" in host.ending.reason
    assert host.ending.at == pytest.approx(0.2)


@pytest.mark.parametrize("pingreply", [True, False])
def test_an_unexpected_ping_is_answered_and_ends_the_call_uncounted_under_pingreply(pingreply: bool) -> None:
    """call.cpp automaticResponseMode E_AM_PING: 200, and the call ends neither failed nor successful."""
    behaviors = frozenset({BYE_BEHAVIOR, ABORT_UNEXPECTED} | ({PING_REPLY} if pingreply else set()))
    host, call, invite, _ok = established(CallPolicy(behaviors=behaviors))
    host.advance_to(1.0)
    host.deliver(call, peer_request("PING", invite, 3))
    assert host.counters.unexpected_messages == 0
    if pingreply:
        assert host.sent_what() == ["INVITE", "ACK", "200"]
        assert host.last("200").message.header("CSeq") == "3 PING"
        assert host.ended == [] and len(host.uncounted) == 1 and call.finished
        assert (host.counters.calls_succeeded, host.counters.calls_failed) == (0, 0)
    else:
        assert host.sent_what() == ["INVITE", "ACK"]
        assert not call.finished


def test_an_unexpected_cancel_with_abortunexp_is_answered_and_fails_the_call() -> None:
    host, call = start_call(
        scenario(recv("INVITE"), send_response(180, "Ringing"), '\n  <pause milliseconds="5000"/>'),
        is_server=True,
    )
    host.deliver(call, _caller_request("INVITE"))
    host.advance(1.0)
    host.deliver(call, _caller_request("CANCEL"))
    assert host.sent_what() == ["180", "200"]
    assert host.last("200").message.header("CSeq") == "1 CANCEL"
    assert host.ending.failure_class == "unexpected_sip"


def test_a_send_ontimeout_label_at_the_end_fails_the_call() -> None:
    """call.cpp call::run: an ontimeout label with no message after it fails the call."""
    host, _call = start_call(
        scenario(
            send_request("REGISTER", 'retrans="500" ontimeout="end"', uri="sip:[remote_ip]:[remote_port]"),
            recv(200),
            '\n  <label id="end"/>',
        ),
        CallPolicy(other_max_retrans=1),
    )
    host.run_until_idle()
    assert host.ending.failure_class == "timeout"
    assert (host.counters.timeouts, host.counters.steps[0].timeouts) == (1, 1)


# ---------------------------------------------------------------------- 11. SIPp's _unexp.main handler
# 0 INVITE, 1 recv 200, 2 ACK, 3 pause 5 s, 4 BYE, 5 recv 200 (next=end), 6 label _unexp.main,
# 7 recv INFO, 8 200, 9 nop jump back to _unexp.retaddr, 10 label end
UNEXPECTED_HANDLED = scenario(
    INVITE,
    recv(200),
    ACK,
    '\n  <pause milliseconds="5000"/>',
    BYE,
    recv(200, next="end"),
    '\n  <label id="_unexp.main"/>',
    recv("INFO"),
    send_response(200, "OK", add_tag=False),
    '\n  <nop><action><jump variable="_unexp.retaddr"/></action></nop>',
    '\n  <label id="end"/>',
)


def test_an_unexpected_message_goes_to_the_unexp_main_label_and_comes_back() -> None:
    """call.cpp process_incoming: with a label _unexp.main, an unexpected message sets
    _unexp.retaddr (the message index) and _unexp.pausedaddr, jumps there, and is matched again."""
    host, call = start_call(UNEXPECTED_HANDLED)
    invite = sent_invite(host)
    host.advance(0.1)
    host.deliver(call, response_to(invite, 200))
    host.advance_to(1.0)
    host.deliver(call, peer_request("INFO", invite, 7))

    assert host.sent_what() == ["INVITE", "ACK", "200"]
    assert host.last("200").message.header("CSeq") == "7 INFO"
    assert host.counters.unexpected_messages == 0
    assert call.context.variables["_unexp.retaddr"] == 3.0  # the pause
    assert call.context.variables["_unexp.pausedaddr"] == 5100.0  # where it would have ended, in ms
    host.advance_to(5.9)
    assert host.sent_of("BYE") == []  # back at the pause, which starts again
    finish_with_bye(host, call, at=6.0)

    assert host.counters.steps[7].messages == 1


def test_an_unexpected_message_while_unexp_retaddr_is_set_is_an_ordinary_unexpected_one() -> None:
    host, call = start_call(UNEXPECTED_HANDLED)
    invite = sent_invite(host)
    host.advance(0.1)
    host.deliver(call, response_to(invite, 200))
    host.deliver(call, peer_request("INFO", invite, 7))
    host.deliver(call, peer_request("INFO", invite, 8))  # the scenario never reset _unexp.retaddr
    assert host.counters.unexpected_messages == 1
    assert host.ending.failure_class == "unexpected_sip"


def test_a_jump_value_counts_messages_without_labels() -> None:
    """SIPp's <jump value=N> indexes its messages, labels not among them."""
    # messages: 0 INVITE, 1 recv 200, 2 ACK (after a label), 3 nop jump to 5, 4 MESSAGE, 5 INFO
    host, call = start_call(
        scenario(
            INVITE_ONCE,
            recv(200),
            '\n  <label id="unused"/>',
            ACK,
            '\n  <nop><action><jump value="5"/></action></nop>',
            send_request("MESSAGE"),
            send_request("INFO"),
        )
    )
    host.deliver(call, response_to(sent_invite(host), 200))
    assert host.sent_what() == ["INVITE", "ACK", "INFO"]


# ---------------------------------------------------------------------- values from the network
_CAPTURE_DELAY = (
    '<action><ereg regexp="X-Delay: *([^\\r\\n]*)" search_in="msg" assign_to="_,delay"/>'
    '<todouble assign_to="delay" variable="delay"/></action>'
)


@pytest.mark.parametrize("delay", ["inf", "nan", "1e400", "9e99", "-inf"])
def test_a_pause_the_peer_sets_to_no_length_fails_the_call(delay: str) -> None:
    """<pause variable> from a header the peer wrote: a value that is no pause length fails
    the call as a scenario error; before, int(inf) raised into the event loop and the call
    never ended."""
    host, call = start_call(
        scenario(INVITE_ONCE, recv(200).replace("/>", f">{_CAPTURE_DELAY}</recv>"), ACK,
                 '\n  <pause variable="delay"/>', send_request("BYE", in_dialog=True), recv(200))
    )  # fmt: skip
    host.advance(0.1)
    host.deliver(call, response_to(sent_invite(host), 200, headers=[("X-Delay", delay)]))
    assert call.finished
    assert host.ending.failure_class == "scenario_error" and "pause variable" in host.ending.reason


def test_a_pause_the_peer_sets_to_a_length_waits_it() -> None:
    host, call = start_call(
        scenario(INVITE_ONCE, recv(200).replace("/>", f">{_CAPTURE_DELAY}</recv>"), ACK,
                 '\n  <pause variable="delay"/>', send_request("BYE", in_dialog=True), recv(200))
    )  # fmt: skip
    host.advance(0.1)
    host.deliver(call, response_to(sent_invite(host), 200, headers=[("X-Delay", "1500")]))
    finish_with_bye(host, call, at=1.6)


@pytest.mark.parametrize(
    ("action", "words"),
    [
        ('<jump variable="delay"/>', "<jump>: nan is no message number"),
        ('<setdest host="127.0.0.1" port="[$delay]" protocol="udp"/>', "<setdest>: port 'nan' is no port"),
    ],
)
def test_a_jump_or_destination_the_peer_sets_to_nonsense_fails_the_call(action: str, words: str) -> None:
    host, call = start_call(
        scenario(INVITE_ONCE,
                 recv(200).replace("/>", f">{_CAPTURE_DELAY[:-9]}{action}</action></recv>"), ACK)
    )  # fmt: skip
    host.advance(0.1)
    host.deliver(call, response_to(sent_invite(host), 200, headers=[("X-Delay", "nan")]))
    assert call.finished
    assert host.ending.failure_class == "scenario_error" and words in host.ending.reason


def test_a_call_stopped_in_its_final_timewait_succeeds() -> None:
    """Every message done, only waiting for late retransmissions: a hard stop (-timeout, Q)
    counts it a success; before, a UAS whose calls had all completed exited 1."""
    host, call = start_call(scenario(INVITE_ONCE, recv(200), ACK, '\n  <timewait milliseconds="4000"/>'))
    host.advance(0.1)
    host.deliver(call, response_to(sent_invite(host), 200))
    assert call.in_final_timewait
    call.abort_now()
    assert call.finished and host.ending.failure_class is None
    assert host.sent_of("BYE") == []  # nothing to tidy: the dialog is the peer's to end


# ---------------------------------------------------------------------- response-time timers
def test_response_time_timers_start_with_the_call_restart_and_stop_as_sipp_does() -> None:
    """Every rtd starts with the call; start_rtd restarts one; a stop without repeat_rtd
    ends it until it is started again, and repeat_rtd keeps it running."""
    flow = scenario(
        INVITE_ONCE,
        recv(100, rtd="early"),  # from the call's start
        recv(180, rtd="early", optional="true"),  # stopped already: nothing measured
        recv(200, rtd="answer", repeat_rtd="true", start_rtd="early"),  # kept running; early restarts
        send_request("ACK", "rtd='answer'", in_dialog=True),  # answer again, from the call's start
        '\n  <pause milliseconds="1000"/>',
        send_request("BYE", "rtd='early'", in_dialog=True),  # early, from the 200
    )
    host, call = start_call(flow)
    invite = sent_invite(host)
    host.advance(0.25)
    host.deliver(call, response_to(invite, 100))
    host.advance(0.25)
    host.deliver(call, response_to(invite, 180))
    host.advance(0.5)
    host.deliver(call, response_to(invite, 200))
    host.advance(1.1)
    rtd = host.counters.rtd
    assert (rtd["early"].count, rtd["answer"].count) == (2, 2)
    assert (rtd["early"].min_ms, rtd["early"].max_ms) == (pytest.approx(250), pytest.approx(1000))
    assert (rtd["answer"].min_ms, rtd["answer"].max_ms) == (pytest.approx(1000), pytest.approx(1000))
