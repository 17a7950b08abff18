"""Scenario XML loading: what loads, and the one-line errors for what must not."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gossipper.cli.errors import describe
from gossipper.errors import FileProblem
from gossipper.scenario import model
from gossipper.scenario.loader import load_scenario_file, parse_scenario

GOOD = b"""<?xml version="1.0"?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="custom">
  <send retrans="500" start_rtd="a">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      Call-ID: [call_id]
      CSeq: [cseq] INVITE
      X-Field: [field0 file="users.csv" line=2] [$who] [key1] [cseq+1]
      Content-Length: [len]
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="200" rtd="a" next="end" test="ok">
    <action>
      <ereg regexp="tag=([a-z0-9]+)" search_in="hdr" header="To: " assign_to="all,tag"/>
      <test assign_to="ok" variable="x" compare="less_than" value="5"/>
      <add assign_to="x" value="1"/>
      <strcmp assign_to="same" variable="tag" value="abc"/>
      <log message="got [$tag]"/>
      <exec rtp_stream="synthetic,0,0,PCMA/8000,10,3000,2"/>
      <exec int_cmd="stop_gracefully"/>
      <jump value="1"/>
      <setdest host="127.0.0.1" port="5070" protocol="udp"/>
    </action>
  </recv>
  <pause distribution="uniform" min="10" max="20"/>
  <label id="end"/>
  <nop><action><exec rtp_stream="stop"/></action></nop>
  <timewait milliseconds="100"/>
  <ResponseTimeRepartition value="10, 20, 50"/>
  <Reference variables="all,same,who"/>
</scenario>
"""


def test_good_scenario_loads_every_part() -> None:
    scenario = parse_scenario(GOOD, "custom.xml", keys=frozenset({"key1"}))
    assert scenario.name == "custom"
    assert scenario.is_uac and not scenario.uses_3pcc
    send, optional, recv, pause, nop, timewait = scenario.steps
    assert isinstance(send, model.Send) and send.retrans_ms == 500 and send.message.method == "INVITE"
    assert isinstance(optional, model.Recv) and optional.optional and optional.response == 100
    assert isinstance(recv, model.Recv) and recv.next == "end" and recv.test == "ok" and recv.rtd == ["a"]
    kinds = [type(action).__name__ for action in recv.actions]
    assert kinds == ["Ereg", "Test", "Arith", "Strcmp", "Log", "Exec", "Exec", "Jump", "SetDest"]
    rtp = recv.actions[5]
    assert isinstance(rtp, model.Exec) and rtp.rtp is not None
    assert (rtp.rtp.kind, rtp.rtp.codec and rtp.rtp.codec.name, rtp.rtp.freq_ms, rtp.rtp.dur_ms) == (
        "synthetic",
        "PCMA",
        10,
        3000,
    )
    assert rtp.rtp.channels == 2
    assert isinstance(pause, model.Pause) and 10 <= (pause.sample_ms() or 0) <= 20
    assert scenario.labels == {"end": 4}  # a label names the step after it and is none itself
    assert isinstance(nop, model.Nop) and isinstance(timewait, model.Timewait)
    assert scenario.response_time_repartition == (10, 20, 50)


def test_template_computes_len_and_drops_emptied_header_lines() -> None:
    scenario = parse_scenario(GOOD, "custom.xml", keys=frozenset({"key1"}))
    step = scenario.steps[0]
    assert isinstance(step, model.Send)
    values = {"$who": "", "cseq+1": "2", "key1": "v"}
    data = step.message.render(lambda token: values.get(token, "X" if token != "$who" else ""))
    assert data.endswith(b"Content-Length:     0\r\n\r\n")  # SIPp's five columns
    assert b"\r\n\r\n" in data and not data.startswith(b" ")
    routes = parse_scenario(
        b"<scenario><send><![CDATA[\n  BYE sip:x SIP/2.0\n  [routes]\n  Call-ID: a\n\n  body\n]]>"
        b"</send></scenario>",
        "r.xml",
    ).steps[0]
    assert isinstance(routes, model.Send)
    assert routes.message.render(lambda token: "") == b"BYE sip:x SIP/2.0\r\nCall-ID: a\r\n\r\nbody\r\n"


BAD_CASES = [
    (b"<scenario><sned/></scenario>", 1, "unknown element <sned>"),
    (b"<scenario>\n<recv/>\n</scenario>", 2, "exactly one of response= or request="),
    (b"<scenario>\n\n<label/></scenario>", 3, "needs the attribute id="),
    (b"<scenario>\n<send><![CDATA[INVITE sip:[bogus] SIP/2.0\n\n]]></send></scenario>", 2, "[bogus]"),
    (b"<scenario>\n<recv response='200' next='nowhere'/></scenario>", 2, "names no <label"),
    (
        b"<scenario>\n<recv response='200'><action><frobnicate/></action></recv></scenario>",
        2,
        "unknown action",
    ),
    (
        b"<scenario>\n<nop><action><exec rtp_stream='synthetic,0,0,GSM/8000'/></action></nop></scenario>",
        2,
        "GSM",
    ),
    (b"<scenario>\n<recv response='200' retrans='x'/></scenario>", 2, "unknown attribute retrans="),
    (b"<scenario>\n<pause milliseconds='soon'/></scenario>", 2, "expected a number"),
    (b"<scenario>\n<pause distribution='normal' mean='5'/></scenario>", 2, "stdev="),
    (b"<scenario>\n  <send>\n</scenario>", 3, "XML error"),
    (b"<scenario></scenario>", 1, "no steps"),
    (b"<scenario>\n<pause counter='a,b'/></scenario>", 2, "counter='a,b'"),
    (b"<scenario>\n<pause counter=''/></scenario>", 2, "must be non-empty"),
    (
        b"<scenario>\n<nop><action><test assign_to='a' variable='b' compare='bigger' value='1'/>"
        b"</action></nop>"
        b"</scenario>",
        2,
        "compare='bigger'",
    ),
]


@pytest.mark.parametrize(("xml", "line", "text"), BAD_CASES)
def test_bad_scenarios_name_file_and_line(xml: bytes, line: int, text: str) -> None:
    with pytest.raises(FileProblem) as error:
        parse_scenario(xml, "bad.xml")
    message = str(error.value)
    assert message.startswith(f"bad.xml:{line}: "), message
    assert text in message
    assert "\n" not in message


def test_unreadable_file_names_flag_and_path(tmp_path: Path) -> None:
    with pytest.raises(FileProblem) as caught:
        load_scenario_file(str(tmp_path / "missing.xml"))
    assert re.search(r"-sf: cannot read scenario .*missing\.xml", describe(caught.value))


def test_rtd_true_is_the_rtd_named_1_and_counters_are_kept() -> None:
    """SIPp's get_rtd: rtd="true" is RTD 1 (ResponseTime1 in the CSV), "false" none."""
    xml = (
        b"<scenario><recv response='200' start_rtd='false' rtd='true' counter='ok'/>"
        b"<recv response='180' rtd='setup'/></scenario>"
    )
    scenario = parse_scenario(xml, "rtd.xml")
    first = scenario.steps[0]
    assert (first.rtd, first.start_rtd, first.counter) == (["1"], [], "ok")
    assert scenario.rtd_names == ["1", "setup"]


def test_which_requests_start_a_call_of_a_server_scenario() -> None:
    """The first receive takes the request, or an optional one before it; nothing else does
    (an OPTIONS ping at a UAS is out of call, as SIPp's ooc_default answers it)."""
    scenario = parse_scenario(
        """<scenario name="s">
  <recv request="NOTIFY" optional="true"/>
  <recv request="INV.*|MESSAGE" regexp_match="true"/>
  <send><![CDATA[SIP/2.0 200 OK
Content-Length: 0
]]></send>
</scenario>""",
        "s.xml",
    )
    assert scenario.starts_with("INVITE") and scenario.starts_with("MESSAGE")
    assert scenario.starts_with("NOTIFY")
    assert not scenario.starts_with("OPTIONS") and not scenario.starts_with("ACK")
    uas = parse_scenario('<scenario name="u"><recv request="INVITE"/><recv request="BYE"/></scenario>', "u")
    assert uas.starts_with("INVITE") and not uas.starts_with("BYE")
    pausing = parse_scenario(
        '<scenario name="p"><pause milliseconds="1"/><recv request="INVITE"/></scenario>', "p.xml"
    )
    assert not pausing.starts_with("INVITE")
