"""A standalone run spread over a local 3-node Ray cluster (ray.cluster_utils.Cluster, each
node offering one `gossipper` resource), against a UDP receiver in this test: loopback only,
real sockets. The merged summary must agree with the receiver and with the nodes' own counts.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from gossipper.cli.ports import LOOPBACK, free_ports_below_ephemeral
from gossipper.cluster.availability import LOOPBACK_ONLY_ENV
from tests.cluster.conftest import NODES

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install gossipper[cluster])")

STREAMS_PER_NODE = 300
DURATION_MS = 1000
PACKETS_PER_STREAM = DURATION_MS // 20
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux's value; Python names it from 3.12


class Receiver:
    """Counts every datagram reaching one loopback port, and the source ports they came from."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:  # a deep buffer, so a loaded machine's scheduling delays drop nothing
            self.socket.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 << 20)
        except PermissionError:  # not root: as deep as net.core.rmem_max allows
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
        self.socket.bind((LOOPBACK, 0))
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.count = 0
        self.sources: dict[int, int] = {}
        self.addresses: set[str] = set()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        buffer = bytearray(2048)
        while not self.done.is_set():
            try:
                _, (address, port) = self.socket.recvfrom_into(buffer)
            except TimeoutError:
                continue
            self.count += 1
            self.addresses.add(address)
            self.sources[port] = self.sources.get(port, 0) + 1

    def drain(self) -> None:
        """Read on until the socket has been quiet for a while, then stop."""
        last = -1
        while last != self.count:
            last = self.count
            self.done.wait(0.5)
        self.done.set()
        self.thread.join()
        self.socket.close()


def test_streams_spread_over_three_nodes_add_up_to_what_the_receiver_got(
    cluster: Any, tmp_path: Path
) -> None:
    streams = NODES * STREAMS_PER_NODE
    base = free_ports_below_ephemeral(2 * streams)
    receiver = Receiver()
    summary, jsonl, html = tmp_path / "summary.json", tmp_path / "stats.jsonl", tmp_path / "report.html"
    try:
        run = subprocess.run(
            [
                sys.executable, "-m", "gossipper", "sipp", "-rtp_send", "-media_scale",
                "-rtp_streams", str(streams), "-rtp_addr", f"{LOOPBACK}:{receiver.port}",
                "-rtp_dur", str(DURATION_MS), "-mp", str(base), "-max_rtp_port", str(base + 2 * streams - 1),
                "-media_rtprio", "0", "-cluster", cluster.address, "-summary_json", str(summary),
                "-health_max_late_pct", "100", "-stats_jsonl", str(jsonl), "-fd", "1",
                "-summary_html", str(html), "-nostdin",
            ],
            capture_output=True, text=True, timeout=240,
        )  # fmt: skip
    finally:
        receiver.drain()
    assert run.returncode == 0, run.stderr
    document = json.loads(summary.read_text())
    media = document["media"]
    nodes = document["nodes"]
    assert [node["status"] for node in nodes] == ["ok"] * NODES
    assert [node["streams"] for node in nodes] == [STREAMS_PER_NODE] * NODES
    assert len({node["node_id"] for node in nodes}) == NODES  # one engine per node (strict spread)
    per_node = [node["rtp_packets_sent"] for node in nodes]
    assert media["rtp_packets_sent"] == sum(per_node) == receiver.count
    assert media["streams_started"] == streams
    assert all(node["cpu_s"] > 0 for node in nodes)  # each node's process, measured there
    assert media["send_errors"] == {}
    # every stream of every node sent, each from a port of its own: no two nodes shared one
    assert len(receiver.sources) == streams
    assert sorted(receiver.sources) == list(range(base, base + 2 * streams, 2))
    for node in per_node:  # each node ran its whole schedule, within a packet a stream
        assert STREAMS_PER_NODE * PACKETS_PER_STREAM <= node <= STREAMS_PER_NODE * (PACKETS_PER_STREAM + 1)
    assert document["schema_version"] == "gossipper_summary_v1"
    # the gate judged the merged figures, not one node's
    (gate,) = document["health"]["gates"]
    assert gate["name"] == "max_late_pct"
    assert gate["value"] == pytest.approx(100.0 * media["late_packets"] / media["rtp_packets_sent"])
    assert document["health"]["passed"] is True
    assert "gossipper: rtp_send done on 3 node(s)" in run.stdout
    # the live outputs read the merged counters too: the last row's total is the summary's
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert rows and rows[-1]["rtp_packets_sent_total"] == media["rtp_packets_sent"]
    assert "uPlot" in html.read_text()


def _start_run(cluster: Any, receiver: Receiver, summary: Path, streams: int, duration_ms: int) -> Any:
    base = free_ports_below_ephemeral(2 * streams)
    return subprocess.Popen(
        [
            sys.executable, "-m", "gossipper", "sipp", "-rtp_send", "-media_scale",
            "-rtp_streams", str(streams), "-rtp_addr", f"{LOOPBACK}:{receiver.port}",
            "-rtp_dur", str(duration_ms), "-mp", str(base), "-max_rtp_port", str(base + 2 * streams - 1),
            "-media_rtprio", "0", "-cluster", cluster.address, "-summary_json", str(summary), "-nostdin",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_sending(receiver: Receiver, run: Any, timeout: float = 60.0) -> None:
    """Until the receiver has heard from the run (Ray's start-up takes seconds)."""
    deadline = time.monotonic() + timeout
    while receiver.count < 1000:
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline, "no RTP from the cluster run"
        time.sleep(0.1)


def test_ctrl_c_stops_every_node_and_the_merged_summary_is_written(cluster: Any, tmp_path: Path) -> None:
    receiver = Receiver()
    summary = tmp_path / "summary.json"
    run = _start_run(cluster, receiver, summary, NODES * 20, 0)  # -rtp_dur 0: until stopped
    try:
        _wait_sending(receiver, run)
        time.sleep(1.0)
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
        receiver.drain()
    assert run.returncode == 0, err
    document = json.loads(summary.read_text())
    assert [node["status"] for node in document["nodes"]] == ["ok"] * NODES
    assert all(node["rtp_packets_sent"] > 0 for node in document["nodes"])
    # the live line each second: the cluster's totals, then every node by name
    live = [line for line in err.splitlines() if line.startswith("gossipper: cluster ") and " pps " in line]
    assert live, err
    assert all(node["name"] in live[-1] for node in document["nodes"])
    assert document["media"]["rtp_packets_sent"] == receiver.count


def _descendants(root: int) -> list[int]:
    """Processes below `root` (this test started the cluster, so its workers are among them)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found.extend(children)
        frontier.extend(children)
    return found


def _node_runner_pids() -> list[int]:
    pids = []
    for pid in _descendants(os.getpid()):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if title.startswith(b"ray::NodeRunner"):
            pids.append(pid)
    return pids


def test_a_node_killed_mid_run_is_named_and_its_counts_kept_as_partial(cluster: Any, tmp_path: Path) -> None:
    receiver = Receiver()
    summary = tmp_path / "summary.json"
    run = _start_run(cluster, receiver, summary, NODES * 20, 8000)
    try:
        _wait_sending(receiver, run)
        # nodes report each second and the driver collects each second: two of each, at least
        time.sleep(3.5)
        runners = _node_runner_pids()
        assert len(runners) == NODES, runners
        os.kill(runners[0], signal.SIGKILL)
        _, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
        receiver.drain()
    assert run.returncode == 3, err  # degraded: a node was lost
    document = json.loads(summary.read_text())
    nodes = document["nodes"]
    statuses = sorted(node["status"] for node in nodes)
    assert statuses == ["ok"] * (NODES - 1) + ["partial"]
    (lost,) = [node for node in nodes if node["status"] == "partial"]
    assert f"gossipper: cluster: {lost['name']} lost" in err
    assert lost["error"]
    assert 0 < lost["rtp_packets_sent"] < 20 * 8000 // 20  # its last report, before the end
    assert document["media"]["rtp_packets_sent"] == sum(node["rtp_packets_sent"] for node in nodes)
    assert document["media"]["rtp_packets_sent"] <= receiver.count  # the kill lost its last second's


def test_local_cluster_is_started_for_the_run_and_stopped_after(tmp_path: Path) -> None:
    """-cluster local:N, the way to try a cluster out: no Ray cluster is running beforehand.
    Run as a user runs it (without the tests' loopback switch), it keeps Ray on loopback by
    itself; each node sends from the address -cluster_media_ips gives it."""
    receiver = Receiver()
    environment = {name: value for name, value in os.environ.items() if name != LOOPBACK_ONLY_ENV}
    summary = tmp_path / "summary.json"
    base = free_ports_below_ephemeral(40)
    try:
        run = subprocess.run(
            [
                sys.executable, "-m", "gossipper", "sipp", "-rtp_send", "-media_scale", "-rtp_streams", "20",
                "-rtp_addr", f"{LOOPBACK}:{receiver.port}", "-rtp_dur", "500", "-mp", str(base),
                "-max_rtp_port", str(base + 39), "-media_rtprio", "0", "-cluster", "local:2",
                "-cluster_media_ips", "127.0.0.2,127.0.0.3", "-summary_json", str(summary), "-nostdin",
            ],
            capture_output=True, text=True, timeout=180, env=environment,
        )  # fmt: skip
    finally:
        receiver.drain()
    assert run.returncode == 0, run.stderr
    document = json.loads(summary.read_text())
    assert [(node["status"], node["streams"]) for node in document["nodes"]] == [("ok", 10), ("ok", 10)]
    assert document["media"]["rtp_packets_sent"] == receiver.count >= 20 * 25
    assert {node["address"] for node in document["nodes"]} == {LOOPBACK}  # Ray's own traffic
    assert receiver.addresses == {"127.0.0.2", "127.0.0.3"}


def test_a_head_nobody_answers_at_is_one_line_not_minutes_of_retries() -> None:
    started = time.monotonic()
    run = subprocess.run(
        [
            sys.executable, "-m", "gossipper", "sipp", "-rtp_send", "-media_scale", "-rtp_streams", "2",
            "-rtp_addr", f"{LOOPBACK}:9", "-cluster", f"{LOOPBACK}:1", "-nostdin",
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 255
    assert run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith(f"gossipper: -cluster: nothing answers at '{LOOPBACK}:1'")
    assert time.monotonic() - started < 30


def test_fewer_streams_than_nodes_run_on_as_many_nodes_as_streams(cluster: Any, tmp_path: Path) -> None:
    receiver = Receiver()
    summary = tmp_path / "summary.json"
    run = _start_run(cluster, receiver, summary, NODES - 1, 500)
    try:
        _, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
        receiver.drain()
    assert run.returncode == 0, err
    nodes = json.loads(summary.read_text())["nodes"]
    assert [(node["status"], node["streams"]) for node in nodes] == [("ok", 1)] * (NODES - 1)
    assert sum(node["rtp_packets_sent"] for node in nodes) == receiver.count


def test_a_node_that_cannot_bind_its_port_is_named_with_the_port(cluster: Any, tmp_path: Path) -> None:
    receiver = Receiver()
    summary = tmp_path / "summary.json"
    streams = NODES * 2
    base = free_ports_below_ephemeral(2 * streams)
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind((LOOPBACK, base))  # the first port of node 0's slice
    try:
        run = subprocess.run(
            [
                sys.executable, "-m", "gossipper", "sipp", "-rtp_send", "-media_scale",
                "-rtp_streams", str(streams), "-rtp_addr", f"{LOOPBACK}:{receiver.port}", "-rtp_dur", "500",
                "-mp", str(base), "-max_rtp_port", str(base + 2 * streams - 1), "-media_rtprio", "0",
                "-cluster", cluster.address, "-summary_json", str(summary), "-nostdin",
            ],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        taken.close()
        receiver.drain()
    assert run.returncode == 3, run.stderr  # degraded: the run went on without that node
    nodes = json.loads(summary.read_text())["nodes"]
    assert [node["status"] for node in nodes] == ["lost", "ok", "ok"]
    assert nodes[0]["error"] == f"media port {LOOPBACK}:{base}: cannot bind (in use)"  # gossipper's line
    assert f"gossipper: cluster: {nodes[0]['name']} lost: media port {LOOPBACK}:{base}" in run.stderr
    assert sum(node["rtp_packets_sent"] for node in nodes) == receiver.count > 0
