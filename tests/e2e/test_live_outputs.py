"""-metrics_addr and -stats_jsonl on real runs: Prometheus' view scraped over HTTP while the
calls (against SIPp's uas) or the standalone streams run, read with prometheus_client's
parser, and the JSONL rows added up against the final -summary_json."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gossipper.cli.ports import LOOPBACK, free_port, free_ports_below_ephemeral
from tests.e2e.processes import (
    GossipperUac,
    SippUas,
    gossipper_command,
    needs_sipp,
    read_json,
    run_gossipper,
    stop,
)


def _scrape(port: int, timeout: float = 15.0) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """sample name -> labels -> value, from the first answer of the endpoint."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/metrics", timeout=5) as response:
                text = response.read().decode()
            break
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def _total(samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str) -> float:
    return samples[name][()]


def _rows(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _refused(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((LOOPBACK, port)) != 0


@needs_sipp
def test_sip_run_is_scraped_live_and_its_rows_add_up_to_the_summary(
    tmp_path: Path, sipp_uas: SippUas, gossipper_uac: GossipperUac
) -> None:
    uas = sipp_uas("-sn", "uas", "-i", LOOPBACK)
    metrics_port = free_port()
    rows_path, summary_path = tmp_path / "rows.jsonl", tmp_path / "summary.json"
    uac = gossipper_uac(
        "-sn", "uac", uas.address, "-i", LOOPBACK, "-p", str(free_port()), "-m", "60", "-r", "20",
        "-metrics_addr", str(metrics_port), "-stats_jsonl", str(rows_path), "-fd", "1",
        "-summary_json", str(summary_path),
    )  # fmt: skip
    first = _scrape(metrics_port)
    time.sleep(1.5)
    second = _scrape(metrics_port)
    assert uac.wait(timeout=60) == 0, uac.stderr.read() if uac.stderr else ""
    created = "gossipper_calls_created_total"
    assert 0 < _total(first, created) < _total(second, created) <= 60
    assert _total(second, "gossipper_target_call_rate_per_second") == 20
    assert _total(second, "gossipper_invite_response_seconds_count") > 0
    assert _total(second, "gossipper_sip_messages_sent_total") >= _total(second, created)
    timeouts = second["gossipper_calls_failed_total"][(("class", "timeout"),)]
    assert timeouts == 0
    assert _refused(metrics_port)  # the endpoint ends with the run

    summary = read_json(summary_path)
    rows = _rows(rows_path)
    assert len(rows) >= 2
    assert sum(int(row["calls_created"]) for row in rows) == summary["total_calls"] == 60
    assert sum(int(row["calls_succeeded"]) for row in rows) == summary["success_calls"]
    assert rows[-1]["calls_created_total"] == 60
    assert all(0 < float(row["period_s"]) <= 2.5 for row in rows[:-1])
    assert any(row["invite_rtt_p50_ms"] is not None for row in rows)
    assert all(18 <= float(row["offered_cps"]) <= 20 for row in rows)


def test_standalone_streams_are_scraped_live_and_rows_add_up(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind((LOOPBACK, 0))
        metrics_port, media_port = free_port(), free_ports_below_ephemeral(20)
        rows_path, summary_path = tmp_path / "rows.jsonl", tmp_path / "summary.json"
        command = gossipper_command(
            "-rtp_send", "-media_scale", "-rtp_streams", "10", "-rtp_dur", "3000",
            "-rtp_addr", f"{LOOPBACK}:{sink.getsockname()[1]}", "-i", LOOPBACK, "-mp", str(media_port),
            "-metrics_addr", f"{LOOPBACK}:{metrics_port}", "-stats_jsonl", str(rows_path), "-fd", "1",
            "-summary_json", str(summary_path), "-summary_html", str(tmp_path / "report.html"), "-nostdin",
        )  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(1.0)
            live = _scrape(metrics_port)
            assert process.wait(timeout=30) == 0, process.stderr.read() if process.stderr else ""
        finally:
            stop(process)
    assert 0 < _total(live, "gossipper_rtp_packets_sent_total") < 1500
    assert _total(live, "gossipper_rtp_streams_active") == 10
    assert not any(name.startswith("gossipper_calls") for name in live)
    summary = read_json(summary_path)
    media = summary["media"]
    assert isinstance(media, dict)
    rows = _rows(rows_path)
    assert len(rows) >= 3
    assert sum(int(row["rtp_packets_sent"]) for row in rows) == media["rtp_packets_sent"] == 1500
    assert rows[-1]["rtp_packets_sent_total"] == 1500
    assert all(400 <= float(row["rtp_sent_pps"]) <= 600 for row in rows[1:-1])
    report = (tmp_path / "report.html").read_text(encoding="utf-8")  # test_summary_html.py renders one
    assert 'id="report-data">{"x": [' in report
    assert '"id": "rtp-rate"' in report and '"id": "call-rate"' not in report


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback TCP port some other program listens on."""
    with socket.socket() as holder:
        holder.bind((LOOPBACK, 0))
        holder.listen()
        yield holder.getsockname()[1]


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_metrics_port_in_use_stops_a_sip_run_before_any_call(taken_port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind((LOOPBACK, 0))
        peer.settimeout(0.5)
        result = run_gossipper(
            "-sn", "uac", f"{LOOPBACK}:{peer.getsockname()[1]}", "-i", LOOPBACK, "-p", str(free_port()),
            "-m", "1", "-metrics_addr", str(taken_port), timeout=30,
        )  # fmt: skip
        with pytest.raises(TimeoutError):
            peer.recv(65535)
    assert result.returncode == 254  # as any socket gossipper cannot bind (SIPp's -2)
    line = _one_line(result)
    assert line.startswith(f"gossipper: -metrics_addr: cannot listen on {LOOPBACK}:{taken_port}: ")


def test_metrics_port_in_use_stops_the_standalone_generator(taken_port: int) -> None:
    result = run_gossipper(
        "-rtp_send", "-rtp_addr", f"{LOOPBACK}:9", "-i", LOOPBACK, "-rtp_dur", "1000",
        "-metrics_addr", str(taken_port), timeout=30,
    )  # fmt: skip
    assert result.returncode == 254
    assert _one_line(result).startswith("gossipper: -metrics_addr: cannot listen on")


def test_unwritable_jsonl_is_refused_before_the_run(tmp_path: Path) -> None:
    result = run_gossipper(
        "-sn", "uac", f"{LOOPBACK}:9", "-m", "1", "-stats_jsonl", str(tmp_path / "missing" / "rows.jsonl")
    )
    assert result.returncode == 1
    assert "-stats_jsonl: the directory" in _one_line(result)
