"""Built-in scenarios: each loads, renders valid SIP, and -sd prints what -sn runs."""

from __future__ import annotations

import re

import pytest

from gossipper.cli.errors import describe
from gossipper.errors import InvalidValue
from gossipper.scenario import model
from gossipper.scenario.builtins import BUILTIN_NAMES, dump_builtin, load_builtin
from gossipper.scenario.loader import parse_scenario
from gossipper.sip.message import SipMessage

SAMPLE_VALUES = {
    "service": "service",
    "remote_ip": "127.0.0.1",
    "remote_port": "5060",
    "local_ip": "127.0.0.1",
    "local_port": "5061",
    "transport": "UDP",
    "branch": "z9hG4bK-1",
    "call_id": "1-1@127.0.0.1",
    "call_number": "1",
    "cseq": "1",
    "pid": "42",
    "media_ip": "127.0.0.1",
    "media_port": "6000",
    "local_ip_type": "4",
    "media_ip_type": "4",
    "peer_tag_param": ";tag=x",
}


def _value(token: str) -> str:
    if token.startswith("last_"):
        name = token[5:].rstrip(":")
        return f"{name}: 1 X" if name == "CSeq" else f"{name}: v"
    if token.startswith("$"):
        return "sip:peer@127.0.0.1:5060"
    return SAMPLE_VALUES.get(token, "")


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_builtin_loads_and_renders_parseable_sip(name: str) -> None:
    scenario = load_builtin(name)
    assert scenario.name == name
    assert parse_scenario(dump_builtin(name).encode(), name).steps.__len__() == len(scenario.steps)
    for step in scenario.steps:
        if isinstance(step, model.Send):
            message = SipMessage.parse(step.message.render(_value))
            assert message.is_request == (step.message.method is not None)


def test_invite_media_scale_holds_30_seconds_and_streams() -> None:
    scenario = load_builtin("invite_media_scale")
    pauses = [step for step in scenario.steps if isinstance(step, model.Pause)]
    assert [pause.default_ms for pause in pauses] == [30_000]
    actions = [a for step in scenario.steps for a in step.actions if isinstance(a, model.Exec)]
    assert [a.rtp.kind for a in actions if a.rtp] == ["synthetic", "stop"]


def test_client_and_server_sides() -> None:
    assert load_builtin("uac").is_uac and not load_builtin("uas").is_uac
    assert load_builtin("3pcc-C-A").uses_3pcc and load_builtin("3pcc-C-B").uses_3pcc


def test_unknown_builtin_names_the_flag() -> None:
    with pytest.raises(InvalidValue) as caught:
        load_builtin("nope")
    assert re.search(r"^-sn: unknown built-in scenario 'nope'", describe(caught.value))
    with pytest.raises(InvalidValue) as caught:
        dump_builtin("nope")
    assert re.search(r"^-sd: ", describe(caught.value))


def test_dump_leaves_out_the_srtp_line_unless_srtp_runs() -> None:
    assert "[crypto_attribute]" in dump_builtin("uac")
    assert "[crypto_attribute]" not in dump_builtin("uac", srtp=False)
    assert len(parse_scenario(dump_builtin("uas", srtp=False).encode(), "uas").steps) == len(
        load_builtin("uas").steps
    )
