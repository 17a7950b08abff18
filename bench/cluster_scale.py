"""What spreading a standalone run over Ray nodes costs per packet (issue 17's bench).

The same total work (--streams PCMU streams at 20 ms for --seconds toward a loopback sink
that never reads) runs three ways on this machine: as one plain `gossipper sipp -rtp_send`
process, and with `-cluster` on a local Ray cluster (ray.cluster_utils.Cluster, each node
offering one `gossipper` resource) over 1 node and over --nodes nodes. A cluster node's CPU
is what its process spent on its run (`nodes[].cpu_s` of -summary_json: its engine's threads
and Ray's own in that process); the plain process' CPU is its whole life from /proc (start-up
included, so it reads a little high). A row of --nodes plain processes at once, each with its
share and no Ray, shows what several engines sharing this machine's cores cost by themselves
(on a real cluster each node has cores of its own). The checks, that the cluster layer adds no
per-packet cost: a 1-node cluster spends at most MAX_RATIO x the CPU per packet of one process,
and a cluster over --nodes nodes at most MAX_RATIO x that of --nodes processes without Ray.
(On a 2-core machine, two engines of 1,000 streams each cost about 12% more per packet than one
of 2,000, Ray or not: twice the sender threads waking each millisecond on the same cores.)

    .venv/bin/python -m bench.cluster_scale [--streams 2000] [--seconds 10] [--nodes 2]
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from bench.common import gossipper_command, markdown_header, run_and_measure_cpu
from gossipper.cli.ports import LOOPBACK, free_ports_below_ephemeral

MAX_RATIO = 1.10


@dataclass
class Row:
    mode: str
    packets: int
    cpu_s: float
    on_time_2ms: int

    @property
    def us_per_packet(self) -> float:
        return 1e6 * self.cpu_s / self.packets if self.packets else float("nan")


def _args(streams: int, seconds: int, sink_port: int, summary: Path) -> list[str]:
    base = free_ports_below_ephemeral(2 * streams)
    return [
        "-rtp_send", "-media_scale", "-rtp_streams", str(streams), "-rtp_addr", f"{LOOPBACK}:{sink_port}",
        "-rtp_dur", str(seconds * 1000), "-mp", str(base), "-max_rtp_port", str(base + 2 * streams - 1),
        "-summary_json", str(summary), "-nostdin",
    ]  # fmt: skip


def _plain(streams: int, seconds: int, sink_port: int, folder: Path) -> Row:
    summary = folder / "plain.json"
    code, cpu_s = run_and_measure_cpu(
        gossipper_command(*_args(streams, seconds, sink_port, summary)),
        timeout=seconds + 120,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if code != 0:
        raise SystemExit(f"the one-process run exited {code}")
    media = json.loads(summary.read_text())["media"]
    return Row("one process", media["rtp_packets_sent"], cpu_s, media["on_time_2ms"])


def _processes(count: int, streams: int, seconds: int, sink_port: int, folder: Path) -> Row:
    """`count` plain processes at once, each with its share of the streams and of the ports,
    no Ray: what two engines sharing this machine's cores cost without the cluster layer."""
    shares = [streams // count + (1 if index < streams % count else 0) for index in range(count)]
    results: list[tuple[int, float]] = [(0, 0.0)] * count
    summaries = [folder / f"process{index}.json" for index in range(count)]
    commands = []
    base = free_ports_below_ephemeral(2 * streams)
    for index, share in enumerate(shares):
        first = base + 2 * sum(shares[:index])
        args = _args(share, seconds, sink_port, summaries[index])
        args[args.index("-mp") + 1] = str(first)
        args[args.index("-max_rtp_port") + 1] = str(first + 2 * share - 1)
        commands.append(gossipper_command(*args))

    def run(index: int) -> None:
        results[index] = run_and_measure_cpu(
            commands[index], timeout=seconds + 120, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    media = [json.loads(summary.read_text())["media"] for summary in summaries]
    return Row(
        f"{count} processes, no Ray",
        sum(part["rtp_packets_sent"] for part in media),
        sum(cpu_s for _, cpu_s in results),
        sum(part["on_time_2ms"] for part in media),
    )


def _cluster(address: str, nodes: int, streams: int, seconds: int, sink_port: int, folder: Path) -> Row:
    summary = folder / f"cluster{nodes}.json"
    command = gossipper_command(
        *_args(streams, seconds, sink_port, summary), "-cluster", address, "-cluster_nodes", str(nodes)
    )
    subprocess.run(
        command, check=True, timeout=seconds + 180, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    document = json.loads(summary.read_text())
    cpu_s = sum(node["cpu_s"] for node in document["nodes"])
    media = document["media"]
    return Row(f"cluster, {nodes} node(s)", media["rtp_packets_sent"], cpu_s, media["on_time_2ms"])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--nodes", type=int, default=2)
    options = parser.parse_args()
    from ray.cluster_utils import Cluster

    node_args = {"num_cpus": 1, "resources": {"gossipper": 1}}
    cluster = Cluster(initialize_head=True, head_node_args={**node_args, "include_dashboard": False})
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sink.bind((LOOPBACK, 0))
    port = sink.getsockname()[1]
    try:
        for _ in range(options.nodes - 1):
            cluster.add_node(**node_args)
        cluster.wait_for_nodes()
        with tempfile.TemporaryDirectory() as temporary:
            folder = Path(temporary)
            rows = [
                _plain(options.streams, options.seconds, port, folder),
                _processes(options.nodes, options.streams, options.seconds, port, folder),
                _cluster(cluster.address, 1, options.streams, options.seconds, port, folder),
                _cluster(cluster.address, options.nodes, options.streams, options.seconds, port, folder),
            ]
    finally:
        sink.close()
        cluster.shutdown()
    print(f"{options.streams} PCMU streams at 20 ms for {options.seconds} s toward a loopback sink\n")
    print(markdown_header("mode", "packets", "CPU s", "us/packet", "<=2 ms", "vs one process"))
    plain = rows[0].us_per_packet
    for row in rows:
        share = 100.0 * row.on_time_2ms / row.packets if row.packets else 0.0
        print(
            f"| {row.mode} | {row.packets} | {row.cpu_s:.2f} | {row.us_per_packet:.3f} | {share:.2f} % | "
            f"{row.us_per_packet / plain:.3f} |"
        )
    checks = [
        ("1 node against one process", rows[2].us_per_packet / rows[0].us_per_packet),
        (
            f"{options.nodes} nodes against {options.nodes} processes",
            rows[3].us_per_packet / rows[1].us_per_packet,
        ),
    ]
    passed = True
    for label, ratio in checks:
        verdict = "PASS" if ratio <= MAX_RATIO else "FAIL"
        passed = passed and verdict == "PASS"
        print(f"{verdict}: the cluster layer, {label}: {ratio:.3f} x the CPU per packet (<= {MAX_RATIO})")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
