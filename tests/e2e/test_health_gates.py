"""CI health gates on real runs: SIPp's UAS as the peer for the call gates, an echo socket
for the RTP ones. A missed gate makes the exit status 2, says so in one line per gate, and
shows in the summary JSON beside the figure it judged."""

from __future__ import annotations

import socket
from pathlib import Path

from gossipper.cli.ports import LOOPBACK, free_port, free_ports_below_ephemeral
from tests.e2e.processes import SippUas, needs_sipp, read_json, run_gossipper
from tests.e2e.test_output_files import REJECTING_UAS
from tests.media.scale.echo_peer import ImpairingEcho, Impairment, clean, delay_every_other, drop_every_10th
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


STREAMS = 4


def _impaired_run(
    tmp_path: Path, impairment: Impairment, *gates: str
) -> tuple[int, dict[str, object], ImpairingEcho]:
    """-rtp_send's streams echoed by a peer that impairs every one of them the same way."""
    base = free_ports_below_ephemeral(2 * STREAMS)
    echo = ImpairingEcho({base + 2 * index: impairment for index in range(STREAMS)})
    summary = tmp_path / f"impaired-{base}.json"
    try:
        result = run_gossipper(
            "-rtp_send", "-media_scale", "-rtp_streams", str(STREAMS), "-rtp_addr", f"{LOOPBACK}:{echo.port}",
            "-rtp_dur", "2000", "-i", LOOPBACK, "-mp", str(base), "-summary_json", str(summary), *gates,
        )  # fmt: skip
    finally:
        echo.close()
    assert "Traceback" not in result.stderr
    return result.returncode, read_json(summary), echo


def test_the_loss_and_mos_gates_judge_what_the_echo_dropped(tmp_path: Path) -> None:
    """Every 10th packet dropped on the way back: the loss gate reads 10% (within a point)
    and fails a 5% limit, the MOS gate fails 4.0, while a clean echo passes both."""
    gates = ("-health_max_rtp_loss_pct", "5", "-health_min_mos", "4.0")
    status, data, echo = _impaired_run(tmp_path, drop_every_10th, *gates)
    dropped = sum(done.dropped for done in echo.done.values())
    seen = sum(done.seen for done in echo.done.values())
    assert status == 2
    loss, mos = _gate(data, "max_rtp_loss_pct"), _gate(data, "min_mos")
    assert abs(float(loss["value"]) - 100.0 * dropped / seen) < 1.0, (loss, dropped, seen)  # type: ignore[arg-type]
    assert not loss["passed"] and not mos["passed"] and 1.0 < float(mos["value"]) < 4.0  # type: ignore[arg-type]
    status, data, _ = _impaired_run(tmp_path, clean, *gates)
    assert status == 0, data["health"]
    assert float(_gate(data, "max_rtp_loss_pct")["value"]) < 0.5  # type: ignore[arg-type]
    assert float(_gate(data, "min_mos")["value"]) >= 4.3  # type: ignore[arg-type]


def test_the_jitter_gate_judges_what_the_echo_delayed(tmp_path: Path) -> None:
    """Every other packet held 12 ms: the streams' mean jitter is about 12 ms (RFC 3550's
    estimate converges on the alternating delay), past a 5 ms limit and within 30."""
    status, data, _ = _impaired_run(tmp_path, delay_every_other, "-health_max_jitter_ms", "5")
    jitter = _gate(data, "max_jitter_ms")
    assert status == 2 and 8.0 < float(jitter["value"]) < 16.0, jitter  # type: ignore[arg-type]
    status, data, _ = _impaired_run(tmp_path, delay_every_other, "-health_max_jitter_ms", "30")
    assert status == 0, data["health"]


def test_the_timeouts_gate_counts_calls_nobody_answered(tmp_path: Path) -> None:
    """Two calls toward a port where nobody answers run out of retransmissions: two timeouts,
    over a limit of one."""
    summary = tmp_path / "silent.json"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # takes the INVITEs, answers none
        silent.bind((LOOPBACK, 0))
        result = run_gossipper(
            "-sn", "uac", f"{LOOPBACK}:{silent.getsockname()[1]}", "-i", LOOPBACK, "-m", "2", "-r", "10",
            "-max_retrans", "1", "-summary_json", str(summary), "-health_max_timeouts", "1",
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    data = read_json(summary)
    assert data["timeouts"] == 2
    assert _gate(data, "max_timeouts") == {"name": "max_timeouts", "limit": 1, "value": 2, "passed": False}
