"""A live gossipper UAS under hostile input, over real sockets, while SIPp's uac runs calls.

- a torture corpus written from the descriptions in RFC 4475 (our own bytes, one per kind
  of trouble that document describes): every datagram is counted exactly once (malformed,
  out of call, dead call or in a call) and the UAS keeps answering;
- byte-level mutations of valid messages (flips, cuts, insertions, duplications) sent
  during a SIPp uac run: every legitimate call succeeds and every datagram is counted;
  the same over TCP, one mutated message per connection.

Bounded for CI; GOSSIPPER_FUZZ_LONG=1 runs 20,000 mutations instead of 600.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
from pathlib import Path

from gossipper.cli.ports import LOOPBACK
from tests.e2e.processes import SIPP, GossipperUas, last_sipp_stat_row, needs_sipp, read_json

LONG = os.environ.get("GOSSIPPER_FUZZ_LONG") == "1"
MUTATIONS = 20_000 if LONG else 600


def _request(
    method: str, call_id: str, extra: str = "", uri: str = "sip:fuzz@127.0.0.1", body: str = ""
) -> bytes:
    return (
        f"{method} {uri} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-fuzz\r\n"
        "From: <sip:fuzzer@127.0.0.1>;tag=fz\r\n"
        "To: <sip:fuzz@127.0.0.1>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: 1 {method}\r\n"
        "Max-Forwards: 70\r\n"
        f"{extra}"
        f"Content-Length: {len(body.encode())}\r\n\r\n{body}"
    ).encode()


_TAIL = b"Call-ID\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"  # Call-ID filled in below
# One entry per kind of trouble RFC 4475 describes; the bytes are ours.
TORTURE: dict[str, bytes] = {
    "whitespace and folding": (
        b"INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\r\n"
        b"TO :\r\n sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\r\n"
        b'from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8\r\n'
        b"MaX-fOrWaRdS: 0068\r\nCall-ID: wsinv.ndaksdj@192.0.2.1\r\nContent-Length   : 0\r\n"
        b"cseq: 0009\r\n  INVITE\r\nVia  : SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw\r\ns :\r\n"
        b"NewFangledHeader:   newfangled value\r\n continued newfangled value\r\n\r\n"
    ),
    "unusual method token": _request("!interesting-Method0123456789_*+`.%indeed'~", "intmeth@x"),
    "escaped URI": _request("OPTIONS", "esc01@x", uri="sip:sips%3Auser%40example.com@example.net"),
    "long values": _request(
        "OPTIONS",
        "longreq@x",
        extra="X-Long: " + "x" * 20000 + "\r\n" + "Via: SIP/2.0/UDP h;branch=z9hG4bKv\r\n" * 60,
    ),
    "two messages in one datagram": _request("OPTIONS", "dblreq@x") + _request("OPTIONS", "dblreq2@x"),
    "semicolons in URI": _request("OPTIONS", "semiuri@x", uri="sip:user;par=u%40example.net@example.com"),
    "unknown transport": _request(
        "OPTIONS", "transports@x", extra="Via: SIP/2.0/ZZZ 192.0.2.9;branch=z9hG4bKz\r\n"
    ),
    "multipart body": _request(
        "OPTIONS",
        "mpart@x",
        extra="Content-Type: multipart/mixed;boundary=xyz\r\n",
        body="--xyz\r\nContent-Type: text/plain\r\n\r\nhi\r\n--xyz--\r\n",
    ),
    "UTF-8 reason": b"SIP/2.0 200 \xe2\x80\x9cOK\xe2\x80\x9d\r\n"
    + _TAIL.replace(b"ID", b"ID: unreason@x", 1),
    "no reason phrase": b"SIP/2.0 100 \r\nCall-ID: noreason@x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
    "no Call-ID": b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
    "Content-Length past the body": _request("OPTIONS", "clerr@x").replace(
        b"Content-Length: 0", b"Content-Length: 9999"
    ),
    "negative Content-Length": _request("OPTIONS", "ncl@x").replace(
        b"Content-Length: 0", b"Content-Length: -999"
    ),
    "huge CSeq": _request("OPTIONS", "scalar02@x").replace(b"CSeq: 1 ", b"CSeq: 36893488147419103232 "),
    "unbalanced quotes": _request(
        "OPTIONS", "quotbal@x", extra='Contact: "Mr J. User <sip:j.user@example.com>\r\n'
    ),
    "URI in angle brackets": b"INVITE <sip:user@example.com> SIP/2.0\r\n"
    + _TAIL.replace(b"ID", b"ID: ltgt@x", 1),
    "no space before <": _request("OPTIONS", "lwsdisp@x").replace(b"From: <", b"From: caller<"),
    "Via without branch": _request("OPTIONS", "badbranch@x").replace(b";branch=z9hG4bK-fuzz", b""),
    "missing headers": b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nCall-ID: insuf@x\r\n\r\n",
    "unknown scheme": _request("OPTIONS", "unkscm@x", uri="nobodyKnowsThisScheme:totallyopaquecontent"),
    "novel scheme": _request("OPTIONS", "novelsc@x", uri="soap.beep://192.0.2.103:3002"),
    "bad version": _request("OPTIONS", "badvers@x").replace(b"SIP/2.0\r\nVia", b"SIP/7.0\r\nVia", 1),
    "CSeq method mismatch": _request("OPTIONS", "mismatch01@x").replace(
        b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE"
    ),
    "status code too big": b"SIP/2.0 4294967301 better not break the receiver\r\nCall-ID: bigcode@x\r\n\r\n",
    "NUL bytes": _request("OPTIONS", "zeroT@x", extra="X-Nul: a\x00b\r\n"),
    "not UTF-8": _request("OPTIONS", "nonutf8@x").replace(b"tag=fz", b"tag=\xff\xfe"),
    "binary junk": bytes(random.Random(4475).getrandbits(8) for _ in range(700)),
    "almost all of a datagram": _request("OPTIONS", "big@x", extra="X-Pad: " + "p" * 60000 + "\r\n"),
    "CR line ends": _request("OPTIONS", "regescrt@x").replace(b"\r\n", b"\r"),
    "bare LF line ends": _request("OPTIONS", "lf@x").replace(b"\r\n", b"\n"),
    "colon-less header": _request("OPTIONS", "nocolon@x", extra="Just some text\r\n"),
    "empty header name": _request("OPTIONS", "noname@x", extra=": value\r\n"),
    "request line only": b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\n",
    "response to nobody": b"SIP/2.0 180 Ringing\r\n" + _TAIL.replace(b"ID", b"ID: nobody@x", 1),
    "INVITE with a bad SDP": _request(
        "INVITE",
        "badsdp@x",
        extra="Content-Type: application/sdp\r\n",
        body="v=9\r\nm=audio port RTP/AVP x\r\n",
    ),
}

# A server scenario that INVITE does not start: every torture INVITE is out of call.
MESSAGE_UAS = """<?xml version="1.0"?>
<scenario name="message uas">
  <recv request="MESSAGE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0
]]></send>
</scenario>
"""


def _counted(summary: dict[str, object]) -> int:
    keys = ("malformed_messages", "out_of_call_messages", "dead_call_messages", "messages_received")
    return sum(int(str(summary[key])) for key in keys)


def _mutate(data: bytes, rng: random.Random) -> bytes:
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        kind = rng.randrange(5)
        at = rng.randrange(len(buffer)) if buffer else 0
        if kind == 0 and buffer:  # flip a byte
            buffer[at] = rng.getrandbits(8)
        elif kind == 1:  # insert bytes, often structural ones
            buffer[at:at] = rng.choice([b"\r\n", b":", b" ", b"\x00", b";", bytes([rng.getrandbits(8)])])
        elif kind == 2 and buffer:  # cut a piece
            del buffer[at : at + rng.randint(1, 40)]
        elif kind == 3 and buffer:  # repeat a piece
            piece = buffer[at : at + rng.randint(1, 60)]
            buffer[at:at] = piece * rng.randint(1, 20)
        else:  # cut the tail
            del buffer[at:]
    return bytes(buffer)


def _bases(index: int) -> list[bytes]:
    call_id = f"fuzz-{index}@fuzzer"
    return [
        _request("OPTIONS", call_id),
        _request("BYE", call_id),
        _request("ACK", call_id),
        _request("NOTIFY", call_id, extra="Event: dialog\r\n"),
        b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-x\r\n"
        + f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n".encode(),
    ]


def _mutations(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [_mutate(rng.choice(_bases(index)), rng) for index in range(count)]


def _ping_answered(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as pinger:
        pinger.bind((LOOPBACK, 0))
        pinger.settimeout(5)
        pinger.sendto(_request("OPTIONS", "alive@fuzzer"), (LOOPBACK, port))
        while True:
            answer = pinger.recv(65535)
            if b"alive@fuzzer" in answer:
                return answer.startswith(b"SIP/2.0 200 ")


def _send_paced(items: list[bytes], port: int) -> None:
    """One datagram each, paced so no socket buffer overflows (a drop would go uncounted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sender.bind((LOOPBACK, 0))
        for index, data in enumerate(items):
            sender.sendto(data, (LOOPBACK, port))
            if index % 50 == 49:
                time.sleep(0.01)


def test_the_torture_corpus_is_counted_datagram_by_datagram(
    tmp_path: Path, gossipper_uas: GossipperUas
) -> None:
    scenario = tmp_path / "message_uas.xml"
    scenario.write_text(MESSAGE_UAS)
    summary = tmp_path / "summary.json"
    uas = gossipper_uas("-sf", str(scenario), "-i", LOOPBACK, "-summary_json", str(summary), "-trace_err")
    _send_paced(list(TORTURE.values()), uas.port)
    assert _ping_answered(uas.port)
    uas.process.send_signal(2)
    uas.wait(timeout=30)
    data = read_json(summary)
    assert _counted(data) == len(TORTURE) + 1  # and the liveness ping
    assert int(str(data["malformed_messages"])) >= 10


@needs_sipp
def test_mutated_messages_during_sipp_calls_over_udp(tmp_path: Path, gossipper_uas: GossipperUas) -> None:
    """SIPp's uac makes 100 calls through the UAS while mutated messages arrive: every call
    succeeds, and the UAS counts every datagram it was sent, SIPp's and the fuzzer's."""
    assert SIPP is not None
    calls = 100
    summary = tmp_path / "summary.json"
    uas = gossipper_uas(
        "-sn", "uas", "-i", LOOPBACK, "-m", str(calls), "-summary_json", str(summary), "-trace_err"
    )
    stat = tmp_path / "uac.csv"
    uac = subprocess.Popen(
        [SIPP, "-sn", "uac", uas.address, "-i", LOOPBACK, "-m", str(calls), "-r", "50", "-nostdin",
         "-timeout", "120", "-trace_stat", "-stf", str(stat)],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    mutated = _mutations(MUTATIONS, seed=4475)
    _send_paced(mutated, uas.port)
    assert uac.wait(timeout=180) == 0
    row = last_sipp_stat_row(stat)
    assert row["SuccessfulCall(C)"] == str(calls) and row["FailedCall(C)"] == "0"
    assert uas.wait(timeout=60) == 0
    data = read_json(summary)
    sipp_sent = 3 * calls + int(row["Retransmissions(C)"])  # INVITE, ACK, BYE, and any again
    assert _counted(data) == sipp_sent + len(mutated)
    assert (data["success_calls"], data["failed_calls"]) == (calls, 0)


@needs_sipp
def test_mutated_messages_during_sipp_calls_over_tcp(tmp_path: Path, gossipper_uas: GossipperUas) -> None:
    """The same over TCP, each mutated message on a connection of its own (a mangled
    Content-Length may swallow what follows it on that connection, and no more)."""
    assert SIPP is not None
    calls = 50
    summary = tmp_path / "summary.json"
    uas = gossipper_uas(
        "-sn", "uas", "-t", "t1", "-i", LOOPBACK, "-m", str(calls), "-summary_json", str(summary),
        "-trace_err",
        kind=socket.SOCK_STREAM,
    )  # fmt: skip
    stat = tmp_path / "uac.csv"
    uac = subprocess.Popen(
        [SIPP, "-sn", "uac", uas.address, "-t", "t1", "-i", LOOPBACK, "-m", str(calls), "-r", "25",
         "-nostdin",
         "-timeout", "120", "-trace_stat", "-stf", str(stat)],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for data in _mutations(MUTATIONS // 3, seed=5475):
        with socket.create_connection((LOOPBACK, uas.port), timeout=5) as connection:
            connection.sendall(data)
    assert uac.wait(timeout=180) == 0
    row = last_sipp_stat_row(stat)
    assert row["SuccessfulCall(C)"] == str(calls) and row["FailedCall(C)"] == "0"
    assert uas.wait(timeout=60) == 0
    data = read_json(summary)
    assert (data["success_calls"], data["failed_calls"]) == (calls, 0)
    assert int(str(data["malformed_messages"])) + int(str(data["out_of_call_messages"])) > 0
