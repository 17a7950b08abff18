"""SIPp's options as a user runs them: README's -bg example as written, a -bg start that
fails, the control socket's -ci, -rate_max ending a run unless -no_rate_quit, and the
second scenarios: -oocsf's out-of-call calls and -rxrn's mixed mode."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gossipper.cli.ports import LOOPBACK, free_port
from tests.e2e.processes import (
    SIPP,
    GossipperUas,
    SippUas,
    gossipper_command,
    needs_sipp,
    read_json,
    run_gossipper,
)

README = Path(__file__).parents[2] / "README.md"
BACKGROUND = re.compile(r"^Background mode - PID=\[(\d+)\]$")


def _readme_bg_example() -> tuple[list[str], list[str]]:
    """The first two commands of README's "Using it like SIPp" block: the -bg UAS, the UAC."""
    text = README.read_text()
    block = text[text.index("## Using it like SIPp") :].split("```sh\n", 1)[1].split("```", 1)[0]
    lines = [shlex.split(line.split("#", 1)[0]) for line in block.splitlines()[:2]]
    assert lines[0][-1] == "-bg" and "-bg" not in lines[1]
    return lines[0], lines[1]


def _as_run_here(words: list[str], port: int) -> list[str]:
    """README's command with this checkout's interpreter and a free port for its 5070."""
    assert words[0] == ".venv/bin/gossipper"
    return [sys.executable, "-m", "gossipper", *(word.replace("5070", str(port)) for word in words[1:])]


@pytest.fixture
def background_pids() -> Iterator[list[int]]:
    """PIDs of -bg runs the test started; each still alive at teardown is ended."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue


def _started_in_background(result: subprocess.CompletedProcess[str], pids: list[int]) -> int:
    match = BACKGROUND.match(result.stdout.strip())
    assert match, result.stdout + result.stderr
    pid = int(match.group(1))
    pids.append(pid)
    assert result.returncode == 99  # SIPp's parent exits EXIT_OTHER
    return pid


def _wait_gone(pid: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_readme_bg_uas_then_uac_works_as_written(background_pids: list[int]) -> None:
    uas_words, uac_words = _readme_bg_example()
    port = free_port()
    started = time.monotonic()
    uas = subprocess.run(_as_run_here(uas_words, port), capture_output=True, text=True, timeout=30)
    assert time.monotonic() - started < 10  # returns at once, not when the UAS ends
    pid = _started_in_background(uas, background_pids)
    uac = subprocess.run(_as_run_here(uac_words, port), capture_output=True, text=True, timeout=60)
    assert uac.returncode == 0, uac.stdout[-2000:] + uac.stderr
    assert "Calls created: 500  successful: 500  failed: 0" in uac.stdout
    os.kill(pid, signal.SIGUSR1)  # README's last step: the UAS ends gracefully
    assert _wait_gone(pid)


def test_a_bg_run_that_cannot_start_says_why_and_fails(background_pids: list[int]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("0.0.0.0", 0))
        port = taken.getsockname()[1]
        result = run_gossipper("-sn", "uas", "-p", str(port), "-bg", timeout=30)
    assert "Background mode" not in result.stdout
    assert result.returncode == 254
    assert result.stderr.count("\n") == 1 and f"-p: cannot bind UDP 0.0.0.0:{port}" in result.stderr


def _wait_held(address: tuple[str, int], process: subprocess.Popen[str], timeout: float = 10.0) -> None:
    """Until the process holds the UDP address (wait_bound probes 127.0.0.1 only)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(address)
            except OSError:
                return
        time.sleep(0.05)
    raise AssertionError(f"{address} not bound; exit status {process.poll()}")


def test_control_socket_with_ci_listens_only_there(
    tmp_path: Path, gossipper_uas: GossipperUas, processes: object
) -> None:
    uas = gossipper_uas("-sn", "uas", "-i", LOOPBACK)
    control_port = free_port()
    summary = tmp_path / "uac.json"
    command = [
        sys.executable, "-m", "gossipper", "sipp", "-sn", "uac", uas.address, "-i", LOOPBACK, "-r", "5",
        "-ci", "127.0.0.2", "-cp", str(control_port), "-nostdin", "-summary_json", str(summary),
    ]  # fmt: skip
    uac = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_held(("127.0.0.2", control_port), uac)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as control:
            control.sendto(b"q", (LOOPBACK, control_port))  # not where -ci listens: nothing happens
            time.sleep(1.0)
            assert uac.poll() is None
            control.sendto(b"q", ("127.0.0.2", control_port))
        assert uac.wait(timeout=20) == 0
    finally:
        if uac.poll() is None:
            uac.kill()
            uac.wait()
    assert read_json(summary)["failed_calls"] == 0


def test_rate_max_ends_the_run_unless_no_rate_quit(gossipper_uas: GossipperUas) -> None:
    uas = gossipper_uas("-sn", "uas", "-i", LOOPBACK)
    common = ("-sn", "uac", uas.address, "-i", LOOPBACK, "-r", "2", "-rate_increase", "2", "-rate_max", "4")
    started = time.monotonic()
    result = run_gossipper(*common, "-rate_interval", "1", "-timeout", "8", timeout=30)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 6  # 2 -> 4 cps, then past 4 at 2 s: quits as 'q' does
    started = time.monotonic()
    kept = run_gossipper(*common, "-rate_interval", "1", "-no_rate_quit", "-timeout", "4", timeout=30)
    assert kept.returncode == 0, kept.stderr
    assert time.monotonic() - started >= 4  # still calling when -timeout ends it


OOC_SCENARIO = """<?xml version="1.0"?>
<scenario name="ooc answer">
  <recv request="OPTIONS"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=ooc[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      X-Answered-By: the out-of-call scenario
      Content-Length: 0
    ]]>
  </send>
</scenario>
"""


def _options_request(to_port: int, from_port: int, call_id: str) -> bytes:
    return (
        f"OPTIONS sip:x@127.0.0.1:{to_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{from_port};branch=z9hG4bK-ooc-{call_id}\r\n"
        f"From: <sip:probe@127.0.0.1>;tag=probe\r\nTo: <sip:x@127.0.0.1>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def test_oocsf_answers_out_of_call_requests_of_a_client_run(
    tmp_path: Path, gossipper_uas: GossipperUas, processes: object
) -> None:
    uas = gossipper_uas("-sn", "uas", "-i", LOOPBACK)
    scenario = tmp_path / "ooc.xml"
    scenario.write_text(OOC_SCENARIO)
    uac_port = free_port()
    command = gossipper_command(
        "-sn", "uac", uas.address, "-i", LOOPBACK, "-p", str(uac_port),
        "-r", "1", "-m", "3", "-nostdin", "-oocsf", str(scenario),
    )  # fmt: skip
    uac = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_held((LOOPBACK, uac_port), uac)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((LOOPBACK, 0))
            probe.settimeout(5)
            probe.sendto(_options_request(uac_port, probe.getsockname()[1], "ooc-1"), (LOOPBACK, uac_port))
            answer = probe.recv(4096).decode()
        assert answer.startswith("SIP/2.0 200 OK") and "X-Answered-By: the out-of-call scenario" in answer
        assert "Call-ID: ooc-1" in answer
        assert uac.wait(timeout=30) == 0  # the out-of-call call counts apart from the run's three
    finally:
        if uac.poll() is None:
            uac.kill()
            uac.wait()


@needs_sipp
def test_rxrn_mixed_mode_calls_out_and_answers_sipp(sipp_uas: SippUas, processes: object) -> None:
    """gossipper as SIPp's mixed mode: calls a SIPp UAS and answers a SIPp UAC at the same time."""
    assert SIPP is not None
    peer = sipp_uas("-sn", "uas", "-i", LOOPBACK)
    mixed_port = free_port()
    command = gossipper_command(
        "-sn", "uac", peer.address, "-i", LOOPBACK, "-p", str(mixed_port), "-r", "1", "-m", "4", "-nostdin",
        "-rxrn", "uas",
    )  # fmt: skip
    mixed = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_held((LOOPBACK, mixed_port), mixed)
        caller = subprocess.run(
            [SIPP, "-sn", "uac", f"{LOOPBACK}:{mixed_port}", "-i", LOOPBACK, "-m", "3", "-nostdin"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert caller.returncode == 0, caller.stdout[-2000:]  # all three of SIPp's calls answered
        out, _ = mixed.communicate(timeout=60)
        assert mixed.returncode == 0
        assert "Calls created: 4  successful: 4  failed: 0" in out  # its own calls only, as SIPp counts
    finally:
        if mixed.poll() is None:
            mixed.kill()
            mixed.wait()


def _closing_tcp_peer(accepted: list[int]) -> tuple[socket.socket, int]:
    """A TCP 'peer' that takes each connection, reads its first request, and closes it."""
    import threading

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((LOOPBACK, 0))
    listener.listen(8)

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            with connection:
                connection.recv(65536)

    threading.Thread(target=serve, daemon=True).start()
    return listener, int(listener.getsockname()[1])


@pytest.mark.parametrize(
    ("flags", "connections"), [((), 1), (("-max_reconnect", "2", "-reconnect_sleep", "100"), 3)]
)
def test_a_t1_peer_closing_the_connection_fails_the_run_once_reconnects_are_spent(
    flags: tuple[str, ...], connections: int
) -> None:
    accepted: list[int] = []
    listener, port = _closing_tcp_peer(accepted)
    with listener:
        result = run_gossipper(
            "-sn", "uac", f"{LOOPBACK}:{port}", "-i", LOOPBACK, "-t", "t1", "-m", "10", "-r", "5", *flags,
            timeout=60,
        )  # fmt: skip
    assert result.returncode == 255, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "gossipper: the peer closed the TCP connection and -max_reconnect allows no reconnection"
    )
    assert len(accepted) == connections  # the first connection, then one per reconnection


def test_t_ui_sends_each_call_from_its_injected_address(tmp_path: Path) -> None:
    """-t ui: each call's INVITE leaves from the address on its -inf line (the peer, a bare
    socket here, sees where each datagram came from; it answers nothing)."""
    addresses = tmp_path / "addresses.csv"
    addresses.write_text("SEQUENTIAL\nalice;127.0.0.2\nbob;127.0.0.3\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind((LOOPBACK, 0))
        peer.settimeout(0.2)
        target = f"{LOOPBACK}:{peer.getsockname()[1]}"
        process = subprocess.Popen(
            gossipper_command("-sn", "uac", target, "-t", "ui", "-inf", str(addresses), "-ip_field", "1",
                              "-m", "4", "-r", "20", "-nostdin", "-timeout", "3"),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        sources: set[str] = set()
        deadline = time.monotonic() + 20
        while len(sources) < 2 and time.monotonic() < deadline:
            try:
                data, source = peer.recvfrom(65535)
            except TimeoutError:
                continue
            if data.startswith(b"INVITE "):
                sources.add(source[0])
        _, errors = process.communicate(timeout=30)
    assert sources == {"127.0.0.2", "127.0.0.3"}
    assert "Traceback" not in errors


def test_t_ui_needs_an_injection_file() -> None:
    result = run_gossipper("-sn", "uac", f"{LOOPBACK}:5060", "-t", "ui", timeout=30)
    assert result.returncode == 1  # a flag error, found before the scenario is in place
    assert (
        result.stderr.strip()
        == "gossipper: -t ui: needs -inf (its lines name the local addresses to send from)"
    )


@needs_sipp
def test_timer_resol_runs_calls_to_sipp_with_no_pause_cut_short(sipp_uas: SippUas, tmp_path: Path) -> None:
    """-timer_resol 20: calls created and timers run in 20 ms ticks, and every call against
    SIPp's uas still completes, its -d pause held at least as long as asked."""
    peer = sipp_uas("-sn", "uas", "-i", LOOPBACK)
    summary = tmp_path / "summary.json"
    result = run_gossipper(
        "-sn", "uac", peer.address, "-i", LOOPBACK, "-m", "20", "-r", "50", "-d", "100",
        "-timer_resol", "20", "-summary_json", str(summary),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "-timer_resol" not in result.stderr  # no "no effect" notice: it is honoured
    data = read_json(summary)
    assert (data["total_calls"], data["success_calls"], data["failed_calls"]) == (20, 20, 0)
    call_length = data["call_length"]
    assert isinstance(call_length, dict) and call_length["min_ms"] >= 100
