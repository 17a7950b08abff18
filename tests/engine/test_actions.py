"""Scenario actions run as SIPp's call.cpp executeAction runs them, on one call's variables."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from gossipper.engine.actions import ActionOutcome, header_text, is_set, run_actions, to_number
from gossipper.engine.context import CallContext, RunContext
from gossipper.engine.injection import Injection
from gossipper.engine.settings import KeywordSettings
from gossipper.scenario import model
from gossipper.scenario.loader import parse_scenario
from gossipper.sip.message import SipMessage

INVITE = SipMessage.parse(
    b"INVITE sip:bob@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-first\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK-second\r\n"
    b"Contact: <sip:From@10.0.0.1:5060>\r\n"
    b"From: Alice <sip:alice@example.com>;tag=abc\r\n"
    b"To: <sip:bob@example.com>\r\n"
    b"Call-ID: c1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Content-Length: 6\r\n"
    b"\r\n"
    b"v=0\r\no"
)


NAMES = "a,b,c,d,r,s"


@dataclass
class Host:
    """The call side of the actions: its variables and what it was asked to log."""

    context: CallContext
    logged: list[tuple[str, str]] = field(default_factory=list)

    def render_text(self, template: model.MessageTemplate) -> str:
        return template.render_text(lambda token: str(self.context.variables.get(token.lstrip("$"), "")))

    def log(self, kind: str, text: str) -> None:
        self.logged.append((kind, text))

    def media_action(self, action: model.Exec) -> tuple[str, str] | None:
        return None

    def run_command(self, command: str) -> None: ...
    def internal_command(self, command: str) -> None: ...
    def set_destination(self, host: str, port: int) -> None: ...


def new_host() -> Host:
    run = RunContext(
        keywords=KeywordSettings(),
        local_ip="127.0.0.1",
        local_port=5060,
        transport_name="UDP",
        media_ip="127.0.0.1",
        media_base_port=6000,
        injection=Injection([]),
    )
    return Host(CallContext(run=run, number=1, call_id="c1", remote=("127.0.0.1", 5070)))


def run(
    actions_xml: str, host: Host | None = None, message: SipMessage | None = INVITE
) -> tuple[Host, ActionOutcome]:
    """The actions of a <recv>; every name used by a <nop> and referenced, so any count of uses loads."""
    uses = "".join(f'<nop condexec="{name}"/>' for name in NAMES.split(","))
    scenario = parse_scenario(
        f'<scenario><recv request="INVITE"><action>{actions_xml}</action></recv>{uses}'
        f'<Reference variables="{NAMES}"/></scenario>'.encode(),
        "a.xml",
    )
    host = host or new_host()
    return host, run_actions(host, scenario.steps[0].actions, message, lambda value: int(value))


PRELUDE = (
    '<assign assign_to="a" value="0"/><assign assign_to="b" value="0"/><assign assign_to="c" value="0"/>'
)
PRELUDE += (
    '<assign assign_to="d" value="0"/><assign assign_to="r" value="0"/><assign assign_to="s" value="0"/>'
)


def ereg(attributes: str) -> dict[str, object]:
    host, outcome = run(f'{PRELUDE}<ereg {attributes} assign_to="a,b"/>')
    assert outcome.failure is None
    return host.context.variables


# ------------------------------------------------------------------ 7. ereg search_in="hdr"
def test_hdr_searches_the_rest_of_the_line_after_the_header_name() -> None:
    """header="From" leaves ': Alice <...>;tag=abc', so SIPp's usual ': *(.*)' matches."""
    variables = ereg('regexp=": *(.*)" search_in="hdr" header="From" start_line="true"')
    assert variables["b"] == "Alice <sip:alice@example.com>;tag=abc"
    assert (
        ereg('regexp="^ (.*)$" search_in="hdr" header="From:"')["b"]
        == "Alice <sip:alice@example.com>;tag=abc"
    )


def test_without_start_line_the_header_name_matches_anywhere_as_in_sipp() -> None:
    """SIPp's extractSubMessage is a plain substring search: 'From' inside the Contact URI comes first."""
    assert ereg('regexp="^(.*)$" search_in="hdr" header="From"')["b"] == "@10.0.0.1:5060>"
    assert ereg('regexp="^(.*)$" search_in="hdr" header="From" start_line="true"')["b"] != "@10.0.0.1:5060>"


def test_occurrence_picks_the_nth_header_and_case_indep_the_name_only() -> None:
    assert ereg('regexp="branch=(.*)" search_in="hdr" header="Via:" occurrence="2"')["b"] == "z9hG4bK-second"
    assert (
        ereg('regexp="branch=(.*)" search_in="hdr" header="via:" case_indep="true"')["b"] == "z9hG4bK-first"
    )
    # case_indep never reaches the regexp: "ALICE" does not match "Alice"
    assert ereg('regexp="(ALICE)" search_in="hdr" header="from" case_indep="true"')["b"] == 0.0


def test_header_text_is_empty_when_the_name_is_missing() -> None:
    text = bytes(INVITE).decode()
    assert header_text(text, "Route:", False, 1, True) == ""
    assert header_text(text, "Via:", False, 3, True) == ""


def test_a_missing_header_fails_the_call_under_check_it() -> None:
    _host, outcome = run(
        f'{PRELUDE}<ereg regexp=".*" search_in="hdr" header="Route:" check_it="true" assign_to="a"/>'
    )
    assert outcome.failure == "scenario_error" and "'Route:' not found" in outcome.failure_reason


def test_a_miss_leaves_the_variables_as_they_were() -> None:
    """SIPp assigns only on a match, and only the groups that took part."""
    host = new_host()
    host.context.variables.update(a="old", b="old")
    run('<ereg regexp="nomatch(x)" search_in="msg" assign_to="a,b"/>', host)
    assert host.context.variables["a"] == "old"
    run('<ereg regexp="(INVITE)|(nothing)" search_in="msg" assign_to="a,b,c"/>', host)
    assert (host.context.variables["a"], host.context.variables["b"]) == ("INVITE", "INVITE")
    assert "c" not in host.context.variables


def test_search_in_var_and_body() -> None:
    host, _ = run(
        '<assignstr assign_to="s" value="user=bob"/>'
        '<ereg regexp="=(.*)" search_in="var" variable="s" assign_to="a,b"/>'
    )
    assert host.context.variables["b"] == "bob"
    assert ereg('regexp="^(v=0)" search_in="body"')["b"] == "v=0"


# ------------------------------------------------------------------ 6. variables and numbers
def test_variable_reads_are_sipps_doubles() -> None:
    """getDouble is 0 for a string; <todouble> converts it; value= is a literal."""
    host, _ = run(
        '<assignstr assign_to="s" value="5"/><assign assign_to="a" variable="s"/>'
        '<todouble assign_to="b" variable="s"/><add assign_to="b" value="2"/>'
        '<test assign_to="r" variable="b" compare="equal" value="7"/>'
    )
    variables = host.context.variables
    assert (variables["a"], variables["b"], variables["r"]) == (0.0, 7.0, True)
    assert to_number(host.context, "s") == 0.0


def test_test_variable_one_is_the_variable_named_one() -> None:
    host = new_host()
    host.context.variables["1"] = 4.0
    parsed = parse_scenario(
        b'<scenario><recv request="INVITE"><action><test assign_to="r" variable="1" compare="greater_than"'
        b' value="3"/></action></recv><nop condexec="r"/><Reference variables="1"/></scenario>',
        "t.xml",
    )
    run_actions(host, parsed.steps[0].actions, INVITE, int)
    assert host.context.variables["r"] is True
    host.context.variables["1"] = 1.0
    run_actions(host, parsed.steps[0].actions, INVITE, int)
    assert host.context.variables["r"] is False


def test_check_it_on_test_and_strcmp_fails_the_call() -> None:
    _host, outcome = run(
        '<assign assign_to="a" value="1"/><test variable="a" compare="equal" value="2" check_it="true"/>'
    )
    assert outcome.failure == "scenario_error" and "check_it" in outcome.failure_reason
    _host, outcome = run(
        '<assignstr assign_to="s" value="x"/><strcmp variable="s" value="x" check_it_inverse="true"/>'
    )
    assert outcome.failure == "scenario_error"
    host, outcome = run('<assignstr assign_to="s" value="x"/><strcmp assign_to="r" variable="s" value="x"/>')
    assert outcome.failure is None and host.context.variables["r"] == 0.0


def test_a_zero_divisor_leaves_the_variable_and_warns() -> None:
    host, _ = run(
        '<assign assign_to="a" value="6"/><assign assign_to="b" value="0"/>'
        '<divide assign_to="a" variable="b"/>'
    )
    assert host.context.variables["a"] == 6.0
    assert host.logged and host.logged[0][0] == "warning"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, False), (0.0, False), (2.0, True), (True, True), (False, False), ("", True)],
)
def test_is_set_as_sipp(value: object, expected: bool) -> None:
    assert is_set(value) is expected  # type: ignore[arg-type]


def test_string_edits_and_clock_actions() -> None:
    host, _ = run(
        '<assignstr assign_to="s" value="  a b@c  "/><trim assign_to="s"/>'
        '<assignstr assign_to="a" value="[$s]"/>'
        '<urlencode variable="s"/><assignstr assign_to="b" value="x+y%40z"/><urldecode variable="b"/>'
        '<gettimeofday assign_to="c,d"/><sample assign_to="r" distribution="uniform" min="1" max="2"/>'
    )
    variables = host.context.variables
    assert (variables["a"], variables["s"], variables["b"]) == ("a b@c", "a%20b%40c", "x y@z")
    assert isinstance(variables["c"], float) and variables["c"] > 1.7e9 and 0 <= variables["d"] < 1e6  # type: ignore[operator]
    assert 1 <= variables["r"] <= 2  # type: ignore[operator]


def test_msg_and_hdr_search_the_message_as_it_came() -> None:
    """SIPp's ereg searches the received text itself: spacing, folding and case kept."""
    raw = b"OPTIONS sip:x@h SIP/2.0\r\nX-Odd:tight\r\nCall-ID: c\r\nTo: <sip:x@h>\r\n\r\n"
    host, outcome = run(
        '<ereg regexp="X-Odd:(t[a-z]+)" search_in="msg" assign_to="a,b"/>', message=SipMessage.parse(raw)
    )
    assert outcome.failure is None and host.context.variables["b"] == "tight"
    host, outcome = run(
        '<ereg regexp="^:(.*)$" search_in="hdr" header="X-Odd" assign_to="a,b"/>',
        message=SipMessage.parse(raw),
    )
    assert host.context.variables["b"] == "tight"
