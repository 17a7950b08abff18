"""What measuring media quality costs: N echoed scale streams with -rtp_quality on and off.

For each stream count and each setting, `gossipper sipp -rtp_send -media_scale` sends N PCMU
streams at 20 ms to an echo (bench/echo_peer.c, compiled here with cc, pinned to one CPU)
that sends every packet straight back to its stream's port, as an SBC echoing RTP would;
the echo runs at a real-time priority above the generator's senders, so that they do not
preempt it on its CPU (an echo falling behind shows as loss and round trip in the figures).
Each run is alone in a fresh network namespace. After the start and a warm-up, a window of
--seconds is measured: the generator's CPU time (user + system, from /proc/PID/stat, read as
each of its one-second live lines arrives) over the packets it sent meanwhile (from those
lines). "<=2 ms" is the share of the run's packets sent within 2 ms of their slot, and the
last columns are what the quality measurement found (the echo's loss would show there),
all from -summary_json.

    sudo .venv/bin/python -m bench.rtp_quality [--streams 1000,5000,10000] [--seconds 15] [--repeat 2]

With --repeat, the settings alternate within each round (on, off, then off, on...), rows
show the median round, and the on/off ratio is the median of each round's own ratio: the
machine drifts by several percent over minutes, which a ratio of runs a few seconds apart
mostly cancels. The check per stream count: quality on costs at most MAX_RATIO x the CPU
per packet of quality off, and keeps >= 99% of packets within 2 ms. Needs root for
`unshare -n` (and, for 10,000 streams, `ulimit -n` above 10,000).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import (
    REPO,
    compile_c,
    cpu_seconds,
    gossipper_command,
    kill_group,
    median_round,
    percent,
    start_in_namespace,
)
from gossipper.cli.ports import LOOPBACK

ECHO_PORT = 40000
BASE_PORT = 6000
INTERVAL_MS = 20
WARMUP_S = 2.0
SETTINGS = ("on", "off")
MAX_RATIO = 1.20  # issue 16: quality on costs at most 20% more CPU per packet
MIN_WITHIN_2MS = 0.99
LIVE_PACKETS = re.compile(r"gossipper:\s+[\d.]+ s\s+\d+ pps\s+(\d+) packets")


@dataclass
class Row:
    streams: int
    quality: str
    sent_pps: float = 0.0
    echoed_share: float | None = None  # packets received back over packets sent, whole run
    cpu_us_per_packet: float | None = None
    within_2ms: float | None = None
    loss_percent: float | None = None
    rtt_p50_ms: float | None = None
    mos_p50: float | None = None
    note: str = ""

    @property
    def offered_pps(self) -> int:
        return self.streams * 1000 // INTERVAL_MS


@dataclass
class LiveLines:
    """The generator's one-second live lines as they come, each with its CPU time then."""

    pid: int
    marks: list[tuple[float, int, float]] = field(default_factory=list)  # (at, packets, cpu s)
    lines: list[str] = field(default_factory=list)

    def read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append(line)
            match = LIVE_PACKETS.search(line)
            if match:
                try:
                    self.marks.append((time.monotonic(), int(match.group(1)), cpu_seconds(self.pid)))
                except OSError:
                    return  # the process is gone


def measure(
    streams: int, quality: str, seconds: float, echo: list[str], workdir: Path, cpus: str | None, mode: str
) -> Row:
    row = Row(streams, quality)
    summary = workdir / f"summary-{streams}-{quality}.json"
    summary.unlink(missing_ok=True)  # a run that writes none must not be read as an earlier one's
    command = gossipper_command(
        "-rtp_send",
        "-media_scale",
        "-rtp_streams",
        str(streams),
        "-rtp_addr",
        f"{LOOPBACK}:{ECHO_PORT}",
        "-rtp_freq",
        str(INTERVAL_MS),
        "-i",
        LOOPBACK,
        "-mp",
        str(BASE_PORT),
        "-rtp_quality",
        quality,
        "-summary_json",
        str(summary),
        "-nostdin",
    )
    if mode == "iouring":
        command.append("-media_iouring")
    if cpus is not None:
        command = ["taskset", "-c", cpus, *command]
    env = {key: value for key, value in os.environ.items() if not key.startswith("GOSSIPPER_MEDIA")}
    env["GOSSIPPER_MEDIA_BACKEND"] = "native"
    process = start_in_namespace([echo], command, stdout=subprocess.DEVNULL, cwd=REPO, env=env)
    live = LiveLines(process.pid)
    reader = threading.Thread(target=live.read, args=(process.stderr,), daemon=True)
    reader.start()
    try:
        started = time.monotonic()
        while not any("rtp_send:" in line for line in live.lines):
            if process.poll() is not None or time.monotonic() - started > 180:
                row.note = "did not start: " + " | ".join(line.strip() for line in live.lines[-3:])
                return row
            time.sleep(0.1)
        window_start = time.monotonic() + WARMUP_S
        time.sleep(WARMUP_S + seconds + 1.2)  # one live line past the window's end
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        row.note = "did not stop on SIGINT"
    finally:
        kill_group(process)
    inside = [mark for mark in live.marks if mark[0] >= window_start]
    if len(inside) < 2:
        row.note = row.note or "too few live lines in the window"
        return row
    (first_at, first_packets, first_cpu), (last_at, last_packets, last_cpu) = inside[0], inside[-1]
    packets = last_packets - first_packets
    row.sent_pps = packets / (last_at - first_at)
    row.cpu_us_per_packet = (last_cpu - first_cpu) / packets * 1e6 if packets else None
    _read_summary(row, summary)
    if row.sent_pps < 0.99 * row.offered_pps:
        behind = f"fell behind: {row.sent_pps / row.offered_pps:.0%} of offered"
        row.note = f"{row.note}; {behind}" if row.note else behind
    return row


def _read_summary(row: Row, path: Path) -> None:
    try:
        media = json.loads(path.read_text())["media"]
    except (OSError, ValueError, KeyError) as error:
        row.note = f"no summary: {error}"
        return
    sent = media["rtp_packets_sent"]
    row.within_2ms = media["on_time_2ms"] / sent if sent else None
    row.echoed_share = media["rtp_packets_received"] / sent if sent else None
    quality = media.get("quality") or {}
    if quality.get("enabled", True) and quality:
        row.loss_percent = quality["loss_percent"]
        row.rtt_p50_ms = quality["stream_rtt_ms"].get("p50")
        row.mos_p50 = quality["stream_mos"].get("p50")


def _cpu(row: Row) -> float | None:
    return row.cpu_us_per_packet


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


HEADER = (
    "| streams | quality | offered pps | sent pps | echoed back | CPU us/packet | <=2 ms | "
    "loss % | RTT p50 ms | MOS p50 | note |\n|---|---|---|---|---|---|---|---|---|---|---|"
)


def format_row(row: Row) -> str:
    cells = [
        str(row.streams),
        row.quality,
        str(row.offered_pps),
        f"{row.sent_pps:.0f}",
        percent(row.echoed_share),
        _number(row.cpu_us_per_packet, 3),
        percent(row.within_2ms, 2),
        _number(row.loss_percent, 3),
        _number(row.rtt_p50_ms, 3),
        _number(row.mos_p50),
        row.note,
    ]
    return f"| {' | '.join(cells)} |"


def verdict(streams: int, on: Row, ratios: list[float]) -> str:
    if not ratios:
        return f"{streams} streams: no ratio (a run failed)"
    ratio = statistics.median(ratios)
    listed = " ".join(f"{value:.3f}" for value in ratios)
    on_time = on.within_2ms is not None and on.within_2ms >= MIN_WITHIN_2MS
    return (
        f"{streams} streams: CPU per packet on/off per round {listed}, median {ratio:.3f} "
        f"(<= {MAX_RATIO:.2f} {'ok' if ratio <= MAX_RATIO else 'FAIL'}); quality on "
        f"{percent(on.within_2ms, 2)} within 2 ms ({'ok' if on_time else 'FAIL'})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="1000,5000,10000", help="comma-separated stream counts")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured window per run")
    parser.add_argument("--repeat", type=int, default=2, help="rounds of on and off per stream count")
    parser.add_argument(
        "--echo-cpu", type=int, default=(os.cpu_count() or 1) - 1, help="CPU the echo runs on"
    )
    parser.add_argument(
        "--echo-rtprio", type=int, default=20, help="SCHED_RR priority of the echo (0: normal; generator: 10)"
    )
    parser.add_argument(
        "--gossipper-cpus", default=None, help="taskset list for the generator (default: any)"
    )
    parser.add_argument(
        "--mode", choices=("iouring", "send"), default="iouring", help="the native core's send path"
    )
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if shutil.which("unshare") is None or os.geteuid() != 0:
        parser.error("needs root and unshare(1): each run has a network namespace of its own")
    counts = [int(word) for word in args.streams.split(",")]
    print(HEADER, flush=True)
    verdicts = []
    with tempfile.TemporaryDirectory(prefix="rtp-quality-") as temp:
        workdir = Path(temp)
        binary = compile_c(workdir, "echo_peer")
        echo = [str(binary), LOOPBACK, str(ECHO_PORT), str(args.echo_cpu), str(args.echo_rtprio)]
        for streams in counts:
            rounds: dict[str, list[Row]] = {setting: [] for setting in SETTINGS}
            ratios = []
            for round_index in range(args.repeat):
                order = SETTINGS if round_index % 2 == 0 else SETTINGS[::-1]
                for setting in order:
                    row = measure(
                        streams, setting, args.seconds, echo, workdir, args.gossipper_cpus, args.mode
                    )
                    rounds[setting].append(row)
                    if args.repeat > 1:
                        print(f"<!-- round {round_index + 1}: {format_row(row)} -->", flush=True)
                on, off = rounds["on"][-1], rounds["off"][-1]
                if on.cpu_us_per_packet and off.cpu_us_per_packet:
                    ratios.append(on.cpu_us_per_packet / off.cpu_us_per_packet)
            rows = {setting: median_round(rounds[setting], _cpu, "us") for setting in SETTINGS}
            for setting in SETTINGS:
                print(format_row(rows[setting]), flush=True)
            verdicts.append(verdict(streams, rows["on"], ratios))
    print()
    for line in verdicts:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
