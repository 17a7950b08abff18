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
from collections.abc import Iterator
from pathlib import Path

import pytest

from gossipper.cli.ports import LOOPBACK, free_ports_below_ephemeral
from gossipper.scenario.builtins import dump_builtin
from tests.e2e.netns import needs_netns, network_namespace, udp_counters
from tests.e2e.processes import (
    GossipperUas,
    Processes,
    Server,
    SippUas,
    needs_sipp,
    read_json,
    run_gossipper,
    stop,
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


@needs_sipp
@needs_netns
def test_invite_media_scale_against_sipp_uas(tmp_path: Path, processes: Processes, sipp_uas: SippUas) -> None:
    with network_namespace("ims") as namespace:
        sniffer_out = tmp_path / "sniffer.json"
        sniffer = processes.start(
            [sys.executable, "-m", "tests.e2e.sniffer", str(sniffer_out), str(PEER_MEDIA_PORT)],
            namespace=namespace,
        )
        sipp = sipp_uas(
            "-sn",
            "uas",
            "-i",
            LOOPBACK,
            "-mp",
            str(PEER_MEDIA_PORT),
            "-m",
            str(CALLS),
            port=SIP_PORT,
            cwd=tmp_path,
            namespace=namespace,
        )
        try:
            _wait_ready(sniffer)
            before = udp_counters(namespace)
            summary = tmp_path / "summary.json"
            result = run_gossipper(
                "-sn",
                "invite_media_scale",
                sipp.address,
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
                "-summary_json",
                str(summary),
                namespace=namespace,
            )
            after = udp_counters(namespace)
            assert result.returncode == 0, result.stderr
            assert sipp.wait(timeout=30) == 0
        finally:
            for process in (sipp.process, sniffer):  # the sniffer writes its counts as it stops
                stop(process, timeout=15)
        seen = json.loads(sniffer_out.read_text())
    data = read_json(summary)
    assert data["success_calls"] == CALLS and data["failed_calls"] == 0
    assert 0 < data["cpu_s"] < 60  # the process' CPU over its run: for CPU per call
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
    gossipper_uas: GossipperUas,
    tmp_path: Path,
    calls: int,
    connection: str,
    media: str,
    tail: str,
    *extra: str,
) -> Server:
    scenario = tmp_path / "uas.xml"
    scenario.write_text(UAS_TEMPLATE.format(connection=connection, media=media, tail=tail))
    return gossipper_uas(
        "-sf",
        str(scenario),
        "-i",
        LOOPBACK,
        "-m",
        str(calls),
        "-summary_json",
        str(tmp_path / "uas.json"),
        *extra,
    )


def _uac(tmp_path: Path, uas: Server, calls: int, *extra: str) -> tuple[int, dict[str, object], str]:
    summary = tmp_path / "uac.json"
    errors = tmp_path / "errors.log"
    result = run_gossipper(
        "-sn",
        "invite_media_scale",
        uas.address,
        "-i",
        LOOPBACK,
        "-m",
        str(calls),
        "-r",
        "50",
        "-mp",
        str(free_ports_below_ephemeral(2 * calls, start=24000)),
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


def test_echo_from_gossipper_uas_counted_as_received(tmp_path: Path, gossipper_uas: GossipperUas) -> None:
    calls = 20
    uas = gossipper_uas(
        "-sn",
        "uas",
        "-i",
        LOOPBACK,
        "-rtp_echo",
        "-mp",
        str(free_ports_below_ephemeral(2 * calls)),
        "-m",
        str(calls),
    )
    records = tmp_path / "calls.jsonl"
    gates = ("-health_max_rtp_loss_pct", "1", "-health_min_mos", "4.3", "-health_max_jitter_ms", "20")
    code, data, _ = _uac(tmp_path, uas, calls, "-d", "2000", "-call_records", str(records), *gates)
    assert uas.wait(timeout=30) == 0
    assert code == 0 and data["success_calls"] == calls
    health = data["health"]
    assert isinstance(health, dict) and health["passed"], health
    assert [gate["value"] is not None for gate in health["gates"]] == [True] * 3
    # each call's record carries its scale stream: what it sent, and what came back
    for line in records.read_text().splitlines():
        [stream] = json.loads(line)["media"]["streams"]
        assert (stream["engine"], stream["echo"]) == ("scale", True)
        assert (
            abs(stream["packets_sent"] - 100) <= 2
            and stream["packets_received"] >= 0.99 * stream["packets_sent"]
        )
        assert stream["mos"] >= 4.3
    media = _media(data)
    sent, received = int(media["rtp_packets_sent"]), int(media["rtp_packets_received"])  # type: ignore[call-overload]
    assert abs(sent - calls * 100) <= calls * 2  # 100 per call, plus the packet at the stop instant
    assert sent * 0.99 <= received <= sent  # the last packets may still be on their way back at stop
    # Every call's stream ended with its call, and its quality went to the summary: all
    # echoed by the UAS on loopback, so no loss and a MOS at the E-model's best for G.711.
    quality = media["quality"]
    assert isinstance(quality, dict)
    assert (quality["streams"], quality["streams_receiving"], quality["streams_echoed"]) == (calls,) * 3
    assert quality["loss_percent"] <= 1.0 and quality["stream_rtt_ms"]["count"] == calls
    assert quality["stream_mos"]["min"] >= 4.3


def test_bye_from_far_end_stops_the_stream_at_once(
    tmp_path: Path, sink: int, gossipper_uas: GossipperUas
) -> None:
    uas = _uas(
        gossipper_uas, tmp_path, 1, f"c=IN IP4 {LOOPBACK}", f"m=audio {sink} RTP/AVP 0", SEND_BYE_AFTER_1S
    )
    code, data, errors = _uac(tmp_path, uas, 1, "-d", "10000")
    assert uas.wait(timeout=30) == 0
    assert code == 1 and data["failed_calls"] == 1  # an unexpected BYE ends the call, as in SIPp
    media = _media(data)
    sent = int(media["rtp_packets_sent"])  # type: ignore[call-overload]
    assert 40 <= sent <= 60, sent
    assert not media["send_errors"]  # about 1 s of 20 ms packets, not the 10 s hold
    assert "unexpected BYE" in errors


def test_pause_and_resume_in_a_custom_scenario(
    tmp_path: Path, sink: int, gossipper_uas: GossipperUas
) -> None:
    uas = _uas(gossipper_uas, tmp_path, 1, f"c=IN IP4 {LOOPBACK}", f"m=audio {sink} RTP/AVP 0", WAIT_FOR_BYE)
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
    summary = tmp_path / "uac.json"
    result = run_gossipper(
        "-sf",
        str(scenario),
        "-media_scale",
        uas.address,
        "-i",
        LOOPBACK,
        "-m",
        "1",
        "-mp",
        str(free_ports_below_ephemeral(2)),
        "-summary_json",
        str(summary),
    )
    assert result.returncode == 0, result.stderr
    assert uas.wait(timeout=30) == 0
    sent = int(_media(read_json(summary))["rtp_packets_sent"])  # type: ignore[call-overload]
    assert 90 <= sent <= 110, sent  # two of the three seconds


BAD_SDP = [
    (f"c=IN IP4 {LOOPBACK}", "m=video 4000 RTP/AVP 96", "no m=audio"),
    (f"c=IN IP4 {LOOPBACK}", "m=audio 0 RTP/AVP 0", "port is 0"),
    ("c=IN IP4 not.an.address", "m=audio 4000 RTP/AVP 0", "not an IP address"),
]


def test_bad_sdp_fails_only_that_call(tmp_path: Path, sink: int, gossipper_uas: GossipperUas) -> None:
    injection = tmp_path / "sdp.csv"
    good = (f"c=IN IP4 {LOOPBACK}", f"m=audio {sink} RTP/AVP 0")
    rows = [good, *((c, m) for c, m, _ in BAD_SDP), good]
    injection.write_text("SEQUENTIAL\n" + "".join(f"{c};{m};\n" for c, m in rows))
    uas = _uas(
        gossipper_uas, tmp_path, len(rows), "[field0]", "[field1]", WAIT_FOR_BYE, "-inf", str(injection)
    )
    code, data, errors = _uac(tmp_path, uas, len(rows), "-d", "500", "-l", "1")
    assert code == 1
    assert (data["success_calls"], data["failed_calls"]) == (2, 3)
    assert data["failure_classes"]["parse_error"] == 3  # type: ignore[index]
    for _, _, reason in BAD_SDP:
        assert reason in errors, errors
    assert int(_media(data)["streams_started"]) == 2  # type: ignore[call-overload]
