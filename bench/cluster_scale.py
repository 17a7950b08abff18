"""What spreading a run over Ray nodes costs per packet and per call (issue 17's bench).

The same total work runs four ways on this machine: as one plain `gossipper sipp` process,
as --nodes plain processes at once (each with its share and no Ray), and with `-cluster` on a
local Ray cluster (ray.cluster_utils.Cluster, each node offering one `gossipper` resource) over
1 node and over --nodes nodes. The work is --streams standalone PCMU streams at 20 ms for
--seconds toward a loopback sink that never reads, or with --calls N, N `invite_media_scale`
calls (each holding one stream for --seconds) against SIPp's UAS on loopback. A cluster node's
CPU is what its process spent on its run (its engine and Ray's own in that process), a plain
process' what it spent on its run (both the summary's `cpu_s`, measured the same way: start-up
left out, every thread of the process in); the plain processes' whole lives from /proc are
shown beside (`CPU s, whole life`). The plain processes
at once show what several engines sharing this machine's cores cost by themselves (on a real
cluster each node has cores of its own). The checks, that the cluster layer adds no per-packet
cost: a 1-node cluster spends at most MAX_RATIO x the CPU per packet of one process, and a
cluster over --nodes nodes at most MAX_RATIO x that of --nodes processes without Ray. (On a
2-core machine, two engines of 1,000 streams each cost about 12% more per packet than one of
2,000, Ray or not: twice the sender threads waking each millisecond on the same cores.)

    .venv/bin/python -m bench.cluster_scale [--streams 2000 | --calls 1000] [--seconds 10] \
        [--nodes 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.common import gossipper_command, markdown_header, run_and_measure_cpu
from gossipper.cli.ports import LOOPBACK, free_port, free_ports_below_ephemeral

MAX_RATIO = 1.10


@dataclass
class Row:
    mode: str
    packets: int
    cpu_s: float
    on_time_2ms: int
    calls: int = 0
    whole_life_cpu_s: float | None = None  # a plain process' from /proc, start-up included
    spread: str = ""  # every round's us/packet, for the median row

    @property
    def us_per_packet(self) -> float:
        return 1e6 * self.cpu_s / self.packets if self.packets else float("nan")

    @property
    def us_per_call(self) -> float:
        return 1e6 * self.cpu_s / self.calls if self.calls else float("nan")


@dataclass
class Work:
    """The run's total work: standalone streams, or invite_media_scale calls (one stream
    each) toward a SIP peer."""

    streams: int
    seconds: int
    sink_port: int
    calls: int = 0
    sip_peer: str | None = None

    @property
    def units(self) -> int:
        return self.calls if self.sip_peer else self.streams

    def args(self, units: int, base: int, summary: Path) -> list[str]:
        ports = ["-mp", str(base), "-max_rtp_port", str(base + 2 * units - 1)]
        if self.sip_peer is not None:
            # every call starts within the first 2 s and holds its stream for --seconds
            return [
                "-sn", "invite_media_scale", self.sip_peer, "-i", LOOPBACK, "-m", str(units),
                "-l", str(units), "-r", str(max(1, units // 2)), "-d", str(self.seconds * 1000),
                *ports, "-summary_json", str(summary), "-nostdin",
            ]  # fmt: skip
        return [
            "-rtp_send", "-media_scale", "-rtp_streams", str(units),
            "-rtp_addr", f"{LOOPBACK}:{self.sink_port}", "-rtp_dur", str(self.seconds * 1000),
            *ports, "-summary_json", str(summary), "-nostdin",
        ]  # fmt: skip


def _row(mode: str, documents: list[dict[str, Any]], whole_life_cpu_s: float | None) -> Row:
    media = [document["media"] for document in documents]
    return Row(
        mode,
        sum(int(part["rtp_packets_sent"]) for part in media),
        sum(float(document["cpu_s"]) for document in documents),
        sum(int(part["on_time_2ms"]) for part in media),
        sum(int(document.get("success_calls", 0)) for document in documents),
        whole_life_cpu_s,
    )


def _processes(count: int, work: Work, folder: Path) -> Row:
    """`count` plain processes at once, each with its share of the work and of the ports, no
    Ray: with 1, the single host; with more, what several engines sharing this machine's
    cores cost without the cluster layer."""
    shares = [work.units // count + (1 if index < work.units % count else 0) for index in range(count)]
    results: list[tuple[int, float]] = [(0, 0.0)] * count
    summaries = [folder / f"process{count}-{index}.json" for index in range(count)]
    base = free_ports_below_ephemeral(2 * work.units)
    commands = [
        gossipper_command(*work.args(share, base + 2 * sum(shares[:index]), summaries[index]))
        for index, share in enumerate(shares)
    ]

    def run(index: int) -> None:
        results[index] = run_and_measure_cpu(
            commands[index], timeout=work.seconds + 120, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if any(code != 0 for code, _ in results):
        raise SystemExit(f"a plain process failed: exit statuses {[code for code, _ in results]}")
    documents = [json.loads(summary.read_text()) for summary in summaries]
    mode = "one process" if count == 1 else f"{count} processes, no Ray"
    return _row(mode, documents, sum(cpu_s for _, cpu_s in results))


class _Idle:
    """An actor that only waits, in a node process as the engines' are."""

    def wait(self, seconds: float) -> float:
        cpu_before = time.process_time()
        time.sleep(seconds)
        return time.process_time() - cpu_before


def _ray_idle_ms_per_s(address: str, seconds: float = 10.0) -> float:
    """What Ray's own threads cost a node process per second while its engine would run: a
    cost per node and per second, not per packet, which weighs more the less a node sends."""
    import logging

    import ray

    ray.init(address=address, logging_level=logging.WARNING)
    try:
        actor: Any = ray.remote(_Idle).options(num_cpus=0).remote()
        return 1000.0 * float(ray.get(actor.wait.remote(seconds))) / seconds
    finally:
        ray.shutdown()


def _cluster(address: str, nodes: int, work: Work, folder: Path) -> Row:
    summary = folder / f"cluster{nodes}.json"
    base = free_ports_below_ephemeral(2 * work.units)
    command = gossipper_command(
        *work.args(work.units, base, summary), "-cluster", address, "-cluster_nodes", str(nodes)
    )
    subprocess.run(
        command, check=True, timeout=work.seconds + 180, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    document = json.loads(summary.read_text())
    return _row(f"cluster, {nodes} node(s)", [document], None)


def _median(rows: list[Row]) -> Row:
    """The round with the median CPU per packet: a VM's neighbours and Ray's own daemons on the
    same cores move single rounds; the median of a few is what reproduces."""
    ordered = sorted(rows, key=lambda row: row.us_per_packet)
    spread = ", ".join(f"{row.us_per_packet:.3f}" for row in ordered)
    return replace(ordered[(len(ordered) - 1) // 2], spread=spread)


@contextlib.contextmanager
def _sipp_uas(calls: int) -> Iterator[str]:
    """SIPp's UAS answering every call; its media port takes the streams and never reads."""
    sipp = shutil.which("sipp")
    if sipp is None:
        raise SystemExit("--calls needs SIPp (Debian sip-tester) as the UAS")
    port, media = free_port(), free_ports_below_ephemeral(2)
    process = subprocess.Popen(
        [sipp, "-sn", "uas", "-i", LOOPBACK, "-p", str(port), "-mp", str(media), "-nostdin"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)
        if process.poll() is not None:
            raise SystemExit(f"SIPp's UAS exited {process.returncode} at start")
        yield f"{LOOPBACK}:{port}"
    finally:
        process.kill()
        process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=0, help="invite_media_scale calls instead of streams")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="each mode's median over this many rounds")
    options = parser.parse_args()
    from ray.cluster_utils import Cluster

    node_args: dict[str, Any] = {"num_cpus": 1, "resources": {"gossipper": 1}}
    cluster = Cluster(initialize_head=True, head_node_args={**node_args, "include_dashboard": False})
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sink.bind((LOOPBACK, 0))
    try:
        for _ in range(options.nodes - 1):
            cluster.add_node(**node_args)
        cluster.wait_for_nodes()
        idle_ms_per_s = _ray_idle_ms_per_s(cluster.address)
        with contextlib.ExitStack() as stack:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            peer = stack.enter_context(_sipp_uas(options.calls)) if options.calls else None
            work = Work(options.streams, options.seconds, sink.getsockname()[1], options.calls, peer)
            rounds = [
                [
                    _processes(1, work, folder),
                    _processes(options.nodes, work, folder),
                    _cluster(cluster.address, 1, work, folder),
                    _cluster(cluster.address, options.nodes, work, folder),
                ]
                for _ in range(options.rounds)
            ]
    finally:
        sink.close()
        cluster.shutdown()
    if options.calls:
        held = f"each holding a stream {options.seconds} s"
        print(f"{options.calls} invite_media_scale calls, {held}, against SIPp's UAS\n")
    else:
        print(f"{options.streams} PCMU streams at 20 ms for {options.seconds} s toward a loopback sink\n")
    print(
        markdown_header(
            "mode",
            "calls",
            "packets",
            "CPU s",
            "CPU s, whole life",
            "us/call",
            "us/packet",
            "<=2 ms",
            "vs one process",
            "us/packet, each round",
        )
    )
    rows = [_median(list(measured)) for measured in zip(*rounds, strict=True)]
    plain = rows[0].us_per_packet
    for row in rows:
        share = 100.0 * row.on_time_2ms / row.packets if row.packets else 0.0
        whole = "" if row.whole_life_cpu_s is None else f"{row.whole_life_cpu_s:.2f}"
        print(
            f"| {row.mode} | {row.calls} | {row.packets} | {row.cpu_s:.2f} | {whole} | "
            f"{row.us_per_call:.1f} | {row.us_per_packet:.3f} | {share:.2f} % | "
            f"{row.us_per_packet / plain:.3f} | {row.spread} |"
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
    print(f"Ray's own threads in an idle node process: {idle_ms_per_s:.1f} ms of CPU per second")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
