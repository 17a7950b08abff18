"""SIP scenarios spread over the nodes of a local Ray cluster, against SIPp's UAS on loopback:
every call must succeed at both ends, the nodes must never share a call number, a Call-ID
or a media port, and the driver's outputs (summary, call records, -trace_stat, -stats_jsonl)
must hold the merged run. Control commands sent to the driver must reach every node."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gossipper.cli.ports import LOOPBACK, free_port, free_ports_below_ephemeral
from gossipper.scenario.builtins import dump_builtin
from tests.e2e.processes import SIPP, needs_sipp, wait_bound

pytest.importorskip("ray", reason="Ray is not installed (pip install gossipper[cluster])")

NODES_USED = 2
CALLS = 40
HOLD_MS = 1000
PACKETS_PER_CALL = HOLD_MS // 20


def _sipp_uas(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], int]:
    assert SIPP is not None
    port = free_port()
    process = subprocess.Popen(
        [SIPP, "-sn", "uas", "-i", LOOPBACK, "-p", str(port), "-nostdin", *args],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_bound(port, process=process)
    return process, port


def _gossipper(*args: str) -> list[str]:
    return [sys.executable, "-m", "gossipper", "sipp", *args, "-nostdin"]


@needs_sipp
def test_invite_media_scale_over_two_nodes_against_sipp_uas(cluster: Any, tmp_path: Path) -> None:
    peer_media = free_ports_below_ephemeral(2)
    sipp, port = _sipp_uas(tmp_path, "-mp", str(peer_media), "-m", str(CALLS))
    base = free_ports_below_ephemeral(2 * CALLS)
    summary, records, jsonl = tmp_path / "summary.json", tmp_path / "calls.jsonl", tmp_path / "stats.jsonl"
    try:
        run = subprocess.run(
            _gossipper(
                "-sn", "invite_media_scale", f"{LOOPBACK}:{port}", "-i", LOOPBACK,
                "-m", str(CALLS), "-r", "40", "-d", str(HOLD_MS),
                "-mp", str(base), "-max_rtp_port", str(base + 2 * CALLS - 1), "-media_rtprio", "0",
                "-cluster", cluster.address, "-cluster_nodes", str(NODES_USED),
                "-summary_json", str(summary), "-call_records", str(records),
                "-stats_jsonl", str(jsonl), "-trace_stat", "-fd", "1",
                "-health_min_success_ratio", "1.0",
            ),
            capture_output=True, text=True, timeout=240, cwd=tmp_path,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        sipp_status = sipp.wait(timeout=60)
    finally:
        if sipp.poll() is None:
            sipp.kill()
    assert sipp_status == 0, sipp.stderr.read() if sipp.stderr else ""  # SIPp saw every call end well
    document = json.loads(summary.read_text())
    assert document["success_calls"] == CALLS and document["failed_calls"] == 0
    nodes = document["nodes"]
    assert [node["status"] for node in nodes] == ["ok"] * NODES_USED
    assert len({node["node_id"] for node in nodes}) == NODES_USED
    assert {node["address"] for node in nodes} == {LOOPBACK}
    assert [node["calls_created"] for node in nodes] == [CALLS // NODES_USED] * NODES_USED
    media = document["media"]
    assert media["streams_started"] == CALLS
    assert media["rtp_packets_sent"] == sum(node["rtp_packets_sent"] for node in nodes)
    assert CALLS * PACKETS_PER_CALL <= media["rtp_packets_sent"] <= CALLS * (PACKETS_PER_CALL + 2)
    assert document["health"]["passed"] is True
    # the run's CPU is its nodes' processes' together, each measured over its run
    assert document["cpu_s"] == pytest.approx(sum(node["cpu_s"] for node in nodes), abs=0.01)
    assert all(node["cpu_s"] > 0 for node in nodes)

    # One record per call, written by the driver: distinct numbers, Call-IDs and media ports,
    # each node's from its own slice.
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    assert len(lines) == CALLS
    assert sorted(line["call"] for line in lines) == list(range(1, CALLS + 1))
    call_ids = [line["call_id"] for line in lines]
    assert len(set(call_ids)) == CALLS
    slices = {f"n{index}-": node["ports"] for index, node in enumerate(nodes)}
    assert {call_id[:3] for call_id in call_ids} == set(slices)
    ports = []
    for line in lines:
        assert line["outcome"] == "success"
        low, high = (int(end) for end in slices[line["call_id"][:3]].split(".."))
        (stream,) = line["media"]["streams"]
        port = int(stream["local"].rpartition(":")[2])
        assert low <= port <= high
        ports.append(port)
    assert len(set(ports)) == CALLS

    # The driver's periodic outputs hold the merged run.
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert rows and rows[-1]["calls_succeeded_total"] == CALLS
    (stat_csv,) = tmp_path.glob("invite_media_scale_*_.csv")
    assert stat_csv.read_text().count("\n") >= 2
    # The live line names every node each second.
    live = [line for line in run.stderr.splitlines() if line.startswith("gossipper: cluster ")]
    assert live and all(node["name"] in live[-1] for node in nodes), run.stderr


def _control(port: int, text: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(text.encode(), (LOOPBACK, port))


def _created(stats: Path) -> int:
    rows = stats.read_text().splitlines() if stats.exists() else []
    return int(json.loads(rows[-1])["calls_created_total"]) if rows else 0


def _wait_for(condition: Any, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


@needs_sipp
def test_rate_and_quit_from_the_control_socket_reach_every_node(cluster: Any, tmp_path: Path) -> None:
    sipp, port = _sipp_uas(tmp_path)
    control = free_port()
    summary, stats = tmp_path / "summary.json", tmp_path / "stats.jsonl"
    run = subprocess.Popen(
        _gossipper(
            "-sn", "uac", f"{LOOPBACK}:{port}", "-i", LOOPBACK, "-r", "1", "-d", "0",
            "-cluster", cluster.address, "-cluster_nodes", str(NODES_USED), "-cp", str(control),
            "-summary_json", str(summary), "-stats_jsonl", str(stats), "-fd", "1",
        ),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        _wait_for(lambda: _created(stats) >= 1, "no call from the cluster run")
        slow = _created(stats)
        _control(control, "cset rate 60")  # 30 calls/s on each node
        _wait_for(lambda: _created(stats) >= slow + 60, "the rate change did not reach the nodes")
        _control(control, "q")  # a soft stop: every node's calls end, then the run
        _, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
        sipp.kill()
    assert run.returncode == 0, err
    document = json.loads(summary.read_text())
    nodes = document["nodes"]
    assert [node["status"] for node in nodes] == ["ok"] * NODES_USED
    # both nodes took the new rate: each made far more calls than 1 call/s would have
    assert all(node["calls_created"] >= 20 for node in nodes), nodes
    assert document["failed_calls"] == 0
    assert document["success_calls"] == sum(node["calls_succeeded"] for node in nodes)


def test_a_server_scenario_is_refused_in_one_line(tmp_path: Path) -> None:
    run = subprocess.run(
        _gossipper("-sn", "uas", "-cluster", "local:2", "-m", "1"),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "-cluster: uas is a server scenario" in lines[0], run.stderr


def _node_runner_pids() -> list[int]:
    """The engines' processes: Ray names an actor's worker after its class."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if title.startswith(b"ray::NodeRunner"):
                pids.append(int(entry.name))
    return pids


@needs_sipp
def test_a_node_killed_mid_call_run_is_named_and_the_run_ends_degraded(cluster: Any, tmp_path: Path) -> None:
    sipp, port = _sipp_uas(tmp_path)
    summary, stats = tmp_path / "summary.json", tmp_path / "stats.jsonl"
    run = subprocess.Popen(
        _gossipper(
            "-sn", "uac", f"{LOOPBACK}:{port}", "-i", LOOPBACK, "-r", "30", "-d", "200",
            "-cluster", cluster.address, "-summary_json", str(summary),
            "-stats_jsonl", str(stats), "-fd", "1",
        ),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        _wait_for(lambda: _created(stats) >= 60, "no calls from the cluster run")
        runners = _node_runner_pids()
        assert len(runners) == 3, runners
        os.kill(runners[0], signal.SIGKILL)
        killed_at = _created(stats)
        _wait_for(lambda: _created(stats) >= killed_at + 60, "the other nodes did not go on")
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
        sipp.kill()
    assert run.returncode == 3, err  # degraded, though no call failed
    document = json.loads(summary.read_text())
    nodes = document["nodes"]
    assert sorted(node["status"] for node in nodes) == ["ok", "ok", "partial"]
    (lost,) = [node for node in nodes if node["status"] == "partial"]
    assert f"gossipper: cluster: {lost['name']} lost" in err
    assert lost["calls_created"] > 0  # its counts up to its last report are kept
    assert document["success_calls"] == sum(node["calls_succeeded"] for node in nodes)


@needs_sipp
def test_a_scenario_error_on_one_node_ends_the_whole_run_as_on_one_host(cluster: Any, tmp_path: Path) -> None:
    """<error> is SIPp's ERROR(): the run ends at once with its message, exit 255; the
    driver stops the other nodes and still writes the merged summary."""
    sipp, port = _sipp_uas(tmp_path)
    scenario = tmp_path / "uac_error.xml"
    text = dump_builtin("uac", srtp=False)
    scenario.write_text(
        text.replace("<pause/>", '<nop><action><error message="boom"/></action></nop>\n  <pause/>', 1)
    )
    summary = tmp_path / "summary.json"
    try:
        run = subprocess.run(
            _gossipper(
                "-sf", str(scenario), f"{LOOPBACK}:{port}", "-i", LOOPBACK, "-r", "5", "-m", "20",
                "-cluster", cluster.address, "-cluster_nodes", str(NODES_USED), "-summary_json", str(summary),
            ),
            capture_output=True, text=True, timeout=240, cwd=tmp_path,
        )  # fmt: skip
    finally:
        sipp.kill()
    assert run.returncode == 255, run.stderr
    assert run.stderr.strip().splitlines()[-1] == "gossipper: <error> action: boom", run.stderr
    document = json.loads(summary.read_text())
    assert document["total_calls"] < 20  # stopped early, not run to -m
    statuses = [node["status"] for node in document["nodes"]]
    assert "fatal" in statuses and set(statuses) <= {"ok", "fatal"}, statuses  # the others stopped
