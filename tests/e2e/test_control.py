"""Run control as SIPp users drive it: the UDP control socket and signals."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

from gossipper.cli.ports import LOOPBACK, free_port
from tests.e2e.processes import read_json, start_gossipper, stop, wait_bound


def _pair(tmp_path: Path, *uac_extra: str) -> tuple[subprocess.Popen[str], subprocess.Popen[str], Path]:
    port = free_port()
    uas = start_gossipper("-sn", "uas", "-i", LOOPBACK, "-p", str(port), "-bg")
    wait_bound(port)
    summary = tmp_path / "uac.json"
    uac = start_gossipper(
        "-sn",
        "uac",
        f"{LOOPBACK}:{port}",
        "-i",
        LOOPBACK,
        "-r",
        "5",
        "-bg",
        "-summary_json",
        str(summary),
        *uac_extra,
    )
    return uas, uac, summary


def test_control_socket_changes_rate_and_quits(tmp_path: Path) -> None:
    control_port = free_port()
    uas, uac, summary = _pair(tmp_path, "-cp", str(control_port))
    try:
        wait_bound(control_port)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as control:
            time.sleep(1)
            control.sendto(b"cset rate 100", (LOOPBACK, control_port))
            time.sleep(2)
            control.sendto(b"q", (LOOPBACK, control_port))
        assert uac.wait(timeout=20) == 0
    finally:
        stop(uac)
        stop(uas)
    data = read_json(summary)
    assert data["failed_calls"] == 0
    assert int(data["total_calls"]) >= 100  # 5 cps alone makes about 15


def test_sigusr1_ends_gracefully(tmp_path: Path) -> None:
    uas, uac, summary = _pair(tmp_path)
    try:
        time.sleep(1.5)
        uac.send_signal(signal.SIGUSR1)
        assert uac.wait(timeout=20) == 0
    finally:
        stop(uac)
        stop(uas)
    data = read_json(summary)
    assert data["failed_calls"] == 0 and int(data["total_calls"]) >= 1
    assert data["active_calls"] == 0
