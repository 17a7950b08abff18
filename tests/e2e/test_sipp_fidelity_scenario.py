"""The same scenario under Debian's SIPp and under gossipper gives the same messages.

A scripted peer on loopback answers each request with a crafted 200 and records what
arrives; each scenario runs once as `sipp -sf` and once as `gossipper sipp -sf`, and the
two recordings must match: for message text (\\xNN bytes, only the CDATA is the message)
byte for byte, for ereg search_in="hdr" in the values the scenario extracted and sent back.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from gossipper.cli.ports import LOOPBACK, free_port
from gossipper.sip.message import SipMessage
from tests.e2e.processes import SIPP, gossipper_command, needs_sipp

HEAD = '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="fidelity">\n'


def _request(cseq: int, extra: str = "") -> str:
    return (
        "<send><![CDATA[\n"
        "OPTIONS sip:peer@[remote_ip]:[remote_port] SIP/2.0\n"
        "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n"
        "From: <sip:me@example.com>;tag=1\n"
        "To: <sip:peer@example.com>\n"
        "Call-ID: [call_id]\n"
        f"CSeq: {cseq} OPTIONS\n"
        f"{extra}"
        "Content-Length: 0\n\n]]></send>\n"
    )


def _ok(request: SipMessage, before: str = "", after: str = "") -> bytes:
    """A 200 to the request: `before`, its Via, From, To (tagged), Call-ID and CSeq, `after`."""
    lines = [f"Via: {via}" for via in request.header_values("Via")]
    lines += [f"From: {request.header('From')}", f"To: {request.header('To')};tag=peer"]
    lines += [f"Call-ID: {request.call_id}", f"CSeq: {request.header('CSeq')}"]
    head = "SIP/2.0 200 OK\r\n" + before + "\r\n".join(lines) + "\r\n" + after
    return (head + "Content-Length: 0\r\n\r\n").encode()


def _play(command: list[str], peer: socket.socket, answer: Callable[[SipMessage, int], bytes]) -> list[bytes]:
    """Run the UAC against the peer; every datagram it sends, each answered with `answer`."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    received: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while process.poll() is None and time.monotonic() < deadline:
            try:
                data, source = peer.recvfrom(65535)
            except TimeoutError:
                continue
            received.append(data)
            readable = SipMessage.parse(data.decode("latin-1").encode())  # raw bytes may be no UTF-8
            peer.sendto(answer(readable, len(received)), source)
        _out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    return received


def _both(
    scenario: str, tmp_path: Path, answer: Callable[[SipMessage, int], bytes]
) -> tuple[list[bytes], list[bytes]]:
    """What the peer received from SIPp and from gossipper running `scenario` once each."""
    path = tmp_path / "scenario.xml"
    path.write_text(scenario, encoding="latin-1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind((LOOPBACK, 0))
        peer.settimeout(0.2)
        common = ["-sf", str(path), f"{LOOPBACK}:{peer.getsockname()[1]}", "-i", LOOPBACK, "-m", "1"]
        assert SIPP is not None
        sipp = _play([SIPP, *common, "-p", str(free_port()), "-nostdin"], peer, answer)
        ours = _play(gossipper_command(*common, "-p", str(free_port()), "-nostdin"), peer, answer)
    return sipp, ours


@needs_sipp
def test_message_text_goes_out_byte_for_byte_as_from_sipp(tmp_path: Path) -> None:
    """\\xNN escapes are bytes (a raw 0xe9, a [ that opens no keyword, \\x4G as SIPp's scan reads
    it); text around the CDATA section and a second section add nothing."""
    scenario = (
        HEAD + "<send>stray text <![CDATA[\n"
        "  OPTIONS sip:peer@127.0.0.1 SIP/2.0\n"
        "  Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-fixed\n"
        "  From: <sip:me@example.com>;tag=1\n"
        "  To: <sip:peer@example.com>\n"
        "  Call-ID: [call_id]\n"
        "  CSeq: 1 OPTIONS\n"
        "  X-Hex: \\x41\\x5Bnot_a_keyword]\\xe9\\x4G|\n"
        "  Content-Length: [len]\n"
        "\n"
        "  body\\x21\n"
        "]]>\n   trailing text\n<![CDATA[X-Second: never]]></send>\n"
        '<recv response="200"/>\n</scenario>\n'
    )
    sipp, ours = _both(scenario, tmp_path, lambda request, _n: _ok(request))
    assert len(sipp) == len(ours) == 1
    assert b"X-Hex: A[not_a_keyword]\xe9\x04|\r\n" in sipp[0]

    def without_call_id(data: bytes) -> bytes:  # the one line each run fills with its own value
        return re.sub(rb"\r\nCall-ID: [^\r]*\r\n", b"\r\nCall-ID: *\r\n", data)

    assert without_call_id(ours[0]).split(b"\r\n") == without_call_id(sipp[0]).split(b"\r\n")


@needs_sipp
def test_ereg_on_a_header_extracts_what_sipp_extracts(tmp_path: Path) -> None:
    """header="From" finds "From" anywhere (here inside Subject first) and leaves the rest of that
    line, so ": *(.*)" matches; start_line keeps to line starts, occurrence picks the second Via,
    case_indep matches the header name in any case."""
    actions = (
        '<recv response="200"><action>\n'
        '<ereg regexp=": *(.*)" search_in="hdr" header="From" assign_to="_,anywhere"/>\n'
        '<ereg regexp=": *(.*)" search_in="hdr" header="From" start_line="true" assign_to="_,from"/>\n'
        '<ereg regexp="branch=(.*)" search_in="hdr" header="Via:" occurrence="2" assign_to="_,second"/>\n'
        '<ereg regexp="^ *(.*)$" search_in="hdr" header="x-case:" case_indep="true" assign_to="_,case"/>\n'
        "</action></recv>\n"
    )
    echo = "X-Anywhere: [$anywhere]\nX-From: [$from]\nX-Second: [$second]\nX-Case: [$case]\n"
    scenario = HEAD + _request(1) + actions + _request(2, echo) + '<recv response="200"/>\n</scenario>\n'

    def answer(request: SipMessage, count: int) -> bytes:
        if count > 1:
            return _ok(request)
        return _ok(
            request,
            before="Subject: From: the lab\r\n",
            after="Via: SIP/2.0/UDP 10.9.9.9;branch=z9hG4bK-peer2\r\nX-CASE: Mixed\r\n",
        )

    sipp, ours = _both(scenario, tmp_path, answer)
    assert len(sipp) == len(ours) == 2

    def echoed(data: bytes) -> dict[str, str | None]:
        message = SipMessage.parse(data)
        return {name: message.header(name) for name in ("X-Anywhere", "X-From", "X-Second", "X-Case")}

    assert echoed(sipp[1]) == {
        "X-Anywhere": "the lab",
        "X-From": "<sip:me@example.com>;tag=1",
        "X-Second": "z9hG4bK-peer2",
        "X-Case": "Mixed",
    }
    assert echoed(ours[1]) == echoed(sipp[1])
