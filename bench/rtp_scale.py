"""Synthetic RTP at scale: gossipper's backends against a raw C send() loop and SIPp.

For each stream count, every sender runs alone in its own network namespace with a
sink socket that never reads (the kernel drops what overflows its small buffer), so
/proc/PID/net/snmp Udp OutDatagrams counts exactly that sender's datagrams. After the
sender is up and one second of warm-up, a window of --seconds is measured from /proc:
datagrams sent, CPU time (user + system, which includes the loopback delivery the
kernel does in the sender's context), threads and resident memory.

    sudo .venv/bin/python -m bench.rtp_scale [--streams 1000,5000,8000,10000] [--seconds 20] [--repeat 3]

Senders: "raw" (bench/raw_send_loop.c, compiled here with cc: one thread, one send()
per packet, paced like gossipper), "raw-mt" (the same loop on one thread per core, for
stream counts one core cannot keep up with), "native-iouring", "native-send", "python" (the
standalone CLI with each backend), "sipp" (SIPp's rtp_stream in a UAC scenario against
a SIPp UAS on loopback, one call per stream). "within 1/2 ms" comes from each sender's
own counters (SIPp keeps none). Needs root for `unshare -n`.

After each stream count, one line checks SPEC 6.4 for each native sender: CPU per
million packets no more than the raw reference's (the cheaper of raw and raw-mt among
those that kept rate and schedule) and at most 0.9 x SIPp's, with >= 99% of its packets
within 2 ms; a sender that fell behind its offered rate is flagged in its row. With
--repeat, the raw check takes the median of each round's ratio to that round's reference.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    REPO,
    SDP,
    compile_c,
    gossipper_command,
    kill_group,
    median_round,
    percent,
    sample,
    sipp_uac_xml,
    start_in_namespace,
    threads_and_rss_mb,
    window,
    write_pcmu_wav,
)
from gossipper.cli.ports import LOOPBACK

SINK_PORT = 40000
BASE_PORT = 6000
INTERVAL_MS = 20
WARMUP_S = 1.0
SIPP_RAMP_S = 8.0  # calls are placed over this long, then the window starts
SIPP_UAS_PORT = 5070
TOOLS = ("raw", "raw-mt", "native-iouring", "native-send", "python", "sipp")
RAW = ("raw", "raw-mt")
NATIVE = ("native-iouring", "native-send")
SIPP_FACTOR = 0.9  # SPEC 6.4: gossipper's CPU per packet at most this share of SIPp's
MIN_WITHIN_2MS = 0.99
BEHIND = 0.99  # achieved below this share of offered: the sender could not keep up
RAW_CAVEATS = (
    "raw is the reference as asked, but not like for like: it sends a packet once it is less than\n"
    "1 ms ahead (up to 1 ms early, late only by wake-up delay; gossipper's core: at most 0.5 ms\n"
    "early, or 0.9 ms for a busy worker that runs ahead rather than sleep less than 0.4 ms); it\n"
    "keeps no per-stream state and counts nothing received; and one thread\n"
    "falls behind once a core cannot keep up, where it stops sleeping and spends less per packet:\n"
    "the check then takes raw-mt, one thread per core, if it kept rate and schedule."
)

# Sink: bound, tiny buffer, never read.
SINK = [
    sys.executable,
    "-c",
    "import signal, socket\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)\n"
    f"s.bind(('{LOOPBACK}', {SINK_PORT}))\n"
    "signal.pause()\n",
]


@dataclass
class Row:
    streams: int
    tool: str
    achieved_pps: float = 0.0
    within_1ms: float | None = None
    within_2ms: float | None = None
    cpu_s_per_mpkt: float | None = None
    threads: int = 0
    rss_mb: float = 0.0
    note: str = ""

    @property
    def offered_pps(self) -> int:
        return self.streams * 1000 // INTERVAL_MS


@dataclass
class Launch:
    """How to start one sender: command, environment, when it is ready, how its timing is read."""

    command: list[str]
    background: list[list[str]]
    env: dict[str, str]
    ready: Callable[[list[str], float], bool]  # (stderr lines so far, seconds since start)
    timing: Callable[[str], tuple[float | None, float | None]]  # stdout -> (within 1 ms, 2 ms)
    cwd: Path = REPO


def measure(streams: int, tool: str, launch: Launch, seconds: float) -> Row:
    row = Row(streams, tool)
    process = start_in_namespace(
        launch.background, launch.command, stdout=subprocess.PIPE, cwd=launch.cwd, env=launch.env
    )
    lines: list[str] = []
    assert process.stderr is not None
    stderr = process.stderr
    reader = threading.Thread(target=lambda: lines.extend(stderr), daemon=True)
    reader.start()
    started = time.monotonic()
    try:
        while not launch.ready(lines, time.monotonic() - started):
            if process.poll() is not None or time.monotonic() - started > 120:
                row.note = "did not start: " + " | ".join(line.strip() for line in lines[-3:])
                return row
            time.sleep(0.1)
        time.sleep(WARMUP_S)
        first = sample(process.pid)
        time.sleep(seconds)
        last = sample(process.pid)
        row.threads, row.rss_mb = threads_and_rss_mb(process.pid)
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            row.note = "did not stop on SIGINT"
        kill_group(process)  # the helpers too, before reading: nothing else may hold the pipe open
        stdout = process.stdout.read() if process.stdout is not None and not row.note else ""
    except (OSError, ValueError) as error:  # the sender died mid-window
        row.note = f"failed: {error}"
        return row
    finally:
        kill_group(process)
    row.achieved_pps, row.cpu_s_per_mpkt = window(first, last)
    if row.achieved_pps < BEHIND * row.offered_pps:
        row.note = f"fell behind: {row.achieved_pps / row.offered_pps:.0%} of offered"
    try:
        row.within_1ms, row.within_2ms = launch.timing(stdout)
    except (OSError, ValueError, KeyError, IndexError) as error:
        row.note = f"no timing counters: {error}"
    if not row.note and row.within_2ms is not None and row.within_2ms < MIN_WITHIN_2MS:
        row.note = "kept the rate, not the schedule"
    return row


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


# --- the senders ------------------------------------------------------------------------------


def raw_launch(streams: int, binary: Path, threads: int) -> Launch:
    command = [
        str(binary),
        str(streams),
        LOOPBACK,
        str(SINK_PORT),
        LOOPBACK,
        str(BASE_PORT),
        str(INTERVAL_MS),
        "0",
        str(threads),
    ]

    def timing(stdout: str) -> tuple[float | None, float | None]:
        result = json.loads(stdout.strip().splitlines()[-1])
        return _ratio(result["on_time_1ms"], result["packets"]), _ratio(
            result["on_time_2ms"], result["packets"]
        )

    return Launch(
        command, [SINK], dict(os.environ), lambda lines, _: any("ready" in line for line in lines), timing
    )


def gossipper_launch(streams: int, tool: str, workdir: Path) -> Launch:
    summary = workdir / f"summary-{tool}-{streams}.json"
    command = gossipper_command(
        "-rtp_send",
        "-media_scale",
        "-rtp_streams",
        str(streams),
        "-rtp_addr",
        f"{LOOPBACK}:{SINK_PORT}",
        "-rtp_freq",
        str(INTERVAL_MS),
        "-i",
        LOOPBACK,
        "-mp",
        str(BASE_PORT),
        "-summary_json",
        str(summary),
        "-nostdin",
    )
    if tool == "native-iouring":
        command.append("-media_iouring")
    env = {key: value for key, value in os.environ.items() if not key.startswith("GOSSIPPER_MEDIA")}
    env["GOSSIPPER_MEDIA_BACKEND"] = "python" if tool == "python" else "native"

    def timing(_: str) -> tuple[float | None, float | None]:
        media = json.loads(summary.read_text())["media"]
        if media["engine"] != tool:
            raise ValueError(f"asked for {tool}, ran {media['engine']}")
        sent = media["rtp_packets_sent"]
        return _ratio(media["on_time_1ms"], sent), _ratio(media["on_time_2ms"], sent)

    return Launch(command, [SINK], env, lambda lines, _: any("rtp_send:" in line for line in lines), timing)


def _uas_xml() -> str:
    def response(sdp: bool) -> str:
        body = SDP.format(port=SINK_PORT) if sdp else ""
        content = "Content-Type: application/sdp\nContent-Length: [len]" if sdp else "Content-Length: 0"
        return (
            "<send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n"
            "[last_To:];tag=[pid]SIPpTag01[call_number]\n[last_Call-ID:]\n[last_CSeq:]\n"
            f"Contact: <sip:[local_ip]:[local_port]>\n{content}\n\n{body}\n]]></send>"
        )

    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="bench rtp_stream uas">
<recv request="INVITE"/>
{response(True)}
<recv request="ACK"/>
<recv request="BYE"/>
{response(False)}
</scenario>
"""


def sipp_launch(streams: int, seconds: float, workdir: Path, sipp: str) -> Launch:
    write_pcmu_wav(workdir / "silence.wav")
    hold_ms = int((SIPP_RAMP_S + WARMUP_S + seconds + 30) * 1000)
    (workdir / "uac.xml").write_text(sipp_uac_xml(hold_ms))
    (workdir / "uas.xml").write_text(_uas_xml())
    rate = math.ceil(streams / SIPP_RAMP_S)
    common = ["-i", LOOPBACK, "-mi", LOOPBACK, "-nostdin"]
    uas = [sipp, "-sf", "uas.xml", "-p", str(SIPP_UAS_PORT), "-mp", "8000", *common]
    uac = [sipp, "-sf", "uac.xml", f"{LOOPBACK}:{SIPP_UAS_PORT}", "-p", "5061", "-mp", str(BASE_PORT)]
    uac += ["-m", str(streams), "-l", str(streams), "-r", str(rate), *common]
    return Launch(
        uac,
        [SINK, uas],
        dict(os.environ),
        lambda _, elapsed: elapsed >= SIPP_RAMP_S + 1,
        lambda _: (None, None),
        cwd=workdir,
    )


# --- driver -----------------------------------------------------------------------------------


def _measure_tool(
    streams: int, tool: str, seconds: float, workdir: Path, raw_binary: Path | None, sipp: str | None
) -> Row:
    if tool in RAW and raw_binary is not None:
        threads = 1 if tool == "raw" else min(os.cpu_count() or 1, streams)
        return measure(streams, tool, raw_launch(streams, raw_binary, threads), seconds)
    if tool == "sipp":
        if sipp is None:
            return Row(streams, tool, note="sipp not installed (Debian: apt-get install sip-tester)")
        return measure(streams, tool, sipp_launch(streams, seconds, workdir, sipp), seconds)
    return measure(streams, tool, gossipper_launch(streams, tool, workdir), seconds)


def _cpu(row: Row) -> float | None:
    return row.cpu_s_per_mpkt


TABLE_HEADER = (
    f"{'streams':>7} {'sender':<15} {'offered pps':>11} {'achieved pps':>12} {'<=1 ms':>7} {'<=2 ms':>7} "
    f"{'CPU s/Mpkt':>10} {'threads':>7} {'RSS MB':>7}  note"
)


def format_row(row: Row) -> str:
    cpu = "-" if row.cpu_s_per_mpkt is None else f"{row.cpu_s_per_mpkt:.2f}"
    return (
        f"{row.streams:>7} {row.tool:<15} {row.offered_pps:>11} {row.achieved_pps:>12.0f} "
        f"{percent(row.within_1ms):>7} {percent(row.within_2ms):>7} {cpu:>10} {row.threads:>7} "
        f"{row.rss_mb:>7.1f}  {row.note}"
    )


def raw_reference(rows: list[Row]) -> Row | None:
    """The cheapest raw loop that kept both the offered rate and its schedule; failing that,
    the cheapest that kept the rate; failing that, the cheapest measured. A loop behind its
    schedule never sleeps, so what it spends per packet is not the cost of the same job."""
    measured = [row for row in rows if row.tool in RAW and row.cpu_s_per_mpkt is not None]
    kept_rate = [row for row in measured if row.achieved_pps >= BEHIND * row.offered_pps]
    on_time = [row for row in kept_rate if (row.within_2ms or 0.0) >= MIN_WITHIN_2MS]
    candidates = on_time or kept_rate or measured
    return min(candidates, key=lambda row: row.cpu_s_per_mpkt or 0.0) if candidates else None


def paired_ratios(rounds: dict[str, list[Row]], tool: str) -> list[float]:
    """The tool's CPU per packet over the raw reference's of the same round, round by round.

    The machine drifts by several percent over minutes (other guests, frequency), more than the
    gap being measured; a round's senders run back to back, so their ratio cancels most of it."""
    ratios = []
    for index, row in enumerate(rounds.get(tool, [])):
        same_round = [rounds[raw][index] for raw in RAW if raw in rounds]
        reference = raw_reference(same_round)
        if reference is not None and reference.cpu_s_per_mpkt and row.cpu_s_per_mpkt:
            ratios.append(row.cpu_s_per_mpkt / reference.cpu_s_per_mpkt)
    return ratios


def format_ratios(tool: str, ratios: list[float]) -> str:
    listed = " ".join(f"{ratio:.3f}" for ratio in ratios)
    return f"{'':>7} {tool} / raw reference, per round: {listed}; median {statistics.median(ratios):.3f}"


def acceptance(rows: list[Row], ratios: dict[str, list[float]] | None = None) -> str:
    """SPEC 6.4 for each native sender of one stream count, against raw and SIPp of the same run.
    With several rounds, the raw check takes the median of the per-round ratios."""
    by_tool = {row.tool: row for row in rows}
    raw, sipp = raw_reference(rows), by_tool.get("sipp")
    verdicts = []
    for tool in NATIVE:
        row = by_tool.get(tool)
        if row is None or row.cpu_s_per_mpkt is None:
            continue
        checks = []
        paired = (ratios or {}).get(tool, [])
        if len(paired) > 1:
            median = statistics.median(paired)
            checks.append((f"<= raw (median paired ratio {median:.3f})", median <= 1.0))
        elif raw is not None and raw.cpu_s_per_mpkt is not None:
            label = f"<= {raw.tool} {raw.cpu_s_per_mpkt:.2f}"
            checks.append((label, row.cpu_s_per_mpkt <= raw.cpu_s_per_mpkt))
        if sipp is not None and sipp.cpu_s_per_mpkt is not None:
            limit = SIPP_FACTOR * sipp.cpu_s_per_mpkt
            checks.append((f"<= {SIPP_FACTOR} x sipp {limit:.2f}", row.cpu_s_per_mpkt <= limit))
        on_time = row.within_2ms is not None and row.within_2ms >= MIN_WITHIN_2MS
        checks.append((f"{percent(row.within_2ms)} within 2 ms", on_time))
        checks.append(("kept up", row.achieved_pps >= BEHIND * row.offered_pps))
        text = ", ".join(f"{label} {'ok' if passed else 'FAIL'}" for label, passed in checks)
        verdicts.append(f"{tool} {row.cpu_s_per_mpkt:.2f}: {text}")
    return f"{'':>7} SPEC 6.4: " + ("; ".join(verdicts) if verdicts else "no native sender measured")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="1000,5000,8000,10000", help="comma-separated stream counts")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window per sender")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"subset of {','.join(TOOLS)}")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds per stream count, each in a rotated order; rows show the median round",
    )
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    counts = [int(word) for word in args.streams.split(",")]
    tools = [word for word in args.tools.split(",") if word]
    unknown = set(tools) - set(TOOLS)
    if unknown:
        parser.error(f"unknown sender(s): {', '.join(sorted(unknown))}")
    if shutil.which("unshare") is None or os.geteuid() != 0:
        parser.error("needs root and unshare(1): each sender runs in its own network namespace")
    sipp = shutil.which("sipp")
    print(TABLE_HEADER)
    print("-" * len(TABLE_HEADER), flush=True)
    with tempfile.TemporaryDirectory(prefix="rtp-scale-") as temp:
        workdir = Path(temp)
        raw_binary = compile_c(workdir, "raw_send_loop", "-pthread") if set(RAW) & set(tools) else None
        for streams in counts:
            rounds: dict[str, list[Row]] = {tool: [] for tool in tools}
            for round_index in range(args.repeat):
                # Rotating the order spreads drifts of the machine over every sender alike.
                shift = round_index % len(tools)
                for tool in tools[shift:] + tools[:shift]:
                    row = _measure_tool(streams, tool, args.seconds, workdir, raw_binary, sipp)
                    rounds[tool].append(row)
                    if args.repeat > 1:
                        print(f"{'':>7} round {round_index + 1}: {format_row(row).strip()}", flush=True)
            rows = [median_round(rounds[tool], _cpu, "CPU") for tool in tools]
            for row in rows:
                print(format_row(row), flush=True)
            ratios = {tool: paired_ratios(rounds, tool) for tool in NATIVE}
            for tool, paired in ratios.items():
                if len(paired) > 1:
                    print(format_ratios(tool, paired), flush=True)
            print(acceptance(rows, ratios), flush=True)
    if set(RAW) & set(tools):
        print(RAW_CAVEATS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
