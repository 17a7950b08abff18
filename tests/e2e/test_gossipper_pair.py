"""gossipper's UAC against gossipper's UAS over every transport."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from gossipper.cli.ports import LOOPBACK
from tests.e2e.processes import GossipperUas, read_json, run_gossipper

CALLS = 60


@pytest.mark.parametrize("transport", ["u1", "un", "t1", "tn"])
def test_uac_to_uas(transport: str, tmp_path: Path, gossipper_uas: GossipperUas) -> None:
    kind = socket.SOCK_STREAM if transport.startswith("t") else socket.SOCK_DGRAM
    uas_summary = tmp_path / "uas.json"
    uas = gossipper_uas(
        "-sn",
        "uas",
        "-i",
        LOOPBACK,
        "-t",
        transport,
        "-m",
        str(CALLS),
        "-summary_json",
        str(uas_summary),
        kind=kind,
    )
    summary = tmp_path / "uac.json"
    result = run_gossipper(
        "-sn",
        "uac",
        uas.address,
        "-i",
        LOOPBACK,
        "-t",
        transport,
        "-m",
        str(CALLS),
        "-r",
        "50",
        "-summary_json",
        str(summary),
    )
    assert result.returncode == 0, result.stderr
    assert uas.wait(timeout=30) == 0
    for path in (summary, uas_summary):
        data = read_json(path)
        assert data["success_calls"] == CALLS, path
        assert data["failed_calls"] == 0, path
