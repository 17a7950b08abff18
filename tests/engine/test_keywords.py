import pytest

from gossipper.cli.compile import run_settings
from gossipper.cli.options import parse_args
from gossipper.engine.context import CallContext, RunContext
from gossipper.engine.injection import Injection
from gossipper.engine.keywords import resolve
from gossipper.sip.message import SipMessage


def _call(tmp_path: object = None, *args: str, inject: list[str] | None = None) -> CallContext:
    settings = run_settings(parse_args(["-mp", "10000", "-s", "bob", *args]))
    run = RunContext(
        keywords=settings.keywords,
        local_ip="127.0.0.1",
        local_port=5070,
        transport_name="UDP",
        media_ip="127.0.0.1",
        media_base_port=settings.media.base_port,
        injection=Injection(inject or []),
        pid=4242,
        media_port_span=100,
    )
    return CallContext(run=run, number=3, call_id="3-4242@127.0.0.1", remote=("127.0.0.2", 5060), cseq=7)


def test_simple_keywords_and_offsets() -> None:
    call = _call()
    assert resolve(call, "service") == "bob"
    assert resolve(call, "call_number") == "3"
    assert resolve(call, "cseq+1") == "8"
    assert resolve(call, "media_port") == "10004"
    assert resolve(call, "media_port+1") == "10005"
    assert resolve(call, "local_port") == "5070"
    assert resolve(call, "remote_ip") == "127.0.0.2"
    assert resolve(call, "local_ip_type") == "4"
    assert resolve(call, "transport") == "UDP"
    assert resolve(call, "pid") == "4242"


def test_branch_follows_the_message_index() -> None:
    call = _call()
    call.send_index = 5
    assert resolve(call, "branch") == "z9hG4bK-4242-3-4"
    assert resolve(call, "branch-2") == "z9hG4bK-4242-3-2"


def test_media_ports_wrap_inside_the_span() -> None:
    call = _call()
    call.number = 101
    assert resolve(call, "media_port") == "10000"


def test_last_headers_and_variables() -> None:
    call = _call()
    call.last_message = SipMessage.parse(
        b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h1;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP h2\r\n"
        b"From: <sip:x@y>;tag=9\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    assert resolve(call, "last_Via:") == "Via: SIP/2.0/UDP h1;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP h2"
    assert resolve(call, "last_From:value") == "<sip:x@y>;tag=9"
    assert resolve(call, "last_Missing:") == ""
    assert resolve(call, "last_Via:value") == "SIP/2.0/UDP h1;branch=z9hG4bK1, SIP/2.0/UDP h2"
    assert resolve(call, "last_call-id:") == "Call-ID: c1"  # SIPp spells Call-ID its own way
    assert resolve(call, "last_cseq:") == "cseq: 1 INVITE"  # any other name as the scenario does
    call.variables["v"] = 3.0
    call.variables["s"] = "text"
    assert resolve(call, "$v") == "3.000000"
    assert resolve(call, "$s") == "text"
    assert resolve(call, "$unset") == ""
    call.variables["zero"] = 0.0
    assert resolve(call, "$zero") == ""  # call.cpp E_Message_Variable: isSet() is false for 0.0


def test_last_message_and_last_cseq_number_as_sipp() -> None:
    """message.cpp: [last_message] is the received text as it came, [last_cseq_number] its
    CSeq number (with offsets, 0 when none came)."""
    call = _call()
    assert (resolve(call, "last_message"), resolve(call, "last_cseq_number")) == ("", "0")
    raw = b"BYE sip:a@b SIP/2.0\r\nCall-ID:c1\r\nCSeq:  41 BYE\r\nContent-Length: 0\r\n\r\n"
    call.last_message = SipMessage.parse(raw)
    assert resolve(call, "last_message") == raw.decode()
    assert (resolve(call, "last_cseq_number"), resolve(call, "last_cseq_number+1")) == ("41", "42")


def test_fill_repeats_its_text_to_the_variables_length() -> None:
    """call.cpp E_Message_Fill: text= (default X) repeated, the length a double variable's."""
    call = _call()
    call.variables["n"] = 5.0
    assert resolve(call, "fill variable=n") == "XXXXX"
    assert resolve(call, 'fill text="ab" variable=n') == "ababa"
    call.variables["n"] = "7"
    assert resolve(call, "fill variable=n") == ""


def test_key_option_defines_keywords() -> None:
    call = _call(None, "-key", "custom", "value1")
    assert resolve(call, "custom") == "value1"


def test_injection_fields(tmp_path: pytest.TempPathFactory) -> None:
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "users.csv"
    path.write_text("SEQUENTIAL\n// comment\nalice;1001\nbob;1002\n")
    call = _call(None, inject=[str(path)])
    call.injection_lines = call.run.injection.pick_lines(1)
    assert resolve(call, "field0") == "alice"
    assert resolve(call, "field1") == "1001"
    assert resolve(call, "field0 line=1") == "bob"
    assert call.run.injection.pick_lines(2) == {str(path): 1}


def test_unknown_keyword_raises() -> None:
    with pytest.raises(KeyError):
        resolve(_call(), "no_such_keyword")
