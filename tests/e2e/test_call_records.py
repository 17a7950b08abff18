"""-call_records on real runs against SIPp: one JSON line per ended call, each saying what the
call sent and received step by step, and the lines agreeing with the summary's totals."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from gossipper.cli.ports import LOOPBACK
from tests.e2e.processes import SIPP, GossipperUas, SippUas, needs_sipp, read_json, run_gossipper
from tests.e2e.test_output_files import REJECTING_UAS

CALLS = 20


def _records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _events(record: dict[str, object]) -> list[tuple[int, str, str]]:
    """(step, sent/received/unexpected, method or status) of each event of the record."""
    sip = record["sip"]
    assert isinstance(sip, list)
    return [
        next(
            (event["step"], kind, event[kind]) for kind in ("sent", "received", "unexpected") if kind in event
        )
        for event in sip
    ]


@needs_sipp
def test_each_uac_call_is_one_line_with_its_messages_and_response_time(
    tmp_path: Path, sipp_uas: SippUas
) -> None:
    uas = sipp_uas("-sn", "uas", "-i", LOOPBACK)
    records_path, summary = tmp_path / "calls.jsonl", tmp_path / "summary.json"
    result = run_gossipper(
        "-sn", "uac", uas.address, "-i", LOOPBACK, "-m", str(CALLS), "-r", "50",
        "-call_records", str(records_path), "-summary_json", str(summary),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = _records(records_path)
    data = read_json(summary)
    assert len(records) == CALLS == data["success_calls"]
    assert sorted(record["call"] for record in records) == list(range(1, CALLS + 1))  # type: ignore[type-var]
    assert len({record["call_id"] for record in records}) == CALLS
    for record in records:
        assert (record["side"], record["outcome"], record["failure_class"]) == ("uac", "success", None)
        sip = record["sip"]
        assert isinstance(sip, list)
        # SIPp's uas sends no 100 (step 1) and no 183 (step 3); step 6 is the pause
        expected = [(0, "sent", "INVITE"), (2, "received", "180"), (4, "received", "200")]
        assert _events(record) == [*expected, (5, "sent", "ACK"), (7, "sent", "BYE"), (8, "received", "200")]
        times = [event["at_ms"] for event in sip]
        assert times == sorted(times) and times[0] >= 0
        invite_ms = record["response_times_ms"]["invite"]  # type: ignore[index]
        assert 0 <= invite_ms <= sip[2]["at_ms"]
        assert record["duration_ms"] >= sip[-1]["at_ms"]
        assert record["start"] <= record["end"]  # type: ignore[operator]
    invite_rtt = data["invite_rtt"]
    assert isinstance(invite_rtt, dict)
    assert invite_rtt["count"] == CALLS


@needs_sipp
def test_failed_calls_carry_their_class_and_the_unexpected_answer(tmp_path: Path, sipp_uas: SippUas) -> None:
    scenario = tmp_path / "rejecting.xml"
    scenario.write_text(REJECTING_UAS)
    uas = sipp_uas("-sf", str(scenario), "-i", LOOPBACK, cwd=tmp_path)
    records_path, summary = tmp_path / "calls.jsonl", tmp_path / "summary.json"
    result = run_gossipper(
        "-sn", "uac", uas.address, "-i", LOOPBACK, "-m", "3", "-r", "10",
        "-call_records", str(records_path), "-summary_json", str(summary),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    records = _records(records_path)
    failure_classes = read_json(summary)["failure_classes"]
    assert isinstance(failure_classes, dict)
    assert len(records) == 3 == failure_classes["unexpected_sip"]
    for record in records:
        assert (record["outcome"], record["failure_class"]) == ("failed", "unexpected_sip")
        assert "480" in str(record["reason"])
        assert record["sip"][-1]["unexpected"] == "480"  # type: ignore[index]


@needs_sipp
def test_a_uas_records_the_calls_sipp_made(tmp_path: Path, gossipper_uas: GossipperUas) -> None:
    assert SIPP is not None
    records_path = tmp_path / "calls.jsonl"
    uas = gossipper_uas("-sn", "uas", "-i", LOOPBACK, "-m", "5", "-call_records", str(records_path))
    subprocess.run(
        [SIPP, "-sn", "uac", uas.address, "-i", LOOPBACK, "-m", "5", "-r", "10", "-nostdin"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=90, check=False,
    )  # fmt: skip
    assert uas.wait(timeout=60) == 0
    records = _records(records_path)
    assert len(records) == 5
    for record in records:
        assert (record["side"], record["outcome"]) == ("uas", "success")
        assert [what for _, _, what in _events(record)] == ["INVITE", "180", "200", "ACK", "BYE", "200"]
