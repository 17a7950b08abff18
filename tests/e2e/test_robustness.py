"""What a hostile network or a careless peer does to a run, over real sockets with SIPp as
the peer: nothing it sends may create calls that never end, stick a call, or go uncounted."""

from __future__ import annotations

import socket
import subprocess
import time
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


def _sipp_tcp_calls(tmp_path: Path, address: str, calls: int) -> dict[str, str]:
    """SIPp's uac over one TCP connection (-t t1) to its end -> its last -trace_stat row."""
    assert SIPP is not None
    stat = tmp_path / f"uac-{time.monotonic_ns()}.csv"
    command = [SIPP, "-sn", "uac", address, "-t", "t1", "-i", LOOPBACK, "-m", str(calls), "-r", "10"]
    subprocess.run(
        [*command, "-nostdin", "-timeout", "60", "-trace_stat", "-stf", str(stat)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=90,
        check=False,
    )
    return last_sipp_stat_row(stat)


def _closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@needs_sipp
def test_tcp_connections_past_max_socket_are_refused_and_a_message_past_buff_size_dropped(
    tmp_path: Path, gossipper_uas: GossipperUas
) -> None:
    """-max_socket 3 leaves room for two connections beside the listener: a third is closed at
    once. A 100 kB INVITE on a -buff_size 8192 UAS is dropped unread, yet the connection
    carries the OPTIONS after it. Both are counted and logged, and SIPp's calls then succeed."""
    summary, errors = tmp_path / "uas.json", tmp_path / "errors.log"
    uas = gossipper_uas(
        "-sn", "uas", "-t", "t1", "-i", LOOPBACK, "-m", "3", "-max_socket", "3", "-buff_size", "8192",
        "-trace_err", "-error_file", str(errors), "-summary_json", str(summary),
        kind=socket.SOCK_STREAM,
    )  # fmt: skip
    big = _options(0, uas.port, "INVITE").replace(b"Content-Length: 0", b"Content-Length: 100000")
    with (
        socket.create_connection((LOOPBACK, uas.port), timeout=10) as first,
        socket.create_connection((LOOPBACK, uas.port), timeout=10) as second,
    ):
        first.sendall(big + b"v" * 100_000 + _options(1, uas.port))
        assert first.recv(65535).startswith(b"SIP/2.0 200 OK")  # the OPTIONS after it
        second.sendall(_options(2, uas.port))
        assert second.recv(65535).startswith(b"SIP/2.0 200 OK")
        with socket.create_connection((LOOPBACK, uas.port), timeout=10) as third:
            assert _closed_by_peer(third, 10)
    assert _sipp_tcp_calls(tmp_path, uas.address, 3)["SuccessfulCall(C)"] == "3"
    assert uas.wait(timeout=60) == 0
    data = read_json(summary)
    assert (data["success_calls"], data["failed_calls"]) == (3, 0)
    assert (data["connections_refused"], data["messages_too_large"], data["malformed_messages"]) == (1, 1, 1)
    log = errors.read_text()
    assert log.count("cannot accept connections: 2 connections are open, the most it takes") == 1
    assert f"dropped unread: message too large: a message of {len(big) + 100_000} bytes" in log
    assert "over the limit of 8192 bytes (-buff_size sets the limit)" in log


@needs_sipp
def test_an_idle_tcp_connection_is_closed_after_conn_idle_timeout(
    tmp_path: Path, gossipper_uas: GossipperUas
) -> None:
    """A peer that connects and says nothing is closed once -conn_idle_timeout passes (counted
    and logged); calls over a connection of their own still succeed."""
    summary, errors = tmp_path / "uas.json", tmp_path / "errors.log"
    uas = gossipper_uas(
        "-sn", "uas", "-t", "t1", "-i", LOOPBACK, "-m", "2", "-conn_idle_timeout", "1",
        "-trace_err", "-error_file", str(errors), "-summary_json", str(summary),
        kind=socket.SOCK_STREAM,
    )  # fmt: skip
    with socket.create_connection((LOOPBACK, uas.port), timeout=10) as silent:
        started = time.monotonic()
        assert _closed_by_peer(silent, 10)
        assert time.monotonic() - started >= 0.9
        silent_peer = silent.getsockname()
    assert _sipp_tcp_calls(tmp_path, uas.address, 2)["SuccessfulCall(C)"] == "2"
    assert uas.wait(timeout=60) == 0
    data = read_json(summary)
    assert data["success_calls"] == 2
    assert data["connections_closed_quiet"] >= 1  # SIPp's own may be closed too once its calls end
    log = errors.read_text()
    assert f"closed the connection from {silent_peer[0]}:{silent_peer[1]}: nothing sent or received" in log
