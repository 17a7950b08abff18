"""CI health gates on real runs: SIPp's UAS as the peer for the call gates, an echo socket
for the RTP ones. A missed gate makes the exit status 2, says so in one line per gate, and
shows in the summary JSON beside the figure it judged."""

from __future__ import annotations

import socket
from pathlib import Path

from gossipper.cli.ports import LOOPBACK, free_port
from tests.e2e.processes import SippUas, needs_sipp, read_json, run_gossipper
from tests.e2e.test_output_files import REJECTING_UAS
from tests.udp_echo import UdpEcho


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
    """Three calls answered 480: SIPp's status would be 1; the gates asked for make it 2."""
    scenario = tmp_path / "rejecting.xml"
    scenario.write_text(REJECTING_UAS)
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


def _rtp_send(tmp_path: Path, port: int, *gates: str) -> tuple[int, dict[str, object]]:
    summary = tmp_path / f"rtp-{port}.json"
    result = run_gossipper(
        "-rtp_send", "-media_scale", "-rtp_streams", "4", "-rtp_addr", f"{LOOPBACK}:{port}",
        "-rtp_dur", "1000", "-i", LOOPBACK, "-mp", str(free_port()), "-summary_json", str(summary), *gates,
    )  # fmt: skip
    assert "Traceback" not in result.stderr
    return result.returncode, read_json(summary)


def test_the_rtp_packets_gate_passes_when_media_comes_back_and_fails_when_it_does_not(tmp_path: Path) -> None:
    echo = UdpEcho()
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
