"""Signalling as SIPp does it, checked against the real SIPp: -rsa, digest authentication
with -inf users, the built-ins in both directions, -sd output SIPp loads, and 3PCC."""

from __future__ import annotations

import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from gossipper.cli.ports import LOOPBACK, free_port, free_ports_below_ephemeral
from tests.e2e.processes import (
    SIPP,
    Processes,
    SippUas,
    gossipper_command,
    last_sipp_stat_row,
    needs_sipp,
    read_json,
    run_gossipper,
    wait_bound,
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


# ---------------------------------------------------------------- built-ins, message for message


def sipp_flow(message_log: Path) -> Counter[str]:
    """What one SIPp side sent and received, from its -trace_msg log: "sent INVITE",
    "received 200 INVITE" (a response with its CSeq method), each with how often."""
    flow: Counter[str] = Counter()
    for block in message_log.read_text(errors="replace").split(
        "-----------------------------------------------"
    )[1:]:
        lines = block.strip().splitlines()
        direction = "received" if "message received" in lines[1] else "sent"
        start = lines[3].split()
        if start[0].startswith("SIP/"):
            cseq = next(line for line in lines if line.lower().startswith("cseq:")).split()
            flow[f"{direction} {start[1]} {cseq[-1]}"] += 1
        else:
            flow[f"{direction} {start[0]}"] += 1
    return flow


@dataclass(frozen=True)
class Side:
    """One end of a run: which program, and its scenario flags (-sn NAME or -sf FILE)."""

    program: str  # "sipp" or "gossipper"
    scenario: tuple[str, ...]


def _command(side: Side, run_dir: Path, role: str, port: int, extra: tuple[str, ...]) -> list[str]:
    common = ("-i", LOOPBACK, "-p", str(port), *extra)
    if side.program == "sipp":
        assert SIPP is not None
        trace = ("-trace_msg", "-message_file", str(run_dir / f"{role}.log"))
        return [SIPP, *side.scenario, *common, *trace, "-nostdin"]
    summary = ("-summary_json", str(run_dir / f"{role}.json"), "-bg")
    # SIPp holds media ports from 6000 up on this host: gossipper's media goes elsewhere.
    media = ("-mp", str(free_ports_below_ephemeral(16)))
    return gossipper_command(*side.scenario, *common, *summary, *media, "-nostdin")


def run_pair(
    processes: Processes,
    run_dir: Path,
    client: Side,
    server: Side,
    calls: int,
    client_extra: tuple[str, ...] = (),
    server_extra: tuple[str, ...] = (),
) -> dict[str, Counter[str]]:
    """The client placing `calls` calls at `calls` per second toward the server, both run from
    run_dir (where a scenario's relative pcap paths resolve); both must exit 0. The flow of
    each SIPp side, by role."""
    run_dir.mkdir()
    (run_dir / "pcap").symlink_to("/usr/share/sip-tester")
    server_port, client_port = free_port(), free_port()
    limits = ("-m", str(calls))
    server_process = processes.start(
        _command(server, run_dir, "server", server_port, (*limits, *server_extra)),
        stdout=subprocess.DEVNULL,
        cwd=run_dir,
    )
    wait_bound(server_port, process=server_process)
    client_process = processes.start(
        _command(
            client, run_dir, "client", client_port,
            (f"{LOOPBACK}:{server_port}", *limits, "-r", str(calls), *client_extra),
        ),
        stdout=subprocess.DEVNULL,
        cwd=run_dir,
    )  # fmt: skip
    for role, process in (("client", client_process), ("server", server_process)):
        assert process.wait(timeout=90) == 0, (
            f"{role}: {process.args} {process.stderr and process.stderr.read()}"
        )
    flows = {}
    for role, side in (("client", client), ("server", server)):
        if side.program == "sipp":
            flows[role] = sipp_flow(run_dir / f"{role}.log")
        else:
            assert _summary_counts(run_dir / f"{role}.json") == (calls, 0)
    return flows


def _dumped(name: str, directory: Path) -> tuple[str, ...]:
    """-sf FILE with what `gossipper sipp -sd NAME` prints."""
    path = directory / f"{name}.xml"
    result = subprocess.run(gossipper_command("-sd", name), capture_output=True, text=True, check=True)
    path.write_text(result.stdout)
    return ("-sf", str(path))


# (client, server, calls): calls 2 and 20-26 of branchc are answered, 25 skipping the hold;
# every other branchc caller gets the 403. uac_pcap replays the pcaps Debian ships with SIPp.
BUILTIN_PAIRS = [
    ("uac", "uas", 10),
    ("regexp", "uas", 5),
    ("branchc", "branchs", 26),
    ("uac_pcap", "uas", 2),
]


@needs_sipp
@pytest.mark.parametrize(("client", "server", "calls"), BUILTIN_PAIRS)
def test_builtins_follow_sipps_flow_both_ways(
    tmp_path: Path, processes: Processes, client: str, server: str, calls: int
) -> None:
    """SIPp's own pair is the reference. gossipper's client toward SIPp's server, and SIPp's
    client toward gossipper's server, put the same messages on the wire as SIPp's side saw
    there; and SIPp runs what gossipper's -sd prints for both roles, again message for message."""
    reference = run_pair(
        processes, tmp_path / "sipp", Side("sipp", ("-sn", client)), Side("sipp", ("-sn", server)), calls
    )
    assert reference["client"] and reference["server"]
    toward_sipp = run_pair(
        processes, tmp_path / "g2s", Side("gossipper", ("-sn", client)), Side("sipp", ("-sn", server)), calls
    )
    assert toward_sipp["server"] == reference["server"]
    from_sipp = run_pair(
        processes, tmp_path / "s2g", Side("sipp", ("-sn", client)), Side("gossipper", ("-sn", server)), calls
    )
    assert from_sipp["client"] == reference["client"]
    dumped = run_pair(
        processes,
        tmp_path / "dumped",
        Side("sipp", _dumped(client, tmp_path)),
        Side("sipp", _dumped(server, tmp_path)),
        calls,
    )
    assert dumped == reference
