"""gossipper's UAC against gossipper's UAS over every transport."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from gossipper.cli.ports import LOOPBACK, free_port
from tests.e2e.processes import read_json, run_gossipper, start_gossipper, stop, wait_bound

CALLS = 60


@pytest.mark.parametrize("transport", ["u1", "un", "t1", "tn"])
def test_uac_to_uas(transport: str, tmp_path: Path) -> None:
    kind = socket.SOCK_STREAM if transport.startswith("t") else socket.SOCK_DGRAM
    port = free_port()
    uas_summary = tmp_path / "uas.json"
    uas = start_gossipper(
        "-sn",
        "uas",
        "-i",
        LOOPBACK,
        "-p",
        str(port),
        "-t",
        transport,
        "-m",
        str(CALLS),
        "-bg",
        "-summary_json",
        str(uas_summary),
    )
    try:
        wait_bound(port, kind)
        summary = tmp_path / "uac.json"
        result = run_gossipper(
            "-sn",
            "uac",
            f"{LOOPBACK}:{port}",
            "-i",
            LOOPBACK,
            "-t",
            transport,
            "-m",
            str(CALLS),
            "-r",
            "50",
            "-bg",
            "-summary_json",
            str(summary),
        )
        assert result.returncode == 0, result.stderr
        assert uas.wait(timeout=30) == 0
    finally:
        stop(uas)
    for path in (summary, uas_summary):
        data = read_json(path)
        assert data["success_calls"] == CALLS, path
        assert data["failed_calls"] == 0, path
