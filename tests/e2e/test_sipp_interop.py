"""gossipper against the real SIPp, both ways, over loopback."""

from __future__ import annotations

from pathlib import Path

from gossipper.cli.ports import LOOPBACK
from tests.e2e.processes import (
    GossipperUas,
    SippUac,
    SippUas,
    last_sipp_stat_row,
    needs_sipp,
    read_json,
    run_gossipper,
)

CALLS = 500
RATE = 100


@needs_sipp
def test_gossipper_uac_against_sipp_uas(tmp_path: Path, sipp_uas: SippUas) -> None:
    stat_file = tmp_path / "sipp_uas.csv"
    sipp = sipp_uas(
        "-sn",
        "uas",
        "-i",
        LOOPBACK,
        "-m",
        str(CALLS),
        "-trace_stat",
        "-stf",
        str(stat_file),
        "-fd",
        "1",
        cwd=tmp_path,
    )
    summary = tmp_path / "summary.json"
    result = run_gossipper(
        "-sn",
        "uac",
        sipp.address,
        "-i",
        LOOPBACK,
        "-m",
        str(CALLS),
        "-r",
        str(RATE),
        "-summary_json",
        str(summary),
    )
    assert result.returncode == 0, result.stderr
    assert sipp.wait(timeout=30) == 0
    data = read_json(summary)
    assert data["total_calls"] == CALLS
    assert data["success_calls"] == CALLS
    assert data["failed_calls"] == 0
    sipp_row = last_sipp_stat_row(stat_file)
    assert int(sipp_row["SuccessfulCall(C)"]) == data["success_calls"]
    assert int(sipp_row["FailedCall(C)"]) == data["failed_calls"]
    assert int(sipp_row["TotalCallCreated"]) == data["total_calls"]


@needs_sipp
def test_sipp_uac_against_gossipper_uas(
    tmp_path: Path, gossipper_uas: GossipperUas, sipp_uac: SippUac
) -> None:
    summary = tmp_path / "uas.json"
    uas = gossipper_uas("-sn", "uas", "-i", LOOPBACK, "-m", str(CALLS), "-summary_json", str(summary))
    stat_file = tmp_path / "sipp_uac.csv"
    sipp = sipp_uac(
        "-sn",
        "uac",
        uas.address,
        "-i",
        LOOPBACK,
        "-m",
        str(CALLS),
        "-r",
        str(RATE),
        "-trace_stat",
        "-stf",
        str(stat_file),
        "-fd",
        "1",
        cwd=tmp_path,
    )
    assert sipp.wait(timeout=60) == 0, sipp.stderr.read() if sipp.stderr else ""
    assert uas.wait(timeout=30) == 0
    row = last_sipp_stat_row(stat_file)
    assert int(row["FailedCall(C)"]) == 0
    assert int(row["SuccessfulCall(C)"]) == CALLS
    data = read_json(summary)
    assert data["success_calls"] == CALLS
