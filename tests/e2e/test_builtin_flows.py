"""The built-ins that exercise scenario features, run against each other on loopback:
regexp (ereg, variables), branchc/branchs (labels, next/test, optional branches) and the
four 3PCC roles (sendCmd/recvCmd over the twin socket)."""

from __future__ import annotations

import socket
from pathlib import Path

from gossipper.cli.ports import LOOPBACK, free_port
from tests.e2e.processes import GossipperUac, GossipperUas, Server, read_json, run_gossipper

COMMON = ("-i", LOOPBACK)


def _server(gossipper_uas: GossipperUas, name: str, calls: int, summary: Path, *extra: str) -> Server:
    return gossipper_uas("-sn", name, "-m", str(calls), *COMMON, "-summary_json", str(summary), *extra)


def _assert_all_succeeded(summary: Path, calls: int) -> dict[str, object]:
    data = read_json(summary)
    assert (data["total_calls"], data["success_calls"], data["failed_calls"]) == (calls, calls, 0), summary
    return data


def test_regexp_client_against_uas(tmp_path: Path, gossipper_uas: GossipperUas) -> None:
    calls = 10
    uas = _server(gossipper_uas, "uas", calls, tmp_path / "uas.json")
    result = run_gossipper(
        "-sn",
        "regexp",
        uas.address,
        "-m",
        str(calls),
        "-r",
        "20",
        *COMMON,
        "-summary_json",
        str(tmp_path / "regexp.json"),
        "-trace_msg",
        "-message_file",
        str(tmp_path / "messages"),
    )
    assert result.returncode == 0, result.stderr
    assert uas.wait(timeout=30) == 0
    data = _assert_all_succeeded(tmp_path / "regexp.json", calls)
    assert set(data["rtd"]) == {"1"}  # type: ignore[arg-type]  # SIPp: rtd="true" is the RTD named 1
    # Each ACK carries what the check_it eregs took out of the 200 OK: gossipper's SDP origin.
    messages = (tmp_path / "messages").read_text()
    assert messages.count("X-Found-Origin-User: gossipper") == calls
    assert messages.count(f"X-Found-Address: {LOOPBACK}:") == calls


def test_branch_client_follows_the_servers_branches(tmp_path: Path, gossipper_uas: GossipperUas) -> None:
    calls = 26
    server = _server(gossipper_uas, "branchs", calls, tmp_path / "branchs.json")
    result = run_gossipper(
        "-sn",
        "branchc",
        server.address,
        "-m",
        str(calls),
        "-r",
        str(calls),
        *COMMON,
        "-summary_json",
        str(tmp_path / "branchc.json"),
    )
    assert result.returncode == 0, result.stderr
    assert server.wait(timeout=30) == 0
    client = _assert_all_succeeded(tmp_path / "branchc.json", calls)
    _assert_all_succeeded(tmp_path / "branchs.json", calls)
    # Callers ua2 and ua20-ua26 are answered and hold 5 s, but ua25 skips the hold; the
    # others are refused with 403 and go straight to the BYE. All end with a 4 s pause.
    call_length = client["call_length"]
    assert isinstance(call_length, dict)
    assert 4000 <= call_length["min_ms"] < 4500 and 9000 <= call_length["max_ms"] < 9500


def test_third_party_call_control(
    tmp_path: Path, gossipper_uas: GossipperUas, gossipper_uac: GossipperUac
) -> None:
    calls = 5
    port_cb, twin = free_port(), free_port()
    twin_address = f"{LOOPBACK}:{twin}"
    a = _server(gossipper_uas, "3pcc-A", calls, tmp_path / "a.json")
    b = _server(gossipper_uas, "3pcc-B", calls, tmp_path / "b.json")
    controller_b = gossipper_uac(
        "-sn",
        "3pcc-C-B",
        b.address,
        "-3pcc",
        twin_address,
        "-p",
        str(port_cb),
        "-m",
        str(calls),
        *COMMON,
        "-summary_json",
        str(tmp_path / "cb.json"),
        bound=twin,
        kind=socket.SOCK_STREAM,
    )
    result = run_gossipper(
        "-sn",
        "3pcc-C-A",
        a.address,
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
    for name in ("a", "b", "cb", "ca"):
        _assert_all_succeeded(tmp_path / f"{name}.json", calls)
