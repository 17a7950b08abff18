"""SIPp options that change every call's rules: -nr, -T2, -rtcheck, -lost, -pause_msg_ign,
-max_invite_retrans / -max_non_invite_retrans (through cli.compile, as a user gives them)."""

from __future__ import annotations

import pytest

from gossipper.cli.compile import run_settings
from gossipper.cli.options import parse_args
from gossipper.engine.settings import CallPolicy
from tests.engine.fake_host import response_to, start_call
from tests.engine.test_call import ACK, INVITE, OPTIONAL, REGISTER, recv, scenario, sent_invite


def _policy(*flags: str) -> CallPolicy:
    return run_settings(parse_args(list(flags))).policy


def test_nr_sends_once_and_does_not_answer_retransmissions_again() -> None:
    host, call = start_call(scenario(INVITE, recv(200), ACK), _policy("-nr"))
    host.advance(10.0)
    assert host.sent_what() == ["INVITE"]  # SIPp's -nr: no retransmission timer at all
    invite = sent_invite(host)
    ok = host.deliver(call, response_to(invite, 200))
    assert host.sent_what() == ["INVITE", "ACK"]
    host.deliver(call, ok)  # the 200 again: with -nr not recognised as a retransmission
    assert host.counters.steps[1].retransmissions == 0


def test_t2_caps_non_invite_retransmissions() -> None:
    host, _call = start_call(scenario(REGISTER, recv(200)), _policy("-T2", "2000"))
    host.run_until_idle()
    assert host.times_of("REGISTER") == pytest.approx([0.0, 0.5, 1.5, 3.5, 5.5, 7.5, 9.5, 11.5])


@pytest.mark.parametrize(
    ("flags", "invite_max", "other_max"),
    [
        ((), 5, 7),
        (("-max_invite_retrans", "2"), 2, 7),
        (("-max_non_invite_retrans", "3"), 5, 3),
        (("-max_retrans", "4", "-max_invite_retrans", "6"), 4, 4),  # SIPp: the smaller one
        (("-max_retrans", "4", "-max_non_invite_retrans", "1"), 4, 1),
    ],
)
def test_retransmission_limits_as_sipp_combines_them(
    flags: tuple[str, ...], invite_max: int, other_max: int
) -> None:
    policy = _policy(*flags)
    assert (policy.max_retrans(True), policy.max_retrans(False)) == (invite_max, other_max)


def _ringing_twice(policy: CallPolicy) -> int:
    """A 180 arrives, then the same 180 with another Content-Length spelling: how many
    times step 1 counted it as a retransmission."""
    host, call = start_call(scenario(INVITE, recv(180, **OPTIONAL), recv(200), ACK), policy)
    invite = sent_invite(host)
    ringing = bytes(response_to(invite, 180))
    host.deliver(call, ringing)
    host.deliver(call, ringing.replace(b"Content-Length: 0", b"Content-Length:   0"))
    return host.counters.steps[1].retransmissions


def test_rtcheck_loose_knows_a_retransmission_by_its_dialog_headers() -> None:
    assert _ringing_twice(_policy()) == 0  # full: the bytes differ, so it is matched anew
    assert _ringing_twice(_policy("-rtcheck", "loose")) == 1


def test_lost_drops_messages_of_steps_without_their_own_lost() -> None:
    host, _call = start_call(scenario(INVITE, recv(200), ACK), _policy("-lost", "100"))
    host.advance(0.1)
    assert host.sent_what() == []  # every send lost on purpose, still counted as sent
    assert host.counters.steps[0].messages == 1


def test_pause_msg_ign_drops_what_reaches_a_paused_call() -> None:
    steps = (INVITE, recv(200), ACK, '<pause milliseconds="1000"/>', recv("BYE"))
    for flags, unexpected in (((), 1), (("-pause_msg_ign",), 0)):
        policy = _policy(*flags, "-default_behaviors", "none")
        host, call = start_call(scenario(*steps), policy)
        host.deliver(call, response_to(sent_invite(host), 200))
        host.deliver(call, response_to(sent_invite(host), 486))  # arrives during the pause
        assert host.counters.unexpected_messages == unexpected


@pytest.mark.parametrize(
    ("flags", "ack_cseq", "failure"),
    [
        ((), 1, None),
        ((), 2, "unexpected_sip"),  # SIPp's default 'cseq' behavior: the call fails, nothing sent
        (("-default_behaviors", "all,-cseq"), 2, None),
    ],
)
def test_an_ack_with_another_cseq_than_the_invite_fails_the_call(
    flags: tuple[str, ...], ack_cseq: int, failure: str | None
) -> None:
    from tests.engine.test_call import _caller_request, send_response

    host, call = start_call(
        scenario(recv("INVITE"), send_response(200, "OK"), recv("ACK")), _policy(*flags), is_server=True
    )
    host.deliver(call, _caller_request("INVITE"))
    host.deliver(call, _caller_request("ACK", cseq=ack_cseq))
    assert host.sent_what() == ["200"]
    assert host.ending.failure_class == failure
