"""gossipper against the real SIPp, both ways, over loopback."""

from __future__ import annotations

from pathlib import Path

from gossipper.cli.ports import LOOPBACK, free_port
from tests.e2e.processes import (
    last_sipp_stat_row,
    needs_sipp,
    read_json,
    run_gossipper,
    start_gossipper,
    start_sipp,
    stop,
    wait_bound,
)

CALLS = 500
RATE = 100


@needs_sipp
def test_gossipper_uac_against_sipp_uas(tmp_path: Path) -> None:
    port = free_port()
    stat_file = tmp_path / "sipp_uas.csv"
    sipp = start_sipp(
        "-sn",
        "uas",
        "-i",
        LOOPBACK,
        "-p",
        str(port),
        "-m",
        str(CALLS),
        "-trace_stat",
        "-stf",
        str(stat_file),
        "-fd",
        "1",
        cwd=tmp_path,
    )
    try:
        wait_bound(port)
        summary = tmp_path / "summary.json"
        result = run_gossipper(
            "-sn",
            "uac",
            f"{LOOPBACK}:{port}",
            "-i",
            LOOPBACK,
            "-m",
            str(CALLS),
            "-r",
            str(RATE),
            "-bg",
            "-summary_json",
            str(summary),
        )
        assert result.returncode == 0, result.stderr
        assert sipp.wait(timeout=30) == 0
    finally:
        stop(sipp)
    data = read_json(summary)
    assert data["total_calls"] == CALLS
    assert data["success_calls"] == CALLS
    assert data["failed_calls"] == 0
    sipp_row = last_sipp_stat_row(stat_file)
    assert int(sipp_row["SuccessfulCall(C)"]) == data["success_calls"]
    assert int(sipp_row["FailedCall(C)"]) == data["failed_calls"]
    assert int(sipp_row["TotalCallCreated"]) == data["total_calls"]


@needs_sipp
def test_sipp_uac_against_gossipper_uas(tmp_path: Path) -> None:
    port = free_port()
    summary = tmp_path / "uas.json"
    uas = start_gossipper(
        "-sn", "uas", "-i", LOOPBACK, "-p", str(port), "-m", str(CALLS), "-bg", "-summary_json", str(summary)
    )
    try:
        wait_bound(port)
        stat_file = tmp_path / "sipp_uac.csv"
        sipp = start_sipp(
            "-sn",
            "uac",
            f"{LOOPBACK}:{port}",
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
    finally:
        stop(uas)
    row = last_sipp_stat_row(stat_file)
    assert int(row["FailedCall(C)"]) == 0
    assert int(row["SuccessfulCall(C)"]) == CALLS
    data = read_json(summary)
    assert data["success_calls"] == CALLS
