"""`gossipper sipp -rtp_send -media_scale ...` as a lab script runs it: a subprocess, real sockets.

Packet counts are checked twice: against the run's JSON summary and against the kernel's
own count of UDP datagrams sent (/proc/net/snmp Udp OutDatagrams). Where the test may
create a network namespace (root), each counted run gets one to itself, so no other
process's traffic can blur the kernel count.
"""

from __future__ import annotations

import itertools
import json
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from gossipper.cli.ports import LOOPBACK, free_ports_below_ephemeral
from gossipper.media.rtp import parse_rtp, rtp_payload
from tests.e2e.processes import Processes, gossipper_command, read_json, run_gossipper
from tests.media.scale.backends import Backend
from tests.media.scale.echo_peer import ImpairingEcho, drop_every_10th

REPO = Path(__file__).resolve().parents[2]
SINK_PORT = 30000

# Runs inside the (possibly new) network namespace: a sink that never reads, the kernel's
# datagram count before and after, and the gossipper run in between.
_COUNTED_RUN = """
import json, socket, subprocess, sys
job = json.loads(sys.argv[1])
if job["netns"]:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
sink.bind(("127.0.0.1", job["sink_port"]))
def out_datagrams():
    rows = [line.split() for line in open("/proc/net/snmp") if line.startswith("Udp:")]
    return int(rows[1][rows[0].index("OutDatagrams")])
before = out_datagrams()
run = subprocess.run(job["command"], capture_output=True, text=True, timeout=job["timeout"], cwd=job["cwd"])
after = out_datagrams()
print(json.dumps({"returncode": run.returncode, "stdout": run.stdout, "stderr": run.stderr,
                  "out_datagrams": after - before}))
"""


def _can_unshare() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True)
    return probe.returncode == 0


NETNS = _can_unshare()


def counted_run(backend: Backend, args: list[str], timeout: float) -> dict[str, object]:
    """Run gossipper against a silent sink; returns its exit, output and the kernel's datagram count."""
    job = {
        "netns": NETNS,
        "sink_port": SINK_PORT,
        "command": [*gossipper_command(*args, *backend.flags), "-nostdin"],
        "timeout": timeout,
        "cwd": str(REPO),
    }
    prefix = ["unshare", "-n", "--"] if NETNS else []
    done = subprocess.run(
        [*prefix, sys.executable, "-c", _COUNTED_RUN, json.dumps(job)],
        capture_output=True,
        text=True,
        timeout=timeout + 30,
        env=backend.subprocess_env(),
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def _check_counted_run(backend: Backend, streams: int, seconds: int, tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    # Outside a private namespace, other tests' traffic lands in the kernel count: stay clear of
    # the shared port range then.
    base = 6000 if NETNS else free_ports_below_ephemeral(2 * streams)
    result = counted_run(
        backend,
        [
            "-rtp_send",
            "-media_scale",
            "-rtp_streams",
            str(streams),
            "-rtp_addr",
            f"{LOOPBACK}:{SINK_PORT}",
            "-rtp_codec",
            "PCMU/8000",
            "-rtp_freq",
            "20",
            "-rtp_dur",
            str(seconds * 1000),
            "-i",
            LOOPBACK,
            "-mp",
            str(base),
            "-summary_json",
            str(summary),
        ],
        timeout=seconds + 60,
    )
    assert result["returncode"] == 0, result["stderr"]
    assert f"engine {backend.name}" in str(result["stderr"])
    media = read_json(summary)["media"]
    assert isinstance(media, dict)
    expected = streams * 50 * seconds
    sent = media["rtp_packets_sent"]
    assert abs(sent - expected) <= expected * 0.005, (sent, expected)
    assert media["rtp_octets_sent"] == sent * 160
    assert media["send_errors"] == {}
    assert media["streams_started"] == streams
    assert media["engine"] == backend.name
    kernel = result["out_datagrams"]
    assert isinstance(kernel, int)
    slack = 0 if NETNS else max(20, int(sent * 0.002))  # others' datagrams in a shared namespace
    assert sent <= kernel <= sent + slack, f"kernel sent {kernel} datagrams, gossipper counted {sent}"
    assert "rtp_send done" in str(result["stdout"])


@pytest.mark.parametrize("streams", [100, 1000])
def test_packet_counts_match_schedule_and_kernel(backend: Backend, streams: int, tmp_path: Path) -> None:
    _check_counted_run(backend, streams, 5, tmp_path)


@pytest.mark.soak
def test_soak_1000_streams_for_60_seconds(backend: Backend, tmp_path: Path) -> None:
    _check_counted_run(backend, 1000, 60, tmp_path)


def test_a_closed_port_gets_every_packet_and_the_icmp_reports_count_apart(
    backend: Backend, tmp_path: Path
) -> None:
    """Toward a port nobody listens on, each packet draws an ICMP port unreachable that the
    stream's socket hands to its next send (ECONNREFUSED) instead of sending: that packet
    goes again at once, so every packet due is sent and the reports count apart, by errno,
    in the JSON and the summary line (before, half of the packets were lost to them)."""
    streams, packets_each = 20, 50
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed:
        closed.bind((LOOPBACK, 0))
        dead_port = closed.getsockname()[1]
    summary = tmp_path / "summary.json"
    result = run_gossipper(
        "-rtp_send",
        "-media_scale",
        "-rtp_streams",
        str(streams),
        "-rtp_addr",
        f"{LOOPBACK}:{dead_port}",
        "-rtp_dur",
        str(20 * packets_each),
        "-mp",
        str(free_ports_below_ephemeral(2 * streams)),
        "-summary_json",
        str(summary),
        *backend.flags,
        timeout=60,
        env=backend.subprocess_env(),
    )
    media = read_json(summary)["media"]
    assert isinstance(media, dict)
    failed = sum(media["send_errors"].values())
    assert result.returncode == (1 if failed else 0), result.stderr
    assert failed <= 1, media["send_errors"]  # a retry fails only if another report lands meanwhile
    assert media["rtp_packets_sent"] == streams * packets_each - failed
    icmp = media["rtp_icmp_unreachable"]
    assert set(icmp) == {"ECONNREFUSED"} and icmp["ECONNREFUSED"] >= streams * packets_each // 2
    assert f"ICMP unreachable (each packet sent again): ECONNREFUSED {icmp['ECONNREFUSED']}" in result.stdout


def test_cli_overrides_reach_the_wire(backend: Backend) -> None:
    """-rtp_codec, -rtp_freq, -rtp_pt, -rtp_ch and -mp, read back from a receiving socket."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    receiver.bind((LOOPBACK, 0))
    base = free_ports_below_ephemeral(4)
    try:
        result = run_gossipper(
            "-rtp_send",
            "-media_scale",
            "-rtp_streams",
            "2",
            "-rtp_addr",
            f"{LOOPBACK}:{receiver.getsockname()[1]}",
            "-rtp_codec",
            "PCMA/8000",
            "-rtp_freq",
            "10",
            "-rtp_dur",
            "200",
            "-rtp_pt",
            "101",
            "-rtp_ch",
            "2",
            "-mp",
            str(base),
            "-media_rtprio",
            "0",
            *backend.flags,
            timeout=60,
            env=backend.subprocess_env(),
        )
        assert result.returncode == 0, result.stderr
        if backend.name.startswith("native"):
            assert "workers at normal priority (-media_rtprio 0)" in result.stderr
        receiver.settimeout(0.5)
        flows: dict[int, list[tuple[int, bytes, bytes]]] = defaultdict(list)
        while True:
            try:
                data, (_, port) = receiver.recvfrom(65535)
            except TimeoutError:
                break
            header = parse_rtp(data)
            flows[header.ssrc].append((port, data, rtp_payload(data, header)))
    finally:
        receiver.close()
    assert len(flows) == 2
    assert sorted(flow[0][0] for flow in flows.values()) == [base, base + 2]
    for flow in flows.values():
        assert len(flow) == 20
        headers = [parse_rtp(data) for _, data, _ in flow]
        assert all(header.payload_type == 101 for header in headers)
        assert all(payload == b"\xd5" * 160 for _, _, payload in flow)  # 80 samples x 2 channels
        assert all((b.timestamp - a.timestamp) & 0xFFFFFFFF == 80 for a, b in itertools.pairwise(headers))


def test_sigint_ends_the_run_with_a_whole_summary(
    backend: Backend, tmp_path: Path, processes: Processes
) -> None:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sink.bind((LOOPBACK, 0))
    summary = tmp_path / "summary.json"
    args = [
        "-rtp_send",
        "-media_scale",
        "-rtp_streams",
        "50",
        "-rtp_addr",
        f"{LOOPBACK}:{sink.getsockname()[1]}",
    ]
    process = processes.start(
        [
            *gossipper_command(
                *args, "-mp", str(free_ports_below_ephemeral(100)), "-summary_json", str(summary)
            ),
            *backend.flags,
            "-nostdin",
        ],
        env=backend.subprocess_env(),
    )
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the first live line: streams are running
            line = process.stderr.readline()
            if not line or " pps " in line:
                break
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        sink.close()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "rtp_send done" in stdout
    media = read_json(summary)["media"]
    assert isinstance(media, dict)
    assert media["rtp_packets_sent"] >= 50 * 40  # about a second of 50 streams at 50 pps
    assert media["streams_started"] == 50


def test_bind_failure_names_the_port_and_exits_254() -> None:
    base = free_ports_below_ephemeral(6)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind((LOOPBACK, base + 2))
    try:
        result = run_gossipper(
            "-rtp_send",
            "-media_scale",
            "-rtp_streams",
            "3",
            "-rtp_addr",
            f"{LOOPBACK}:{blocker.getsockname()[1]}",
            "-mp",
            str(base),
            "-rtp_dur",
            "1000",
            timeout=60,
        )
    finally:
        blocker.close()
    assert result.returncode == 254
    assert f"{LOOPBACK}:{base + 2}" in result.stderr
    assert "Traceback" not in result.stderr


def _fd_case() -> list[object]:
    """More streams than the hard descriptor limit allows, where the port range can hold them."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard + 1 > 29000:
        return [pytest.param([], "", marks=pytest.mark.skip(reason=f"hard fd limit {hard} is too high"))]
    return [([*RUN, "-rtp_streams", str(hard + 1), "-mp", "1024"], "ulimit -n")]


RUN = ["-rtp_send", "-media_scale", "-rtp_addr", "{sink}", "-rtp_dur", "1000"]
BAD_INPUT = [
    ([*RUN, "-media_srtp"], "-media_scale"),
    (["-rtp_send", "-rtp_streams", "2", "-rtp_addr", "{sink}"], "-rtp_streams"),
    (["-rtp_send", "-media_scale"], "-rtp_send"),
    ([*RUN, "-rtp_codec", "GSM/8000"], "-rtp_codec"),
    ([*RUN, "-rtp_freq", "0"], "-rtp_freq"),
    ([*RUN, "-rtp_freq", "5000"], "-rtp_freq"),
    (["-rtp_send", "-media_scale", "-rtp_addr", "{sink}", "-rtp_dur", "-5"], "-rtp_dur"),
    ([*RUN, "-rtp_ch", "0"], "-rtp_ch"),
    ([*RUN, "-rtp_pt", "200"], "-rtp_pt"),
    ([*RUN, "-media_rtprio", "100"], "-media_rtprio"),
    ([*RUN, "-media_rtprio", "high"], "-media_rtprio"),
    (["-rtp_send", "-media_scale", "-rtp_addr", ":9"], "-rtp_addr"),
    ([*RUN, "-rtp_streams", "40000", "-mp", "6000"], "fit"),
    *_fd_case(),
]


@pytest.mark.parametrize(("argv", "expected"), BAD_INPUT)
def test_bad_input_is_one_line_naming_the_flag(argv: list[str], expected: str) -> None:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind((LOOPBACK, 0))
    address = f"{LOOPBACK}:{sink.getsockname()[1]}"
    try:
        result = run_gossipper(*(word.replace("{sink}", address) for word in argv), timeout=60)
        sink.settimeout(0.2)
        with pytest.raises(TimeoutError):
            sink.recv(2048)  # nothing may be sent before the input is found bad
    finally:
        sink.close()
    assert result.returncode == 1, result.stderr  # SIPp's status for what it refuses on its command line
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("quality", ["on", "off"])
def test_receive_quality_of_echoed_streams_reaches_the_summary(
    backend: Backend, quality: str, tmp_path: Path
) -> None:
    """-rtp_quality on (the default): an echo dropping every 10th packet of each stream shows as
    10% loss in media.quality, every stream echoed; off: the section says so and nothing more."""
    streams, packets_each = 4, 100
    peer = ImpairingEcho({})
    peer.impairments.update(dict.fromkeys(range(1, 65536), drop_every_10th))
    summary = tmp_path / "summary.json"
    try:
        result = run_gossipper(
            "-rtp_send",
            "-media_scale",
            "-rtp_streams",
            str(streams),
            "-rtp_addr",
            f"{LOOPBACK}:{peer.port}",
            "-rtp_dur",
            str(20 * packets_each),
            "-mp",
            str(free_ports_below_ephemeral(2 * streams)),
            "-rtp_quality",
            quality,
            "-summary_json",
            str(summary),
            *backend.flags,
            timeout=60,
            env=backend.subprocess_env(),
        )
    finally:
        peer.close()
    assert result.returncode == 0, result.stderr
    media = read_json(summary)["media"]
    assert isinstance(media, dict)
    assert media["rtp_packets_received"] >= streams * packets_each * 9 // 10 - streams
    if quality == "off":
        assert media["quality"] == {"enabled": False}
        return
    measured = media["quality"]
    assert (measured["streams"], measured["streams_receiving"], measured["streams_echoed"]) == (4, 4, 4)
    assert measured["loss_percent"] == pytest.approx(10.0, abs=1.0)
    assert measured["stream_loss_percent"]["max"] == pytest.approx(10.0, abs=1.5)
    assert measured["stream_mos"]["max"] < 4.0 and len(measured["worst_streams"]) == 4
    assert "rtp_send quality: 4/4 streams receiving, loss" in result.stdout
