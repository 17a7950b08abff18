"""CI health gates on real runs: SIPp's UAS as the peer for the call gates, an echo socket
for the RTP ones. A missed gate makes the exit status 2, says so in one line per gate, and
shows in the summary JSON beside the figure it judged."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from gossipper.cli.ports import LOOPBACK, free_port
from tests.e2e.processes import SippUas, needs_sipp, read_json, run_gossipper

# SIPp's UAS answering every INVITE 486 Busy Here: the built-in uac fails each call at once.
BUSY_UAS = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="busy">
  <recv request="INVITE"/>
  <send>
    <![CDATA[
      SIP/2.0 486 Busy Here
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <recv request="ACK"/>
</scenario>
"""


def _gate(data: dict[str, object], name: str) -> dict[str, object]:
    health = data["health"]
    assert isinstance(health, dict)
    [gate] = [gate for gate in health["gates"] if gate["name"] == name]
    return gate  # type: ignore[no-any-return]


@needs_sipp
def test_gates_that_hold_leave_the_exit_status_alone(tmp_path: Path, sipp_uas: SippUas) -> None:
    uas = sipp_uas("-sn", "uas", "-i", LOOPBACK)
    summary = tmp_path / "summary.json"
    result = run_gossipper(
        "-sn", "uac", uas.address, "-i", LOOPBACK, "-m", "3", "-r", "10", "-summary_json", str(summary),
        "-health_min_success_ratio", "1", "-health_max_failed_calls", "0", "-health_max_timeouts", "0",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "health gate" not in result.stderr
    data = read_json(summary)
    assert data["health"] == {
        "passed": True,
        "gates": [
            {"name": "min_success_ratio", "limit": 1.0, "value": 1.0, "passed": True},
            {"name": "max_failed_calls", "limit": 0, "value": 0, "passed": True},
            {"name": "max_timeouts", "limit": 0, "value": 0, "passed": True},
        ],
    }


@needs_sipp
def test_a_missed_gate_exits_2_with_one_line_per_gate(tmp_path: Path, sipp_uas: SippUas) -> None:
    """Three calls answered 486: SIPp's status would be 1; the gates asked for make it 2."""
    scenario = tmp_path / "busy.xml"
    scenario.write_text(BUSY_UAS)
    uas = sipp_uas("-sf", str(scenario), "-i", LOOPBACK, cwd=tmp_path)
    summary = tmp_path / "summary.json"
    base = ("-sn", "uac", uas.address, "-i", LOOPBACK, "-m", "3", "-r", "10")
    without = run_gossipper(*base)
    assert without.returncode == 1, without.stderr
    result = run_gossipper(
        *base, "-summary_json", str(summary),
        "-health_max_failed_calls", "1", "-health_min_success_ratio", "0.5", "-health_max_timeouts", "0",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if "health gate" in line]
    assert lines == [
        "gossipper: health gate -health_min_success_ratio failed: success ratio 0, "
        "where at least 0.5 was asked",
        "gossipper: health gate -health_max_failed_calls failed: failed calls 3, where at most 1 was asked",
    ]
    data = read_json(summary)
    assert data["failed_calls"] == 3 and data["health"]["passed"] is False  # type: ignore[index]
    assert _gate(data, "max_failed_calls") == {
        "name": "max_failed_calls",
        "limit": 1,
        "value": 3,
        "passed": False,
    }
    assert _gate(data, "max_timeouts")["passed"] is True


class Echo:
    """A UDP socket that sends each datagram back where it came from (an SBC's RTP echo)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.echoed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            self.sock.sendto(data, source)
            self.echoed += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def _rtp_send(tmp_path: Path, port: int, *gates: str) -> tuple[int, dict[str, object]]:
    summary = tmp_path / f"rtp-{port}.json"
    result = run_gossipper(
        "-rtp_send", "-media_scale", "-rtp_streams", "4", "-rtp_addr", f"{LOOPBACK}:{port}",
        "-rtp_dur", "1000", "-i", LOOPBACK, "-mp", str(free_port()), "-summary_json", str(summary), *gates,
    )  # fmt: skip
    assert "Traceback" not in result.stderr
    return result.returncode, read_json(summary)


def test_the_rtp_packets_gate_passes_when_media_comes_back_and_fails_when_it_does_not(tmp_path: Path) -> None:
    echo = Echo()
    try:
        status, data = _rtp_send(
            tmp_path, echo.port, "-health_min_rtp_packets", "100", "-health_max_late_pct", "100"
        )
    finally:
        echo.close()
    assert status == 0
    received = data["media"]["rtp_packets_received"]  # type: ignore[index]
    assert 100 <= received <= echo.echoed
    assert _gate(data, "min_rtp_packets") == {
        "name": "min_rtp_packets",
        "limit": 100,
        "value": received,
        "passed": True,
    }
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:  # takes the packets, answers none
        sink.bind((LOOPBACK, 0))
        status, data = _rtp_send(tmp_path, sink.getsockname()[1], "-health_min_rtp_packets", "1")
    assert status == 2
    assert _gate(data, "min_rtp_packets")["value"] == 0
