"""Signalling as SIPp does it, checked against the real SIPp: -rsa, digest authentication
with -inf users, the built-ins in both directions, -sd output SIPp loads, and 3PCC."""

from __future__ import annotations

import socket
from pathlib import Path

from gossipper.cli.ports import LOOPBACK, free_port
from tests.e2e.processes import (
    GossipperUac,
    GossipperUas,
    SippUac,
    SippUas,
    last_sipp_stat_row,
    needs_sipp,
    read_json,
    run_gossipper,
)

# The SIPp-side scenarios below answer with these lines; [last_*] echo the request's headers.
_ECHOED = """      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]peer[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>"""


def _response(status: str, extra: str = "", retrans: bool = False) -> str:
    attributes = ' retrans="500"' if retrans else ""
    return f"""  <send{attributes}>
    <![CDATA[
      SIP/2.0 {status}
{_ECHOED}
{extra}      Content-Length: 0
    ]]>
  </send>
"""


def _sipp_uas_scenario(path: Path, invite_actions: str = "") -> Path:
    """A plain SIPp UAS (INVITE, 200, ACK, BYE, 200), with actions on the INVITE."""
    path.write_text(
        f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="checking uas">
  <recv request="INVITE"><action>{invite_actions}</action></recv>
{_response("200 OK", retrans=True)}  <recv request="ACK"/>
  <recv request="BYE"/>
{_response("200 OK")}</scenario>
"""
    )
    return path


def _sipp_counts(stat_file: Path) -> tuple[int, int]:
    row = last_sipp_stat_row(stat_file)
    return int(row["SuccessfulCall(C)"]), int(row["FailedCall(C)"])


def _summary_counts(summary: Path) -> tuple[int, int]:
    data = read_json(summary)
    return int(str(data["success_calls"])), int(str(data["failed_calls"]))


@needs_sipp
def test_rsa_moves_packets_but_not_the_request_uri(tmp_path: Path, sipp_uas: SippUas) -> None:
    """-rsa sends to SIPp's port while [remote_ip]:[remote_port] keep naming the positional host
    (an unused port): SIPp checks the INVITE's Request-URI and To and fails the call otherwise."""
    named_port = free_port()
    checks = (
        f'<ereg regexp="^INVITE sip:service@127\\.0\\.0\\.1:{named_port} SIP/2\\.0" search_in="msg" '
        'check_it="true" assign_to="uri"/>'
        f'<ereg regexp="127\\.0\\.0\\.1:{named_port}" search_in="hdr" header="To:" check_it="true" '
        'assign_to="to"/><log message="[$uri] [$to]"/>'  # SIPp refuses a variable never read
    )
    stat_file = tmp_path / "uas.csv"
    scenario = _sipp_uas_scenario(tmp_path / "uas.xml", checks)
    sipp = sipp_uas(
        "-sf", str(scenario), "-i", LOOPBACK, "-m", "3", "-trace_stat", "-stf", str(stat_file), cwd=tmp_path
    )
    summary = tmp_path / "uac.json"
    result = run_gossipper(
        "-sn", "uac", f"{LOOPBACK}:{named_port}", "-rsa", sipp.address, "-i", LOOPBACK,
        "-m", "3", "-r", "10", "-bg", "-summary_json", str(summary),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sipp.wait(timeout=30) == 0
    assert _summary_counts(summary) == (3, 0)
    assert _sipp_counts(stat_file) == (3, 0)
