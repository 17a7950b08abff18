"""What a hostile network or a careless peer does to a run, over real sockets with SIPp as
the peer: nothing it sends may create calls that never end, stick a call, or go uncounted."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from gossipper.cli.ports import LOOPBACK
from tests.e2e.processes import (
    SIPP,
    GossipperUas,
    last_sipp_stat_row,
    needs_sipp,
    read_json,
)


def _options(index: int, port: int, method: str = "OPTIONS") -> bytes:
    return (
        f"{method} sip:ping@{LOOPBACK}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {LOOPBACK}:9;branch=z9hG4bK-ping-{index}\r\n"
        f"From: <sip:sbc@{LOOPBACK}>;tag=ping{index}\r\n"
        f"To: <sip:ping@{LOOPBACK}>\r\n"
        f"Call-ID: ping-{index}@sbc\r\n"
        f"CSeq: 1 {method}\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


@needs_sipp
def test_requests_that_do_not_start_the_scenario_are_out_of_call(
    tmp_path: Path, gossipper_uas: GossipperUas
) -> None:
    """An SBC pings with OPTIONS (and sends INFO, NOTIFY, UPDATE) under new Call-IDs: each is
    answered out of call, none becomes a call or counts against -m, so the calls that follow
    all run and the UAS ends by itself with every one a success."""
    assert SIPP is not None
    summary = tmp_path / "summary.json"
    uas = gossipper_uas("-sn", "uas", "-i", LOOPBACK, "-m", "5", "-summary_json", str(summary))
    methods = ["OPTIONS", "INFO", "NOTIFY", "UPDATE"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as pinger:
        pinger.bind((LOOPBACK, 0))
        pinger.settimeout(10)
        for index in range(40):
            pinger.sendto(_options(index, uas.port, methods[index % 4]), (LOOPBACK, uas.port))
        answers = [pinger.recv(65535) for _ in range(40)]
    assert all(answer.startswith(b"SIP/2.0 200 ") for answer in answers)
    stat = tmp_path / "uac.csv"
    driver = [SIPP, "-sn", "uac", uas.address, "-i", LOOPBACK, "-m", "5", "-r", "10", "-nostdin"]
    subprocess.run(
        [*driver, "-timeout", "60", "-trace_stat", "-stf", str(stat)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=90,
        check=False,
    )
    assert last_sipp_stat_row(stat)["SuccessfulCall(C)"] == "5"
    assert uas.wait(timeout=60) == 0
    data = read_json(summary)
    assert (data["total_calls"], data["success_calls"], data["failed_calls"]) == (5, 5, 0)
    assert data["out_of_call_messages"] == 40


@needs_sipp
def test_a_uas_stopped_while_its_calls_wait_out_their_timewait_exits_0(
    tmp_path: Path, gossipper_uas: GossipperUas
) -> None:
    """-timeout ends the UAS 3 s in, while its answered calls sit in the built-in uas's 4 s
    <timewait>: they did everything, so they count as successes and the exit status is 0."""
    assert SIPP is not None
    summary = tmp_path / "summary.json"
    uas = gossipper_uas("-sn", "uas", "-i", LOOPBACK, "-timeout", "3", "-summary_json", str(summary))
    subprocess.run(
        [SIPP, "-sn", "uac", uas.address, "-i", LOOPBACK, "-m", "3", "-r", "10", "-nostdin"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    assert uas.wait(timeout=30) == 0
    data = read_json(summary)
    assert (data["success_calls"], data["failed_calls"]) == (3, 0)
