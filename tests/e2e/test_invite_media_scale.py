"""invite_media_scale end to end: SIP calls that each drive a scale-engine RTP stream.

Runs inside a private network namespace so the kernel's UDP counters hold only this
test's traffic, and a packet sniffer on lo tells which port each RTP packet left from
(the peer itself holds the port its SDP names).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gossipper.cli.ports import LOOPBACK, free_port, free_ports_below_ephemeral
from gossipper.scenario.builtins import dump_builtin
from tests.e2e.netns import in_namespace, needs_netns, network_namespace, udp_counters
from tests.e2e.processes import (
    SIPP,
    needs_sipp,
    read_json,
    run_gossipper,
    start_gossipper,
    stop,
    wait_bound,
)

CALLS = 200
HOLD_MS = 3000
SIP_PORT = 5060
PEER_MEDIA_PORT = 40000
OUR_MEDIA_BASE = 30000
PACKETS_PER_CALL = HOLD_MS // 20


def _wait_ready(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"


def _wait_bound_in(namespace: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listing = subprocess.run(
            in_namespace(namespace, ["ss", "-Huan", f"sport = :{port}"]), capture_output=True, text=True
        ).stdout
        if listing.strip():
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing bound port {port} in {namespace}")


@needs_sipp
@needs_netns
def test_invite_media_scale_against_sipp_uas(tmp_path: Path) -> None:
    assert SIPP is not None
    with network_namespace("ims") as namespace:
        sniffer_out = tmp_path / "sniffer.json"
        sniffer = subprocess.Popen(
            in_namespace(
                namespace, [sys.executable, "-m", "tests.e2e.sniffer", str(sniffer_out), str(PEER_MEDIA_PORT)]
            ),
            stdout=subprocess.PIPE,
            text=True,
        )
        sipp = subprocess.Popen(
            in_namespace(
                namespace,
                [
                    SIPP,
                    "-sn",
                    "uas",
                    "-i",
                    LOOPBACK,
                    "-p",
                    str(SIP_PORT),
                    "-mp",
                    str(PEER_MEDIA_PORT),
                    "-m",
                    str(CALLS),
                    "-nostdin",
                ],
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        try:
            _wait_ready(sniffer)
            _wait_bound_in(namespace, SIP_PORT)
            before = udp_counters(namespace)
            summary = tmp_path / "summary.json"
            result = subprocess.run(
                in_namespace(
                    namespace,
                    [
                        sys.executable,
                        "-m",
                        "gossipper",
                        "sipp",
                        "-sn",
                        "invite_media_scale",
                        f"{LOOPBACK}:{SIP_PORT}",
                        "-i",
                        LOOPBACK,
                        "-m",
                        str(CALLS),
                        "-r",
                        "100",
                        "-d",
                        str(HOLD_MS),
                        "-mp",
                        str(OUR_MEDIA_BASE),
                        "-bg",
                        "-nostdin",
                        "-summary_json",
                        str(summary),
                    ],
                ),
                capture_output=True,
                text=True,
                timeout=120,
            )
            after = udp_counters(namespace)
            assert result.returncode == 0, result.stderr
            assert sipp.wait(timeout=30) == 0
        finally:
            for process in (sipp, sniffer):
                if process.poll() is None:
                    process.terminate()
                process.wait(timeout=15)
        seen = json.loads(sniffer_out.read_text())
    data = read_json(summary)
    assert data["success_calls"] == CALLS and data["failed_calls"] == 0
    media = data["media"]
    assert isinstance(media, dict)
    sent = int(media["rtp_packets_sent"])
    expected = CALLS * (PACKETS_PER_CALL + 1)  # a stream held 3 s sends at 0, 20, ..., 3000 ms
    assert abs(sent - expected) <= expected * 0.005, (sent, expected)
    assert media["streams_started"] == CALLS
    assert not media["send_errors"]
    # Every call's stream came from its own [media_port] and reached the peer's SDP port.
    per_source = {int(key.split(">")[0]): count for key, count in seen["per_source"].items()}
    assert set(per_source) == {OUR_MEDIA_BASE + 2 * index for index in range(CALLS)}
    assert all(abs(count - PACKETS_PER_CALL) <= 2 for count in per_source.values()), per_source
    assert seen["bad_rtp"] == 0
    assert seen["payload_sizes"] == {"172": sent}
    rtp_seen = sum(per_source.values())
    assert rtp_seen == sent
    # The kernel agrees: every datagram sent in the namespace is SIP (both sides) or our RTP.
    sip_datagrams = seen["udp_total"] - rtp_seen
    assert after["OutDatagrams"] - before["OutDatagrams"] - sip_datagrams == sent


# ---------------------------------------------------------------- against gossipper's own UAS
UAS_TEMPLATE = """<?xml version="1.0"?>
<scenario name="uas_custom">
  <recv request="INVITE"/>
  <send retrans="500"><![CDATA[
    SIP/2.0 200 OK
    [last_Via:]
    [last_From:]
    [last_To:];tag=[call_number]uas
    [last_Call-ID:]
    [last_CSeq:]
    Contact: <sip:[local_ip]:[local_port]>
    Content-Type: application/sdp
    Content-Length: [len]

    v=0
    o=- 1 1 IN IP4 [local_ip]
    s=-
    {connection}
    t=0 0
    {media}
  ]]></send>
  <recv request="ACK"/>
  {tail}
</scenario>
"""
WAIT_FOR_BYE = """<recv request="BYE"/>
  <send><![CDATA[
    SIP/2.0 200 OK
    [last_Via:]
    [last_From:]
    [last_To:]
    [last_Call-ID:]
    [last_CSeq:]
    Content-Length: 0
  ]]></send>"""
SEND_BYE_AFTER_1S = """<pause milliseconds="1000"/>
  <send retrans="500"><![CDATA[
    BYE sip:peer@[remote_ip]:[remote_port] SIP/2.0
    Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
    [last_To:]
    [last_From:]
    [last_Call-ID:]
    CSeq: 2 BYE
    Content-Length: 0
  ]]></send>
  <recv response="200"/>"""


def _uas(
    tmp_path: Path, port: int, calls: int, connection: str, media: str, tail: str, *extra: str
) -> subprocess.Popen[str]:
    scenario = tmp_path / "uas.xml"
    scenario.write_text(UAS_TEMPLATE.format(connection=connection, media=media, tail=tail))
    process = start_gossipper(
        "-sf",
        str(scenario),
        "-i",
        LOOPBACK,
        "-p",
        str(port),
        "-m",
        str(calls),
        "-bg",
        "-summary_json",
        str(tmp_path / "uas.json"),
        *extra,
    )
    wait_bound(port)
    return process


def _uac(tmp_path: Path, port: int, calls: int, *extra: str) -> tuple[int, dict[str, object], str]:
    summary = tmp_path / "uac.json"
    errors = tmp_path / "errors.log"
    result = run_gossipper(
        "-sn",
        "invite_media_scale",
        f"{LOOPBACK}:{port}",
        "-i",
        LOOPBACK,
        "-m",
        str(calls),
        "-r",
        "50",
        "-mp",
        str(free_ports_below_ephemeral(2 * calls, start=24000)),
        "-bg",
        "-summary_json",
        str(summary),
        "-trace_err",
        "-error_file",
        str(errors),
        *extra,
    )
    return result.returncode, read_json(summary), errors.read_text() if errors.exists() else ""


@pytest.fixture
def sink() -> Iterator[int]:
    """A bound port for the far end's SDP: RTP to a closed port would come back as ICMP errors."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        yield int(sock.getsockname()[1])


def _media(data: dict[str, object]) -> dict[str, object]:
    media = data["media"]
    assert isinstance(media, dict)
    return media


def test_echo_from_gossipper_uas_counted_as_received(tmp_path: Path) -> None:
    port, calls = free_port(), 20
    uas = start_gossipper(
        "-sn",
        "uas",
        "-i",
        LOOPBACK,
        "-p",
        str(port),
        "-rtp_echo",
        "-mp",
        str(free_ports_below_ephemeral(2 * calls)),
        "-m",
        str(calls),
        "-bg",
    )
    try:
        wait_bound(port)
        code, data, _ = _uac(tmp_path, port, calls, "-d", "2000")
        assert uas.wait(timeout=30) == 0
    finally:
        stop(uas)
    assert code == 0 and data["success_calls"] == calls
    media = _media(data)
    sent, received = int(media["rtp_packets_sent"]), int(media["rtp_packets_received"])  # type: ignore[call-overload]
    assert abs(sent - calls * 100) <= calls * 2  # 100 per call, plus the packet at the stop instant
    assert sent * 0.99 <= received <= sent  # the last packets may still be on their way back at stop


def test_bye_from_far_end_stops_the_stream_at_once(tmp_path: Path, sink: int) -> None:
    port = free_port()
    uas = _uas(tmp_path, port, 1, f"c=IN IP4 {LOOPBACK}", f"m=audio {sink} RTP/AVP 0", SEND_BYE_AFTER_1S)
    try:
        code, data, errors = _uac(tmp_path, port, 1, "-d", "10000")
        assert uas.wait(timeout=30) == 0
    finally:
        stop(uas)
    assert code == 1 and data["failed_calls"] == 1  # an unexpected BYE ends the call, as in SIPp
    media = _media(data)
    sent = int(media["rtp_packets_sent"])  # type: ignore[call-overload]
    assert 40 <= sent <= 60, sent
    assert not media["send_errors"]  # about 1 s of 20 ms packets, not the 10 s hold
    assert "unexpected BYE" in errors


def test_pause_and_resume_in_a_custom_scenario(tmp_path: Path, sink: int) -> None:
    port = free_port()
    uas = _uas(tmp_path, port, 1, f"c=IN IP4 {LOOPBACK}", f"m=audio {sink} RTP/AVP 0", WAIT_FOR_BYE)
    text = dump_builtin("invite_media_scale").replace(
        "<pause/>",
        """<pause milliseconds="1000"/>
  <nop><action><exec rtp_stream="pause"/></action></nop>
  <pause milliseconds="1000"/>
  <nop><action><exec rtp_stream="resume"/></action></nop>
  <pause milliseconds="1000"/>""",
    )
    scenario = tmp_path / "pause_resume.xml"
    scenario.write_text(text)
    try:
        summary = tmp_path / "uac.json"
        result = run_gossipper(
            "-sf",
            str(scenario),
            "-media_scale",
            f"{LOOPBACK}:{port}",
            "-i",
            LOOPBACK,
            "-m",
            "1",
            "-mp",
            str(free_ports_below_ephemeral(2)),
            "-bg",
            "-summary_json",
            str(summary),
        )
        assert result.returncode == 0, result.stderr
        assert uas.wait(timeout=30) == 0
    finally:
        stop(uas)
    sent = int(_media(read_json(summary))["rtp_packets_sent"])  # type: ignore[call-overload]
    assert 90 <= sent <= 110, sent  # two of the three seconds


BAD_SDP = [
    (f"c=IN IP4 {LOOPBACK}", "m=video 4000 RTP/AVP 96", "no m=audio"),
    (f"c=IN IP4 {LOOPBACK}", "m=audio 0 RTP/AVP 0", "port is 0"),
    ("c=IN IP4 not.an.address", "m=audio 4000 RTP/AVP 0", "not an IP address"),
]


def test_bad_sdp_fails_only_that_call(tmp_path: Path, sink: int) -> None:
    port = free_port()
    injection = tmp_path / "sdp.csv"
    good = (f"c=IN IP4 {LOOPBACK}", f"m=audio {sink} RTP/AVP 0")
    rows = [good, *((c, m) for c, m, _ in BAD_SDP), good]
    injection.write_text("SEQUENTIAL\n" + "".join(f"{c};{m};\n" for c, m in rows))
    uas = _uas(tmp_path, port, len(rows), "[field0]", "[field1]", WAIT_FOR_BYE, "-inf", str(injection))
    try:
        code, data, errors = _uac(tmp_path, port, len(rows), "-d", "500", "-l", "1")
    finally:
        stop(uas)
    assert code == 1
    assert (data["success_calls"], data["failed_calls"]) == (2, 3)
    assert data["failure_classes"]["parse_error"] == 3  # type: ignore[index]
    for _, _, reason in BAD_SDP:
        assert reason in errors, errors
    assert int(_media(data)["streams_started"]) == 2  # type: ignore[call-overload]
