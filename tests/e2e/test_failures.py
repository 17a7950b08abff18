"""Lost messages, dead peers and malformed input, over real loopback sockets."""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from gossipper.cli.ports import LOOPBACK, free_port
from tests.e2e.processes import (
    GossipperUas,
    Processes,
    gossipper_command,
    read_json,
    run_gossipper,
    stop,
    wait_bound,
)


class DropFirstInviteProxy:
    """A UDP relay between one UAC and one UAS that loses the first INVITE it sees."""

    def __init__(self, uas_port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.uas = (LOOPBACK, uas_port)
        self.uac: tuple[str, int] | None = None
        self.dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._relay, daemon=True)
        self._thread.start()

    def _relay(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            if source == self.uas:
                if self.uac is not None:
                    self.sock.sendto(data, self.uac)
                continue
            self.uac = source
            if data.startswith(b"INVITE ") and self.dropped == 0:
                self.dropped += 1
                continue
            self.sock.sendto(data, self.uas)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def test_retransmission_recovers_a_lost_invite(tmp_path: Path, gossipper_uas: GossipperUas) -> None:
    uas = gossipper_uas("-sn", "uas", "-i", LOOPBACK, "-m", "1")
    proxy = DropFirstInviteProxy(uas.port)
    try:
        summary = tmp_path / "uac.json"
        result = run_gossipper(
            "-sn",
            "uac",
            f"{LOOPBACK}:{proxy.port}",
            "-i",
            LOOPBACK,
            "-m",
            "1",
            "-summary_json",
            str(summary),
        )
        assert result.returncode == 0, result.stderr
    finally:
        proxy.close()
    assert proxy.dropped == 1
    data = read_json(summary)
    assert data["success_calls"] == 1
    assert int(data["retransmits"]) >= 1  # type: ignore[call-overload]


def test_dead_peer_times_out_after_retransmissions(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind((LOOPBACK, 0))
        port = silent.getsockname()[1]
        summary = tmp_path / "uac.json"
        started = time.monotonic()
        result = run_gossipper(
            "-sn",
            "uac",
            f"{LOOPBACK}:{port}",
            "-i",
            LOOPBACK,
            "-m",
            "1",
            "-max_retrans",
            "2",
            "-summary_json",
            str(summary),
        )
        elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    data = read_json(summary)
    assert data["failed_calls"] == 1
    assert data["failure_classes"]["timeout"] == 1  # type: ignore[index]
    assert data["retransmits"] == 2
    # T1 = 500 ms doubling: retransmissions at 0.5 s and 1.5 s, give-up at 3.5 s.
    assert 3.0 <= elapsed < 30


MALFORMED = [
    b"garbage that is not SIP at all",
    b"INVITE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bK1\r\nCall-",
    b"INVITE sip:x@127.0.0.1 SIP/2.0\r\nCall-ID: a@b\r\nCSeq: 1 INVITE\r\nContent-Length: 900\r\n\r\nshort",
    b"\xff\xfe\x00" * 100,
    b"J" * 65000,
]


def test_malformed_datagrams_are_counted_and_calls_continue(
    tmp_path: Path, gossipper_uas: GossipperUas
) -> None:
    uas_summary = tmp_path / "uas.json"
    calls = 20
    uas = gossipper_uas(
        "-sn",
        "uas",
        "-i",
        LOOPBACK,
        "-m",
        str(calls),
        "-trace_err",
        "-error_file",
        str(tmp_path / "errors.log"),
        "-summary_json",
        str(uas_summary),
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as attacker:
        for datagram in MALFORMED:
            attacker.sendto(datagram, (LOOPBACK, uas.port))
        attacker.sendto(b"\r\n\r\n", (LOOPBACK, uas.port))  # an RFC 5626 keep-alive: not malformed
    result = run_gossipper("-sn", "uac", uas.address, "-i", LOOPBACK, "-m", str(calls), "-r", "20")
    assert result.returncode == 0, result.stderr
    assert uas.wait(timeout=30) == 0
    data = read_json(uas_summary)
    assert data["success_calls"] == calls
    assert data["malformed_messages"] == len(MALFORMED)
    assert data["keepalives_received"] == 1
    assert "malformed SIP" in (tmp_path / "errors.log").read_text()


def test_messages_cut_off_by_closed_connections_and_keepalives_are_counted(
    tmp_path: Path, gossipper_uas: GossipperUas
) -> None:
    """Over TCP: connections that send half an INVITE and close are each counted (they were
    lost with the connection's buffer), a CRLF CRLF ping gets its CRLF pong, and calls go on."""
    uas_summary, errors = tmp_path / "uas.json", tmp_path / "errors.log"
    calls, cut = 5, 40
    uas = gossipper_uas(
        "-sn",
        "uas",
        "-t",
        "t1",
        "-i",
        LOOPBACK,
        "-m",
        str(calls),
        "-trace_err",
        "-error_file",
        str(errors),
        "-summary_json",
        str(uas_summary),
        kind=socket.SOCK_STREAM,
    )
    for index in range(cut):
        with socket.create_connection((LOOPBACK, uas.port), timeout=5) as peer:
            peer.sendall(
                b"INVITE sip:x@127.0.0.1 SIP/2.0\r\nCall-ID: cut-%d@127.0.0.1\r\n"
                b"Content-Length: 100\r\n\r\nv=0\r\n" % index
            )
    with socket.create_connection((LOOPBACK, uas.port), timeout=5) as pinger:
        pinger.sendall(b"\r\n\r\n")
        assert pinger.recv(10) == b"\r\n"
    result = run_gossipper(
        "-sn", "uac", uas.address, "-t", "t1", "-i", LOOPBACK, "-m", str(calls), "-r", "20"
    )
    assert result.returncode == 0, result.stderr
    assert uas.wait(timeout=30) == 0
    data = read_json(uas_summary)
    assert data["success_calls"] == calls
    assert (data["truncated_messages"], data["malformed_messages"]) == (cut, cut)
    assert data["keepalives_received"] == 1
    assert errors.read_text().count("connection closed inside a message") == cut


def test_timeout_ends_the_run_with_97_or_with_255_under_timeout_error() -> None:
    """SIPp's -timeout: the run stops, exit 97; with -timeout_error it is an error, exit 255,
    and the one line names the flag (the engine reports the ending, the CLI words it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((LOOPBACK, 0))
        port = probe.getsockname()[1]
    common = ("-sn", "uas", "-i", LOOPBACK, "-p", str(port), "-timeout", "1")
    plain = run_gossipper(*common, timeout=30)
    assert plain.returncode == 97, plain.stderr
    assert "timed out" not in plain.stderr
    as_error = run_gossipper(*common, "-timeout_error", timeout=30)
    assert as_error.returncode == 255, as_error.stderr
    assert "gossipper: -timeout: run timed out after 1.000 seconds" in as_error.stderr.splitlines()


FAULTY_VIEWS = """
import sys
from gossipper.engine.views import RunViews
def broken(self, call_id, failure_class):
    raise RuntimeError("a bug in the views")
RunViews.call_ended = broken
from gossipper.cli.main import console_main
sys.argv = ["gossipper", "sipp", *sys.argv[1:]]
console_main()
"""


def test_a_bug_raised_in_a_callback_stops_the_run_in_one_line_with_its_summary(
    tmp_path: Path, gossipper_uas: GossipperUas
) -> None:
    """An exception escaping into the event loop (here a fault planted in the views, which every
    ended call reaches from a socket callback while -trace_calldebug keeps call histories) must
    not leave a run that never ends: it stops as on a fatal error, exit 255, one line on stderr,
    the traceback in -trace_err's file, and the summary written."""
    uas = gossipper_uas("-sn", "uas", "-i", LOOPBACK)
    summary, errors = tmp_path / "uac.json", tmp_path / "errors.log"
    command = [sys.executable, "-c", FAULTY_VIEWS, "-sn", "uac", uas.address, "-i", LOOPBACK, "-m", "50"]
    command += [
        "-r",
        "100",
        "-nostdin",
        "-summary_json",
        str(summary),
        "-trace_err",
        "-error_file",
        str(errors),
        "-trace_calldebug",
        "-calldebug_file",
        str(tmp_path / "calldebug.log"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 255, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(
        "gossipper: internal error, the run stopped: RuntimeError: a bug in the views"
    )
    assert "Traceback" not in result.stderr
    assert "Traceback" in errors.read_text() and "a bug in the views" in errors.read_text()
    assert read_json(summary)["total_calls"] >= 1


def _closed_on_us(peer: socket.socket) -> bool:
    try:
        return peer.recv(10, socket.MSG_PEEK) == b""
    except ConnectionResetError:
        return True
    except BlockingIOError:
        return False  # accepted, and waiting for a message


def _limit_open_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))


OPEN_FILES = 48  # a UAS holds about 20 before any connection (interpreter, loop, sockets)


def test_connections_beyond_the_open_files_limit_are_refused_counted_and_logged_once(
    tmp_path: Path, processes: Processes
) -> None:
    """A UAS whose hard open-files limit it cannot raise: the connections it has no descriptor
    for are refused at once (closed, not left waiting), counted, and logged in one line; once
    descriptors are free it accepts again and a call succeeds."""
    summary, errors = tmp_path / "uas.json", tmp_path / "errors.log"
    port = free_port()
    command = gossipper_command(
        "-sn", "uas", "-t", "t1", "-i", LOOPBACK, "-p", str(port), "-m", "1", "-nostdin",
        "-trace_err", "-error_file", str(errors), "-summary_json", str(summary),
    )  # fmt: skip
    uas = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, preexec_fn=_limit_open_files)
    try:
        wait_bound(port, socket.SOCK_STREAM, process=uas)
        peers = [socket.create_connection((LOOPBACK, port), timeout=5) for _ in range(OPEN_FILES + 10)]
        for peer in peers:
            peer.setblocking(False)
        refused, counts = 0, [-1]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (refused == 0 or counts[-3:] != [refused] * 3):
            time.sleep(0.2)  # until the count of connections closed on us holds still
            refused = sum(_closed_on_us(peer) for peer in peers)
            counts.append(refused)
        assert 10 <= refused < len(peers)
        for peer in peers:
            peer.close()
        time.sleep(0.5)
        result = run_gossipper("-sn", "uac", f"{LOOPBACK}:{port}", "-t", "t1", "-i", LOOPBACK, "-m", "1")
        assert result.returncode == 0, result.stderr
        assert uas.wait(timeout=30) == 0
    finally:
        stop(uas)
    data = read_json(summary)
    assert data["connections_refused"] == refused
    assert data["success_calls"] == 1
    log = errors.read_text()
    assert log.count("cannot accept connections: Too many open files (EMFILE)") == 1
