"""The built-ins that exercise scenario features, run against each other on loopback:
regexp (ereg, variables), branchc/branchs (labels, next/test, optional branches) and the
four 3PCC roles (sendCmd/recvCmd over the twin socket)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from gossipper.cli.ports import LOOPBACK, free_port
from tests.e2e.processes import read_json, run_gossipper, start_gossipper, stop, wait_bound

COMMON = ("-i", LOOPBACK, "-bg")


def _server(name: str, port: int, calls: int, summary: Path, *extra: str) -> subprocess.Popen[str]:
    process = start_gossipper(
        "-sn", name, "-p", str(port), "-m", str(calls), *COMMON, "-summary_json", str(summary), *extra
    )
    wait_bound(port)
    return process


def _assert_all_succeeded(summary: Path, calls: int) -> dict[str, object]:
    data = read_json(summary)
    assert (data["total_calls"], data["success_calls"], data["failed_calls"]) == (calls, calls, 0), summary
    return data


def test_regexp_client_against_uas(tmp_path: Path) -> None:
    port, calls = free_port(), 10
    uas = _server("uas", port, calls, tmp_path / "uas.json")
    try:
        result = run_gossipper(
            "-sn",
            "regexp",
            f"{LOOPBACK}:{port}",
            "-m",
            str(calls),
            "-r",
            "20",
            *COMMON,
            "-summary_json",
            str(tmp_path / "regexp.json"),
            "-trace_logs",
            "-log_file",
            str(tmp_path / "log"),
        )
        assert result.returncode == 0, result.stderr
        assert uas.wait(timeout=30) == 0
    finally:
        stop(uas)
    data = _assert_all_succeeded(tmp_path / "regexp.json", calls)
    assert set(data["rtd"]) == {"invite", "bye"}  # type: ignore[arg-type]
    log = (tmp_path / "log").read_text()
    assert log.count("200 OK with To tag ") == calls and "branch z9hG4bK" in log


def test_branch_client_follows_the_servers_branches(tmp_path: Path) -> None:
    port, calls = free_port(), 20
    server = _server("branchs", port, calls, tmp_path / "branchs.json")
    try:
        result = run_gossipper(
            "-sn",
            "branchc",
            f"{LOOPBACK}:{port}",
            "-m",
            str(calls),
            "-r",
            "20",
            *COMMON,
            "-summary_json",
            str(tmp_path / "branchc.json"),
        )
        assert result.returncode == 0, result.stderr
        assert server.wait(timeout=30) == 0
    finally:
        stop(server)
    client = _assert_all_succeeded(tmp_path / "branchc.json", calls)
    _assert_all_succeeded(tmp_path / "branchs.json", calls)
    # Calls 10 and 20 are rejected (user ends in 0) and skip the 2 s hold.
    call_length = client["call_length"]
    assert isinstance(call_length, dict)
    assert call_length["min_ms"] < 500 <= 1500 < call_length["max_ms"]


def test_third_party_call_control(tmp_path: Path) -> None:
    calls = 5
    port_a, port_b, port_cb, twin = free_port(), free_port(), free_port(), free_port()
    twin_address = f"{LOOPBACK}:{twin}"
    a = _server("3pcc-A", port_a, calls, tmp_path / "a.json")
    b = _server("3pcc-B", port_b, calls, tmp_path / "b.json")
    controller_b = start_gossipper(
        "-sn",
        "3pcc-C-B",
        f"{LOOPBACK}:{port_b}",
        "-3pcc",
        twin_address,
        "-p",
        str(port_cb),
        "-m",
        str(calls),
        *COMMON,
        "-summary_json",
        str(tmp_path / "cb.json"),
    )
    try:
        wait_bound(twin, kind=socket.SOCK_STREAM)
        result = run_gossipper(
            "-sn",
            "3pcc-C-A",
            f"{LOOPBACK}:{port_a}",
            "-3pcc",
            twin_address,
            "-m",
            str(calls),
            "-r",
            "5",
            *COMMON,
            "-summary_json",
            str(tmp_path / "ca.json"),
        )
        assert result.returncode == 0, result.stderr
        for process in (controller_b, a, b):
            assert process.wait(timeout=30) == 0
    finally:
        for process in (controller_b, a, b):
            stop(process)
    for name in ("a", "b", "cb", "ca"):
        _assert_all_succeeded(tmp_path / f"{name}.json", calls)
