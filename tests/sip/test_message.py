from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gossipper.sip import message as message_module
from gossipper.sip.message import (
    MAX_HEADER_BYTES,
    SipMessage,
    SipParseError,
    find_message_end,
    generate_branch,
    generate_tag,
    make_response,
)

pytestmark = pytest.mark.usefixtures("sip_backend")  # every test, once per header indexer

SDP = (
    b"v=0\r\n"
    b"o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"m=audio 6000 RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
)
INVITE = (
    b"INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-4242-1-0\r\n"
    b"From: sipp <sip:sipp@127.0.0.1:5061>;tag=4242SIPpTag001\r\n"
    b"To: service <sip:service@127.0.0.1:5060>\r\n"
    b"Call-ID: 1-4242@127.0.0.1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: sip:sipp@127.0.0.1:5061\r\n"
    b"Max-Forwards: 70\r\n"
    b"Subject: Performance Test\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n"
    b"\r\n" + SDP
)
OK = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKproxy;received=10.0.0.1\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-4242-1-0\r\n"
    b"Record-Route: <sip:p1;lr>, <sip:p2;lr>\r\n"
    b"Record-Route: <sip:p3;lr>\r\n"
    b"From: sipp <sip:sipp@127.0.0.1:5061>;tag=4242SIPpTag001\r\n"
    b'To: "Ser;tag=no" <sip:service@127.0.0.1:5060;tag=uri-param>;tag=remote77\r\n'
    b"Call-ID: 1-4242@127.0.0.1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def test_parse_sipp_invite_with_sdp() -> None:
    message = SipMessage.parse(INVITE)
    assert message.is_request
    assert message.method == "INVITE"
    assert message.request_uri == "sip:service@127.0.0.1:5060"
    assert message.status_code is None
    assert message.reason == ""
    assert message.call_id == "1-4242@127.0.0.1"
    assert (message.cseq_number, message.cseq_method) == (1, "INVITE")
    assert message.from_tag == "4242SIPpTag001"
    assert message.to_tag is None
    assert message.top_via_branch == "z9hG4bK-4242-1-0"
    assert message.header("content-type") == "application/sdp"
    assert message.body == SDP


def test_parse_response_fields_and_repeated_headers() -> None:
    message = SipMessage.parse(OK)
    assert not message.is_request
    assert message.method == ""
    assert message.request_uri is None
    assert (message.status_code, message.reason) == (200, "OK")
    assert message.to_tag == "remote77"  # not the URI parameter or the quoted display name
    assert message.top_via_branch == "z9hG4bKproxy"
    assert message.header_values("record-route") == ["<sip:p1;lr>, <sip:p2;lr>", "<sip:p3;lr>"]
    assert message.header("Via") == "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKproxy;received=10.0.0.1"
    assert message.header("X-Missing") is None
    assert message.header_values("X-Missing") == []
    assert message.body == b""


@pytest.mark.parametrize("raw", [INVITE, OK])
def test_round_trip_of_canonical_messages(raw: bytes) -> None:
    assert bytes(SipMessage.parse(raw)) == raw


def test_compact_forms_case_and_folding() -> None:
    raw = (
        b"BYE sip:a@b SIP/2.0\r\n"
        b"v: SIP/2.0/TCP h1;branch=z9hG4bKc1\r\n"
        b"VIA: SIP/2.0/TCP h2;branch=z9hG4bKc2\r\n"
        b"f: <sip:x@y>;TAG=ft\r\n"
        b"t: <sip:a@b>;tag=tt\r\n"
        b"i: compact-call\r\n"
        b"CSEQ: 7 BYE\r\n"
        b"Subject: first part\r\n"
        b"   second part\r\n"
        b"\tthird\r\n"
        b"l: 3\r\n"
        b"\r\n"
        b"abcEXTRA"
    )
    message = SipMessage.parse(raw)
    assert message.call_id == "compact-call"
    assert message.header("CALL-ID") == message.header("i") == "compact-call"
    assert message.header_values("Via") == [
        "SIP/2.0/TCP h1;branch=z9hG4bKc1",
        "SIP/2.0/TCP h2;branch=z9hG4bKc2",
    ]
    assert message.header_values("v") == message.header_values("via")
    assert (message.from_tag, message.to_tag) == ("ft", "tt")
    assert (message.cseq_number, message.cseq_method) == (7, "BYE")
    assert message.header("s") == "first part second part third"
    assert message.body == b"abc"  # truncated to Content-Length
    assert message.headers[0] == ("v", "SIP/2.0/TCP h1;branch=z9hG4bKc1")  # spelling kept


def test_lf_only_line_endings() -> None:
    raw = INVITE.replace(b"\r\n", b"\n")
    body = SDP.replace(b"\r\n", b"\n")
    raw = raw.replace(f"Content-Length: {len(SDP)}".encode(), f"Content-Length: {len(body)}".encode())
    message = SipMessage.parse(raw)
    assert message.method == "INVITE"
    assert message.call_id == "1-4242@127.0.0.1"
    assert message.body == body


def test_no_content_length_takes_rest_and_leading_crlf_is_ignored() -> None:
    raw = b"\r\nMESSAGE sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\nhello"
    message = SipMessage.parse(raw)
    assert message.body == b"hello"
    assert message.call_id == "x"


def test_status_line_without_reason_and_absent_fields() -> None:
    message = SipMessage.parse(b"SIP/2.0 180\r\n\r\n")
    assert (message.status_code, message.reason) == (180, "")
    assert message.call_id == ""
    assert (message.cseq_number, message.cseq_method) == (0, "")
    assert message.from_tag is None and message.top_via_branch is None


def test_bad_cseq_number_reads_as_zero() -> None:
    message = SipMessage.parse(b"OPTIONS sip:a SIP/2.0\r\nCSeq: x1 OPTIONS\r\n\r\n")
    assert (message.cseq_number, message.cseq_method) == (0, "OPTIONS")


def test_twin_command_without_start_line() -> None:
    message = SipMessage(first_line="", headers=[("Call-ID", "c9"), ("X-Data", "1")])
    assert message.call_id == "c9"
    assert not message.is_request
    assert message.status_code is None
    assert bytes(message) == b"Call-ID: c9\r\nX-Data: 1\r\n\r\n"


def test_make_response_copies_vias_and_adds_tag() -> None:
    request = SipMessage.parse(INVITE.replace(b"Via:", b"Via: SIP/2.0/UDP proxy;branch=z9hG4bKp\r\nVia:", 1))
    response = make_response(request, 486, "Busy Here", to_tag="mytag")
    assert response.first_line == "SIP/2.0 486 Busy Here"
    assert response.header_values("Via") == [
        "SIP/2.0/UDP proxy;branch=z9hG4bKp",
        "SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-4242-1-0",
    ]
    assert response.header("From") == request.header("From")
    assert response.to_tag == "mytag"
    assert response.call_id == request.call_id
    assert response.header("CSeq") == "1 INVITE"
    assert response.header("Content-Length") == "0"
    assert response.body == b""
    reparsed = SipMessage.parse(bytes(response))
    assert (reparsed.status_code, reparsed.top_via_branch) == (486, "z9hG4bKp")


def test_make_response_keeps_an_existing_to_tag() -> None:
    request = SipMessage.parse(OK.replace(b"SIP/2.0 200 OK", b"BYE sip:a@b SIP/2.0"))
    response = make_response(request, 200, "OK", to_tag="other")
    assert response.to_tag == "remote77"
    assert response.header("To") == request.header("To")


def test_generated_branches_and_tags_are_unique() -> None:
    branches = {generate_branch() for _ in range(1000)}
    assert len(branches) == 1000
    assert all(branch.startswith("z9hG4bK") and len(branch) > 7 for branch in branches)
    assert len({generate_tag() for _ in range(1000)}) == 1000


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b"\r\n\r\n", "keep-alive"),
        (b"garbage that is not SIP at all", "bad request line"),
        (b"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-", "no blank line"),
        (b"INVITE sip:x SIP/2.0\r\nCall-ID: a\r\nContent-Length: 50\r\n\r\n0123456789", "Content-Length 50"),
        (b"INVITE sip:x SIP/2.0\r\nContent-Length: ten\r\n\r\n", "non-numeric Content-Length"),
        (b"INVITE sip:x SIP/2.0\r\nContent-Length: 99999999999\r\n\r\n", "too large"),
        (b"INVITE sip:x SIP/2.0\r\nno colon here\r\n\r\n", "colon"),
        (b"INVITE sip:x SIP/2.0\r\n: empty name\r\n\r\n", "colon"),
        (b"INVITE sip:x SIP/2.0\r\n folded first\r\n\r\n", "continuation"),
        (b"SIP/2.0 20 OK\r\n\r\n", "bad status line"),
        (b"SIP/2.0 2000 OK\r\n\r\n", "bad status line"),
        (b"SIP/2.0 abc OK\r\n\r\n", "bad status line"),
        (b"INVITE sip:x SIP/3.0\r\n\r\n", "bad request line"),
        (b"INVITE  sip:x SIP/2.0\r\n\r\n", "bad request line"),
        (b"INV(TE sip:x SIP/2.0\r\n\r\n", "bad request line"),
        (b"INVITE sip:x SIP/2.0\r\nFrom: \xff\xfe\r\n\r\n", "not UTF-8"),
        (b"\xff\xfe\x00" * 100, "not UTF-8"),
        (b"J" * 65000, "bad request line"),
        (b"OPTIONS sip:x SIP/2.0\r\n" + b"X: " + b"j" * MAX_HEADER_BYTES, "no blank line"),
    ],
)
def test_parse_errors_say_what_is_wrong(raw: bytes, reason: str) -> None:
    with pytest.raises(SipParseError, match=reason):
        SipMessage.parse(raw)


# ---------------------------------------------------------------------- stream framing
def test_find_message_end_over_split_chunks() -> None:
    stream = INVITE + OK
    buffer = bytearray()
    found: list[bytes] = []
    for offset in range(0, len(stream), 7):
        buffer += stream[offset : offset + 7]
        while (end := find_message_end(buffer)) is not None:
            found.append(bytes(buffer[:end]))
            del buffer[:end]
    assert found == [INVITE, OK]
    assert buffer == b""


def test_find_message_end_counts_keepalives_and_defaults_to_empty_body() -> None:
    no_length = b"ACK sip:a SIP/2.0\r\nCall-ID: z\r\n\r\n"
    assert find_message_end(b"\r\n\r\n" + no_length + b"next") == 4 + len(no_length)
    assert find_message_end(b"\r\n\r\n") is None
    assert find_message_end(INVITE[:-1]) is None
    assert find_message_end(INVITE[:40]) is None
    assert find_message_end(b"SIP/2.0 200 OK\nl: 2\n\nhi!") == len(b"SIP/2.0 200 OK\nl: 2\n\nhi")


def test_find_message_end_errors() -> None:
    with pytest.raises(SipParseError, match="non-numeric"):
        find_message_end(b"INVITE sip:a SIP/2.0\r\nContent-Length: x\r\n\r\n")
    with pytest.raises(SipParseError, match="no blank line"):
        find_message_end(b"J" * (MAX_HEADER_BYTES + 1))
    assert find_message_end(b"J" * MAX_HEADER_BYTES) is None


# ---------------------------------------------------------------------- properties
_TOKEN = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~", min_size=1
)
_VALUE = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"), exclude_characters="\x85\u2028"),
    max_size=40,
).map(lambda text: text.strip(" \t"))
_URI = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=30)
_START_LINE = st.one_of(
    st.builds(lambda method, uri: f"{method} {uri} SIP/2.0", _TOKEN.filter(lambda t: t != "SIP/2.0"), _URI),
    st.builds(
        lambda code, reason: f"SIP/2.0 {code} {reason}".rstrip(" \t") if reason else f"SIP/2.0 {code}",
        st.integers(100, 699),
        _VALUE,
    ),
)


@st.composite
def valid_messages(draw: st.DrawFn) -> bytes:
    first = draw(_START_LINE)
    names = st.one_of(_TOKEN.filter(lambda n: n.lower() not in ("l", "content-length")), st.just("Call-ID"))
    headers = draw(st.lists(st.tuples(names, _VALUE), max_size=8))
    body = draw(st.binary(max_size=200))
    lines = [first, *(f"{name}: {value}" for name, value in headers), f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@given(st.binary(max_size=2000))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_parse_only_raises_sip_parse_error_on_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(SipParseError):
        SipMessage.parse(data)


@given(valid_messages(), st.data())
def test_parse_only_raises_sip_parse_error_on_mutated_messages(raw: bytes, data: st.DataObject) -> None:
    mutated = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 5))):
        line_starts = [0] + [i + 1 for i, byte in enumerate(mutated) if byte == 10]
        position = data.draw(st.one_of(st.integers(0, len(mutated)), st.sampled_from(line_starts)))
        kind = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        byte = data.draw(st.sampled_from([0, 9, 10, 13, 32, 58, 59, 60, 62, 0x80, 0xFF, 0xC3]))
        if kind == "insert" or position >= len(mutated):
            mutated.insert(position, byte)
        elif kind == "flip":
            mutated[position] = byte
        else:
            del mutated[position]
    try:
        message = SipMessage.parse(bytes(mutated))
    except SipParseError:
        return
    fields = (message.call_id, message.cseq_number, message.cseq_method, message.from_tag, message.to_tag)
    start = (message.top_via_branch, message.method, message.request_uri, message.status_code, message.reason)
    assert len(fields) == len(start) == 5
    assert bytes(message).startswith(message.first_line.encode())


@given(valid_messages())
def test_round_trip_of_generated_messages(raw: bytes) -> None:
    message = SipMessage.parse(raw)
    assert bytes(message) == raw
    assert find_message_end(raw) == len(raw)


@given(st.lists(valid_messages(), min_size=1, max_size=5), st.integers(0, 3), st.integers(1, 200))
def test_find_message_end_splits_concatenations(messages: list[bytes], keepalives: int, chunk: int) -> None:
    stream = b"".join(b"\r\n" * keepalives + message for message in messages)
    buffer = bytearray()
    found: list[bytes] = []
    for offset in range(0, len(stream), chunk):
        buffer += stream[offset : offset + chunk]
        while (end := find_message_end(buffer)) is not None:
            found.append(bytes(buffer[:end]).lstrip(b"\r\n"))
            del buffer[:end]
    assert found == messages
    assert not buffer.strip(b"\r\n")


_header_text = st.text(st.sampled_from("ab:;= \t\r\nÄ\x00Xl"), max_size=60)


@settings(max_examples=600, deadline=None)
@given(
    value=st.text(st.sampled_from("<>;= \tTAGtagbrnchx@:É\x00"), max_size=40)
    | st.lists(
        st.sampled_from(["<sip:a@b;tag=u>", ";", " ", "tag", "TaG", "=", "v", "branch", ">", "é"])
    ).map("".join),
    param=st.sampled_from(["tag", "branch"]),
)
def test_native_and_python_header_parameters_agree(value: str, param: str) -> None:
    """A From/To tag or a Via branch: the native reading is the Python one, on any text."""
    try:
        from gossipper.sip._sipcore import header_param
    except ImportError:
        pytest.skip("the native SIP core is not built")
    assert header_param(value, param) == message_module._python_header_param(value, param)


def test_header_parameters_outside_the_name_addr() -> None:
    for read in (message_module._python_header_param, message_module._header_param):
        assert read("<sip:a@b;tag=inside>; TAG=out ;x", "tag") == "out"
        assert read("sip:a@b;tag=t1", "tag") == "t1"
        assert read("tag=first-part-is-the-uri", "tag") is None
        assert read("<sip:a@b>;tagx=1;tag=", "tag") == ""


@settings(max_examples=400, deadline=None)
@given(section=_header_text | st.binary(max_size=60))
def test_both_indexers_agree_on_any_header_section(section: str | bytes) -> None:
    """Whatever the bytes, the native indexer gives the Python one's headers and index, or
    hands the section to it (so the error text is the same)."""
    try:
        from gossipper.sip._sipcore import index_headers
    except ImportError:
        pytest.skip("the native SIP core is not built")
    data = b"SIP/2.0 200 OK\r\n" + (section.encode() if isinstance(section, str) else section)
    start, end = 16, len(data)
    native = index_headers(data, start, end)
    try:
        expected = message_module._python_index_headers(data, start, end)
    except SipParseError:
        assert native is None
        return
    assert native is None or native == expected


_message_text = st.text(
    st.sampled_from("SIP/2.0 1INVITE sip:a@b;:= \t\r\nÄ\x00\x1cXlCcontent-length"), max_size=90
)
_valid_prefix = st.sampled_from(
    [
        b"",
        b"SIP/2.0 200 OK\r\n",
        b"INVITE sip:a@b SIP/2.0\r\n",
        b"\r\nBYE sip:x SIP/2.0\n",
        b"SIP/2.0 180\r\n",
    ]
)
_header_lines = st.lists(
    st.sampled_from(
        [
            b"Call-ID: abc",
            b"i:  x@y ",
            b"CSeq: 1 INVITE",
            b"CSeq:\t7\x1cBYE",
            b"CSeq: 2 ACK\xc3\x84",
            b"Content-Length: 4",
            b"l: 0",
            b"Content-Length: 99",
            b"Content-Length: x",
            b"Content-Length:  0000000004\r",
            b" folded",
            b"To: <sip:b>;tag=1",
            b"\xff: bad",
        ]
    ),
    max_size=6,
)


def _outcome(data: bytes) -> object:
    try:
        message = SipMessage.parse(data)
    except SipParseError as error:
        return ("error", str(error))
    return (
        message.first_line, message.headers, message.body, message.is_request, message.call_id,
        message.status_code, message.method, message.cseq_method, message.cseq_number, message.to_tag,
    )  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(
    data=_message_text.map(str.encode)
    | st.binary(max_size=90)
    | st.tuples(
        _valid_prefix, _header_lines, st.sampled_from([b"\r\n\r\n", b"\n\n", b"\r\n"]), st.binary(max_size=8)
    ).map(lambda parts: parts[0] + b"\r\n".join(parts[1]) + parts[2] + parts[3])
)
def test_native_and_python_parsers_agree_on_any_message(data: bytes) -> None:
    """Whatever the bytes, the native whole-message parser gives what the Python one gives:
    the same fields, or (by handing the message over) the same error."""
    try:
        from gossipper.sip._sipcore import parse_message
    except ImportError:
        pytest.skip("the native SIP core is not built")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(message_module, "_parse_whole", None)
        patch.setattr(message_module, "_index_headers", message_module._python_index_headers)
        expected = _outcome(data)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(message_module, "_parse_whole", parse_message)
        native = _outcome(data)
    assert native == expected


def _facts_outcome(data: bytes) -> object:
    try:
        return message_module.sent_facts(data)
    except SipParseError as error:
        return ("error", str(error))


_any_message = (
    _message_text.map(str.encode)
    | st.binary(max_size=90)
    | st.tuples(
        _valid_prefix, _header_lines, st.sampled_from([b"\r\n\r\n", b"\n\n", b"\r\n"]), st.binary(max_size=8)
    ).map(lambda parts: parts[0] + b"\r\n".join(parts[1]) + parts[2] + parts[3])
)


@settings(max_examples=500, deadline=None)
@given(data=_any_message)
def test_what_is_kept_of_a_sent_message_is_what_its_whole_parse_says(data: bytes) -> None:
    """The native peek at a message sent reads the facts the Python parser reads, and hands
    over (so that the words are the same) whatever it does not accept itself."""
    try:
        from gossipper.sip._sipcore import peek_message
    except ImportError:
        pytest.skip("the native SIP core is not built")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(message_module, "_parse_whole", None)
        patch.setattr(message_module, "_peek_message", None)
        patch.setattr(message_module, "_index_headers", message_module._python_index_headers)
        expected = _facts_outcome(data)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(message_module, "_peek_message", peek_message)
        native = _facts_outcome(data)
    assert native == expected


def test_the_native_peek_reads_a_rendered_response_itself() -> None:
    try:
        from gossipper.sip._sipcore import peek_message
    except ImportError:
        pytest.skip("the native SIP core is not built")
    response = b"SIP/2.0 200 OK\r\nt: <sip:b@h>;tag=9\r\nCSeq: 7 INVITE\r\nl: 2\r\n\r\nab"
    assert peek_message(response) == (False, "", 200, "INVITE", "<sip:b@h>;tag=9")
    assert peek_message(b"BYE sip:x SIP/2.0\r\nCSeq: 8 BYE\r\n\r\n") == (True, "BYE", None, "BYE", None)


def test_the_native_parser_answers_a_real_message_itself() -> None:
    try:
        from gossipper.sip._sipcore import parse_message
    except ImportError:
        pytest.skip("the native SIP core is not built")
    parsed = parse_message(INVITE)
    assert parsed is not None
    assert parsed[3] is True and parsed[6] == "INVITE" and parsed[7] == "INVITE"


def test_the_native_indexer_answers_a_real_message_itself() -> None:
    try:
        from gossipper.sip._sipcore import index_headers
    except ImportError:
        pytest.skip("the native SIP core is not built")
    end = INVITE.index(b"\r\n\r\n")
    start = INVITE.index(b"\n") + 1
    result = index_headers(INVITE, start, end)
    assert result is not None
    headers, index = result
    assert headers[0] == ("Via", "SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-4242-1-0")
    assert index["via"] == (headers[0][1],) and "content-length" in index
    folded = b"X\r\ni: abc\r\nCALL-ID :  x \r\n\t y\r\nL: 0"
    assert index_headers(folded, 3, len(folded)) == (
        [("i", "abc"), ("CALL-ID", "x y"), ("L", "0")],
        {"call-id": ("abc", "x y"), "content-length": ("0",)},
    )


def test_a_natively_parsed_message_gives_the_garbage_collector_nothing_to_scan() -> None:
    """A received message's index and header pairs hold only str: tracked, they made most of
    the young generation at thousands of calls a second (the collector was 18% of a UAS).
    The pairs are built only when asked for, from the section parse_message points at."""
    import gc

    try:
        from gossipper.sip._sipcore import index_headers, parse_message
    except ImportError:
        pytest.skip("the native SIP core is not built")
    parsed = parse_message(INVITE)
    assert parsed is not None
    index, start, end = parsed[1], parsed[8], parsed[9]
    assert not gc.is_tracked(index) and not any(gc.is_tracked(values) for values in index.values())
    pairs = index_headers(INVITE, start, end)
    assert pairs is not None and pairs[1] == index
    headers = pairs[0]
    assert headers and not any(gc.is_tracked(pair) for pair in headers)
    assert index["via"] == (headers[0][1],)
    message = SipMessage.parse(INVITE)
    assert message.headers == headers and bytes(message).startswith(INVITE.split(b"\r\n", 1)[0])


@pytest.mark.usefixtures("sip_backend")
def test_a_compacted_message_reads_its_headers_again_from_its_bytes() -> None:
    """A waiting call's messages keep their bytes only; anything that asks still gets the
    same answers (folded and compact-form headers included)."""
    raw = INVITE.replace(
        b"Subject: Performance Test", b"Subject: Performance\r\n Test\r\nv: SIP/2.0/UDP h;branch=z9hG4bKx"
    )
    message = SipMessage.parse(raw)
    before = (message.headers.copy(), message.header_values("Via"), message.header("Subject"), bytes(message))
    message.compact()
    after = (message.headers, message.header_values("Via"), message.header("Subject"), bytes(message))
    assert after == before and message.header("subject") == "Performance Test"
    message.compact()
    assert message.header("Call-ID") == message.call_id
    built = SipMessage("OPTIONS sip:x SIP/2.0", [("Call-ID", "c")])
    built.compact()  # made here, not parsed: nothing to read again, so nothing is let go
    assert built.headers == [("Call-ID", "c")]
