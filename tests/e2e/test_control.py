"""Run control as SIPp users drive it: the UDP control socket and signals."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

from gossipper.cli.ports import LOOPBACK, free_port
from tests.e2e.processes import GossipperUac, GossipperUas, SippUas, needs_sipp, read_json


def _uac(
    tmp_path: Path,
    gossipper_uas: GossipperUas,
    gossipper_uac: GossipperUac,
    *uac_extra: str,
    bound: int | None = None,
) -> tuple[subprocess.Popen[str], Path]:
    """A UAC calling a gossipper UAS at 5 cps, in the background; where its summary goes."""
    uas = gossipper_uas("-sn", "uas", "-i", LOOPBACK)
    summary = tmp_path / "uac.json"
    uac = gossipper_uac(
        "-sn",
        "uac",
        uas.address,
        "-i",
        LOOPBACK,
        "-r",
        "5",
        "-summary_json",
        str(summary),
        *uac_extra,
        bound=bound,
    )
    return uac, summary


def test_control_socket_changes_rate_and_quits(
    tmp_path: Path, gossipper_uas: GossipperUas, gossipper_uac: GossipperUac
) -> None:
    control_port = free_port()
    uac, summary = _uac(tmp_path, gossipper_uas, gossipper_uac, "-cp", str(control_port), bound=control_port)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as control:
        time.sleep(1)
        control.sendto(b"cset rate 100", (LOOPBACK, control_port))
        time.sleep(2)
        control.sendto(b"q", (LOOPBACK, control_port))
    assert uac.wait(timeout=20) == 0
    data = read_json(summary)
    assert data["failed_calls"] == 0
    assert int(data["total_calls"]) >= 100  # 5 cps alone makes about 15


def test_absurd_control_rates_are_refused_and_calls_go_on(
    tmp_path: Path, gossipper_uas: GossipperUas, gossipper_uac: GossipperUac
) -> None:
    """Issue #14 item 3: 'cset rate inf', 'nan', '1e9' or '-1' change nothing and raise nothing;
    the run keeps making calls at its rate and quits cleanly, its summary written."""
    control_port = free_port()
    uac, summary = _uac(tmp_path, gossipper_uas, gossipper_uac, "-cp", str(control_port), bound=control_port)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as control:
        time.sleep(1)
        for value in (b"inf", b"nan", b"1e9", b"-1"):
            control.sendto(b"cset rate " + value, (LOOPBACK, control_port))
        time.sleep(2)
        control.sendto(b"q", (LOOPBACK, control_port))
    assert uac.wait(timeout=20) == 0
    data = read_json(summary)
    assert data["failed_calls"] == 0 and 5 <= int(data["total_calls"]) <= 40  # still about 5 cps


def test_sigusr1_ends_gracefully(
    tmp_path: Path, gossipper_uas: GossipperUas, gossipper_uac: GossipperUac
) -> None:
    uac, summary = _uac(tmp_path, gossipper_uas, gossipper_uac)
    time.sleep(1.5)
    uac.send_signal(signal.SIGUSR1)
    assert uac.wait(timeout=20) == 0
    data = read_json(summary)
    assert data["failed_calls"] == 0 and int(data["total_calls"]) >= 1
    assert data["active_calls"] == 0


@needs_sipp
def test_sigint_and_sigterm_are_honoured_at_once_under_overload(
    tmp_path: Path, sipp_uas: SippUas, gossipper_uac: GossipperUac
) -> None:
    """Offered far more than one core carries (the governor caps creation, the loop is
    saturated), a signal still ends the run at once, with the summary written; the
    calls still live are counted as such, as SIPp's sipp_exit leaves them."""
    uas = sipp_uas("-sn", "uas", "-i", LOOPBACK)
    for signum in (signal.SIGINT, signal.SIGTERM):
        summary = tmp_path / f"uac-{signum}.json"
        command = ["-sn", "uac", uas.address, "-i", LOOPBACK, "-r", "40000", "-l", "40000", "-m", "1000000"]
        uac = gossipper_uac(*command, "-summary_json", str(summary))
        time.sleep(2.5)
        signalled = time.monotonic()
        uac.send_signal(signum)
        uac.wait(timeout=30)
        assert time.monotonic() - signalled < 3.0  # measured ~0.07 s; generous for a loaded CI host
        data = read_json(summary)
        total = int(str(data["total_calls"]))
        assert total > 1000
        assert sum(int(str(data[key])) for key in ("success_calls", "failed_calls", "active_calls")) == total
