"""Soak: the seed's first acceptance criterion held for minutes, reported period by period.

    sudo .venv/bin/python -m bench.soak [streams] [--streams 10000] [--minutes 5] [--period 60]
    sudo .venv/bin/python -m bench.soak calls [--calls 8000] [--rate 500] [--minutes 5] [--period 60]

The criterion (SPEC 6.1, 6.2, 6.5): 10,000 synthetic PCMU streams at 20 ms stay stable for
at least 5 minutes, the packets gossipper counts are within 0.5% of the kernel's own count,
and no send errors are sustained. A short benchmark window (bench.rtp_scale) cannot show a
leak, a counter that drifts from the kernel's, or errors that start after a minute; this
one runs the whole time and prints a row per --period:

streams: the standalone generator, `gossipper sipp -rtp_send -media_scale -rtp_streams N
-rtp_addr SINK` (PCMU/8000 every 20 ms, local ports 6000, 6002, ...), for --minutes after its
streams are registered, then SIGINT. Its live line on stderr (once a second: packets, send
errors, late, active streams) gives its counts; at the first line at or after each period's
end the bench reads /proc at once, so the tool's and the kernel's counts are taken within a
millisecond of each other. The first period also holds start-up (the interpreter, opening N
sockets), so its rate is shown in parentheses and not checked.

calls: `-sn invite_media_scale` as UAC (-m = -l = --calls, -r --rate), each call holding its
stream (-d) for --minutes plus the ramp (calls / rate seconds), so that every call is up with
its stream for --minutes; the UAC ends by itself after its BYEs. The SBC is gossipper's own
UAS with the built-in uas's messages (`-sd uas`) whose SDP answer names the sink's port:
`-sn uas` without -rtp_echo binds no media port, so the streams' connected sockets would meet
ICMP port unreachable (ECONNREFUSED send errors), and with -rtp_echo the echo would double the
namespace's datagrams and cost the UAS a core. Every figure of a row comes from the UAC's
-trace_stat CSV (-fd --period: SIPp's columns, then gossipper's rtp_packets_sent,
rtp_send_errors, rtp_late_packets), polled every 5 ms, /proc being read when a row appears.
Its first row holds the ramp and its last the teardown; keep the ramp shorter than a period,
as the RSS check takes the first row as its reference.

Each run is alone in a fresh network namespace (`unshare -n`) with a sink socket that never
reads (the kernel drops what overflows its 4 kB buffer, counted in RcvbufErrors, not in
InDatagrams). The kernel's count of RTP datagrams is the namespace's Udp OutDatagrams less
its InDatagrams (/proc/PID/net/snmp): in streams mode nothing reads, so it is OutDatagrams;
in calls mode every SIP datagram one side sends the other reads, so what remains is the RTP (a
SIP datagram sent and never read, lost to a full buffer or arriving after its reader left,
would count as RTP). The namespace is read through the sink, which outlives the sender, so
the final kernel count is taken after the sender has exited and compared with the exact
totals of its -summary_json (rtp_packets_sent, late_packets, send_errors): that total is exact,
where a period's difference also holds the few milliseconds between the tool's count and the
/proc read. The share of packets within 1 ms and 2 ms of schedule and the maximum lateness are
in the summary only, so they are printed at the end only.
CPU (user + system, which includes the loopback delivery the kernel does in the sender's
context, as a % of one core) and RSS are the sender's (the UAC's), from /proc/PID/stat and
/proc/PID/status. "late" is the engine's count of packets sent more than 1 ms behind schedule.

Checked at the end, each PASS or FAIL (exit status 1 when any fails):
- count: the summary's packets within 0.5% of the kernel's count, over the whole run;
- send errors: none sustained, i.e. errors in at most one period;
- rate (streams): every period after the first has N active streams and sends within 0.5%
  of N x 50 packets/s; calls: every call succeeded, and the packets are within 0.5% of
  calls x hold / 20 ms (SPEC 6.2);
- RSS: no later row more than max(4 MB, 10%) above the first period's;
- on time: >= 99% of packets within 2 ms (SPEC 6.4); threads under 64 (SPEC 6.3); the engine
  asked for (--engine, io_uring by default as README advises for thousands of streams) ran.
Exit status 2 when the run could not be measured (the sender did not start, or died).
The sender's (UAC's) other stderr lines, its start line and warnings, are shown on stderr.
Needs root for `unshare -n`; for thousands of streams raise the UDP buffer limits first
(`sudo scripts/tune-udp-sysctl.sh`).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    REPO,
    cpu_seconds,
    gossipper_command,
    kill_group,
    markdown_header,
    sipp_elapsed_s,
    start_in_namespace,
    threads_and_rss_mb,
)
from bench.rtp_scale import SINK, SINK_PORT
from gossipper.cli.ports import LOOPBACK

BASE_PORT = 6000  # streams: the sender's first local port
UAS_PORT = 5070
UAC_MEDIA_BASE = 10000
INTERVAL_MS = 20
PACKETS_PER_S = 1000 // INTERVAL_MS
ENGINES = ("native-iouring", "native-send")
MAX_DIFFERENCE = 0.005  # gossipper's count vs the kernel's, and vs the schedule
RSS_GROWTH = 0.10  # RSS may grow by this share of the first period's ...
RSS_GROWTH_FLOOR_MB = 4.0  # ... or by this much, whichever is more
MIN_WITHIN_2MS = 0.99
MAX_THREADS = 64
START_TIMEOUT_S = 120.0  # for the first live line, and between two
STOP_TIMEOUT_S = 60.0
CSV_POLL_S = 0.005
LIVE_LINE = re.compile(
    r"gossipper:\s+(?P<elapsed>[\d.]+) s\s+\d+ pps\s+(?P<packets>\d+) packets\s+(?P<errors>\d+) send errors"
    r"(?:\s+(?P<icmp>\d+) ICMP unreachable)?\s+(?P<late>\d+) late\s+(?P<active>\d+) active streams"
)

# Runs argv[2:] (in place: the same pid) once something holds UDP port argv[1] on loopback:
# the UAS, whose interpreter takes longer to start than in_namespace waits for its helpers.
WAIT_FOR_UAS = (
    "import os, socket, sys, time\n"
    "deadline = time.monotonic() + 60\n"
    "while time.monotonic() < deadline:\n"
    "    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:\n"
    "        try:\n"
    f"            probe.bind(('{LOOPBACK}', int(sys.argv[1])))\n"
    "        except OSError:\n"
    "            break\n"
    "    time.sleep(0.05)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


Show = Callable[[list["Reading"]], None]  # prints the row the last reading closes


class SoakError(Exception):
    """The run could not be measured (the sender did not start, or died)."""


# --- reading the run ----------------------------------------------------------------------------


class Namespace:
    """The run's network namespace, read through a process in it: its helpers (the sink) first,
    which outlive the sender, then the sender itself."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.pid = process.pid
        self.helpers: list[int] = []

    def rtp_datagrams(self) -> int:
        """Udp OutDatagrams less InDatagrams: what was sent and never read, the RTP."""
        if not self.helpers:
            self.helpers = _group_members(self.pid)
        for pid in [*self.helpers, self.pid]:
            try:
                counters = _udp_counters(pid)
            except (OSError, ValueError, IndexError):
                continue
            return counters["OutDatagrams"] - counters["InDatagrams"]
        raise SoakError("no process left in the network namespace to read its counters through")


def _udp_counters(pid: int) -> dict[str, int]:
    rows = [
        line.split()
        for line in Path(f"/proc/{pid}/net/snmp").read_text().splitlines()
        if line.startswith("Udp:")
    ]
    return dict(zip(rows[0][1:], (int(value) for value in rows[1][1:]), strict=True))


def _group_members(pgid: int) -> list[int]:
    """The other processes of a process group (the namespace's helpers), from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == pgid:
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            if int(stat[stat.rindex(")") + 2 :].split()[2]) == pgid:  # state, ppid, pgrp
                members.append(int(entry.name))
    return sorted(members)


@dataclass
class Reading:
    """The counters at one moment: the tool's own (live line or stat row), the kernel's, and
    the measured process's CPU, RSS and threads (None once it has exited)."""

    at: float  # time.monotonic()
    elapsed_s: float  # the tool's own clock
    packets: int
    late: int
    send_errors: int
    kernel: int
    cpu_s: float
    rss_mb: float | None = None
    threads: int | None = None
    active: int = 0  # streams (live line) or calls up (CurrentCall)
    created: int = 0
    succeeded: int = 0
    failed: int = 0


def _read_process(reading: Reading, pid: int, namespace: Namespace, alive: bool = True) -> Reading:
    reading.kernel = namespace.rtp_datagrams()
    reading.cpu_s = cpu_seconds(pid)
    if alive:
        with contextlib.suppress(OSError, KeyError, ValueError):
            reading.threads, reading.rss_mb = threads_and_rss_mb(pid)
    return reading


def _exited(pid: int) -> bool:
    """Whether the child has exited, leaving it unreaped so that its /proc/PID/stat holds its
    final CPU times."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _drain(
    stream: Iterable[str],
    keep: list[str],
    on_line: Callable[[str], bool] | None = None,
    at_end: Callable[[], None] | None = None,
) -> None:
    """Read a pipe to its end in a thread (a full pipe would stop the writer): on_line takes
    the lines it wants; the others (start line, warnings) are kept and shown on stderr; at_end
    is called at the end."""

    def run() -> None:
        for line in stream:
            if on_line is None or not on_line(line):
                keep.append(line.rstrip())
                print(f"  {line.rstrip()}", file=sys.stderr, flush=True)
        if at_end is not None:
            at_end()

    threading.Thread(target=run, daemon=True).start()


def _engine_flags(engine: str) -> tuple[list[str], dict[str, str]]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GOSSIPPER_MEDIA")}
    env["GOSSIPPER_MEDIA_BACKEND"] = "native"
    return (["-media_iouring"] if engine == "native-iouring" else []), env


def _last_lines(lines: list[str]) -> str:
    return " | ".join(lines[-3:]) or "no output"


# --- the two modes ------------------------------------------------------------------------------


@dataclass
class Soak:
    """A finished run: readings at its period boundaries (the first is the start), and its end."""

    mode: str
    readings: list[Reading]
    final: Reading  # the summary's exact totals, the kernel's after the sender's exit
    summary: dict[str, Any]
    engine: str
    offered: int  # streams, or calls
    hold_s: float = 0.0  # calls: each call's hold


def run_streams(args: argparse.Namespace, workdir: Path, show: Show) -> Soak:
    summary_path = workdir / "summary.json"
    flags, env = _engine_flags(args.engine)
    command = gossipper_command(
        "-rtp_send", "-media_scale", "-rtp_streams", str(args.streams),
        "-rtp_addr", f"{LOOPBACK}:{SINK_PORT}", "-rtp_codec", "PCMU/8000", "-rtp_freq", str(INTERVAL_MS),
        "-i", LOOPBACK, "-mp", str(BASE_PORT), "-summary_json", str(summary_path), "-nostdin", *flags,
    )  # fmt: skip
    process = start_in_namespace([SINK], command, stdout=subprocess.DEVNULL, cwd=REPO, env=env)
    namespace = Namespace(process)
    launched = time.monotonic()
    readings = [Reading(launched, 0.0, 0, 0, 0, 0, 0.0)]
    live: queue.Queue[Reading | None] = queue.Queue()
    other: list[str] = []

    def on_line(line: str) -> bool:
        match = LIVE_LINE.match(line)
        if match is None:
            return False
        reading = Reading(
            time.monotonic(), float(match["elapsed"]), int(match["packets"]), int(match["late"]),
            int(match["errors"]), 0, 0.0, active=int(match["active"]),
        )  # fmt: skip
        with contextlib.suppress(OSError, SoakError):
            live.put(_read_process(reading, process.pid, namespace))
        return True

    assert process.stderr is not None
    _drain(process.stderr, other, on_line, at_end=lambda: live.put(None))
    try:
        end_s, next_s = args.minutes * 60, float(args.period)
        while True:
            try:
                reading = live.get(timeout=START_TIMEOUT_S)
            except queue.Empty:
                raise SoakError(f"no live line for {START_TIMEOUT_S:.0f} s: {_last_lines(other)}") from None
            if reading is None:
                raise SoakError(f"the sender exited: {_last_lines(other)}")
            if reading.elapsed_s >= min(next_s, end_s) - 0.05:
                readings.append(reading)
                show(readings)
                next_s += args.period
            if reading.elapsed_s >= end_s - 0.05:
                break
        process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while not _exited(process.pid):
            if time.monotonic() > deadline:
                raise SoakError(f"the sender did not stop within {STOP_TIMEOUT_S:.0f} s of SIGINT")
            time.sleep(0.05)
        final = _read_process(
            Reading(time.monotonic(), 0.0, 0, 0, 0, 0, 0.0), process.pid, namespace, alive=False
        )
        process.wait()
    finally:
        kill_group(process)
    summary = _load_summary(summary_path, other)
    return Soak("streams", readings, _with_summary(final, summary), summary, args.engine, args.streams)


def _uas_scenario(workdir: Path) -> Path:
    """The built-in uas, its SDP answer naming the sink's port instead of [media_port]."""
    dumped = subprocess.run(  # exits 99 as SIPp's -sd does: no calls made
        gossipper_command("-sd", "uas"), capture_output=True, text=True, check=False, cwd=REPO
    ).stdout
    answer = "m=audio [media_port] "
    if dumped.count(answer) != 1:
        raise SoakError(f"the built-in uas no longer has one {answer.strip()!r} line to aim at the sink")
    path = workdir / "uas.xml"
    path.write_text(dumped.replace(answer, f"m=audio {SINK_PORT} "))
    return path


def run_calls(args: argparse.Namespace, workdir: Path, show: Show) -> Soak:
    summary_path, stat_path = workdir / "summary.json", workdir / "uac.csv"
    flags, env = _engine_flags(args.engine)
    ramp_s = args.calls / args.rate
    hold_ms = round((args.minutes * 60 + ramp_s) * 1000)
    uas = gossipper_command(
        "-sf", str(_uas_scenario(workdir)), "-i", LOOPBACK, "-p", str(UAS_PORT), "-nostdin"
    )
    uac = gossipper_command(
        "-sn", "invite_media_scale", f"{LOOPBACK}:{UAS_PORT}", "-i", LOOPBACK,
        "-m", str(args.calls), "-l", str(args.calls), "-r", str(args.rate), "-d", str(hold_ms),
        "-mp", str(UAC_MEDIA_BASE), "-trace_stat", "-stf", str(stat_path), "-fd", str(args.period),
        "-summary_json", str(summary_path), "-nostdin", *flags,
    )  # fmt: skip
    command = [sys.executable, "-c", WAIT_FOR_UAS, str(UAS_PORT), *uac]
    process = start_in_namespace([SINK, uas], command, stdout=subprocess.DEVNULL, cwd=REPO, env=env)
    namespace = Namespace(process)
    other: list[str] = []
    assert process.stderr is not None
    _drain(process.stderr, other)
    readings: list[Reading] = []
    rows = _StatRows(stat_path)
    try:
        started = time.monotonic()
        limit_s = args.minutes * 60 + 2 * ramp_s + START_TIMEOUT_S
        while True:
            exited = _exited(process.pid)  # before reading rows: the row written at the end is then seen
            for row in rows.new():
                readings.append(_read_process(_stat_reading(row), process.pid, namespace, alive=not exited))
                if len(readings) > 1:
                    show(readings)
            if exited:
                break
            if time.monotonic() - started > limit_s:
                raise SoakError(f"the UAC is still running after {limit_s:.0f} s: {_last_lines(other)}")
            time.sleep(CSV_POLL_S)
        final = _read_process(
            Reading(time.monotonic(), 0.0, 0, 0, 0, 0, 0.0), process.pid, namespace, alive=False
        )
        returncode = process.wait()
    finally:
        kill_group(process)
    if len(readings) < 2:
        raise SoakError(f"the UAC (exit {returncode}) wrote no statistics rows: {_last_lines(other)}")
    summary = _load_summary(summary_path, other)
    return Soak(
        "calls", readings, _with_summary(final, summary), summary, args.engine, args.calls, hold_ms / 1000
    )


class _StatRows:
    """The rows of a -trace_stat CSV as they are written (whole lines only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.header: list[str] | None = None

    def new(self) -> list[dict[str, str]]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                text = handle.read().decode()
        except FileNotFoundError:
            return []
        complete = text[: text.rfind("\n") + 1]
        self.offset += len(complete.encode())
        rows = []
        for line in complete.splitlines():
            fields = line.rstrip(";").split(";")
            if self.header is None:
                self.header = fields
            else:
                rows.append(dict(zip(self.header, fields, strict=False)))
        return rows


def _stat_reading(row: dict[str, str]) -> Reading:
    return Reading(
        time.monotonic(), sipp_elapsed_s(row), int(row["rtp_packets_sent(C)"]),
        int(row["rtp_late_packets(C)"]), int(row["rtp_send_errors(C)"]), 0, 0.0,
        active=int(row["CurrentCall"]), created=int(row["TotalCallCreated"]),
        succeeded=int(row["SuccessfulCall(C)"]), failed=int(row["FailedCall(C)"]),
    )  # fmt: skip


def _load_summary(path: Path, lines: list[str]) -> dict[str, Any]:
    try:
        summary: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SoakError(f"no summary ({error}): {_last_lines(lines)}") from None
    return summary


def _with_summary(final: Reading, summary: dict[str, Any]) -> Reading:
    media = summary["media"]
    final.elapsed_s = summary["duration_ms"] / 1000
    final.packets = media["rtp_packets_sent"]
    final.late = media["late_packets"]
    final.send_errors = sum(media["send_errors"].values())
    final.created = summary["total_calls"]
    final.succeeded = summary["success_calls"]
    final.failed = summary["failed_calls"]
    return final


# --- the table ----------------------------------------------------------------------------------


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _percent(value: float | None, spec: str = ".2f", sign: str = "") -> str:
    if value is None:
        return "-"
    shown = float(f"{100 * value:{spec}}") + 0.0  # no "-0.000%" for a difference that rounds to 0
    return f"{shown:{sign}{spec}}%"


def _difference(packets: int, kernel: int) -> float | None:
    """gossipper's count against the kernel's, as a share of the kernel's."""
    return _share(packets - kernel, kernel)


def _rate(soak_offered: int, first: Reading, last: Reading) -> float | None:
    """Streams: the packets of a period as a share of N streams x 50 packets/s over it."""
    return _share(last.packets - first.packets, soak_offered * PACKETS_PER_S * (last.at - first.at))


STREAM_COLUMNS = (
    "period end (min)", "packets", "kernel datagrams", "difference", "of offered rate",
    "late (>1 ms)", "send errors", "active streams", "RSS MB", "CPU % of a core",
)  # fmt: skip
CALL_COLUMNS = (
    "period end (min)", "calls created", "successful", "failed", "calls up", "packets",
    "kernel datagrams", "difference", "late (>1 ms)", "send errors", "RSS MB", "CPU % of a core",
)  # fmt: skip


def format_row(mode: str, offered: int, first: Reading, last: Reading, index: int) -> str:
    packets, kernel = last.packets - first.packets, last.kernel - first.kernel
    late = _share(last.late - first.late, packets)
    seconds = last.at - first.at
    cpu = _share(last.cpu_s - first.cpu_s, seconds)
    rss = "-" if last.rss_mb is None else f"{last.rss_mb:.1f}"
    common = f"{packets:,} | {kernel:,} | {_percent(_difference(packets, kernel), '.3f', '+')}"
    tail = f"{_percent(late, '.3f')} | {last.send_errors - first.send_errors:,}"
    if mode == "streams":
        rate = _percent(_rate(offered, first, last), ".2f")
        rate = f"({rate})" if index == 1 else rate  # start-up included
        return (
            f"| {last.elapsed_s / 60:.2f} | {common} | {rate} | {tail} | {last.active:,} | {rss} | "
            f"{_percent(cpu, '.0f')} |"
        )
    return (
        f"| {last.elapsed_s / 60:.2f} | {last.created - first.created:,} | "
        f"{last.succeeded - first.succeeded:,} | {last.failed - first.failed:,} | {last.active:,} | "
        f"{common} | {tail} | {rss} | "
        f"{_percent(cpu, '.0f')} |"
    )


def format_total(soak: Soak) -> str:
    first, final = soak.readings[0], soak.final
    late = _share(final.late, final.packets)
    cpu = _share(final.cpu_s - first.cpu_s, final.at - first.at)
    difference = _percent(_difference(final.packets, final.kernel), ".3f", "+")
    totals = f"**{final.packets:,}** | **{final.kernel:,}** | **{difference}**"
    tail = f"{_percent(late, '.3f')} | {final.send_errors:,}"
    if soak.mode == "streams":
        return f"| total ({final.elapsed_s / 60:.2f}) | {totals} | | {tail} | | | {_percent(cpu, '.0f')} |"
    return (
        f"| total ({final.elapsed_s / 60:.2f}) | {final.created:,} | {final.succeeded:,} | "
        f"{final.failed:,} | | {totals} | {tail} | | {_percent(cpu, '.0f')} |"
    )


# --- the verdict --------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    measured: str
    goal: str
    passed: bool | None  # None: nothing to check (n/a)


def checks(soak: Soak) -> list[Check]:
    readings, final, media = soak.readings, soak.final, soak.summary["media"]
    periods = list(itertools.pairwise(readings))
    result = []
    difference = _difference(final.packets, final.kernel)
    result.append(
        Check(
            "count",
            f"{final.packets:,} sent (summary), kernel {final.kernel:,}: {_percent(difference, '.3f', '+')}",
            f"within {MAX_DIFFERENCE:.1%} of the kernel's",
            difference is not None and abs(difference) <= MAX_DIFFERENCE,
        )
    )
    with_errors = sum(1 for first, last in periods if last.send_errors > first.send_errors)
    by_errno = ", ".join(f"{name} {count:,}" for name, count in sorted(media["send_errors"].items()))
    result.append(
        Check(
            "send errors",
            f"{final.send_errors:,} ({by_errno or 'none'}), in {with_errors} of {len(periods)} periods",
            "none sustained (errors in at most one period)",
            with_errors <= 1,
        )
    )
    if soak.mode == "streams":
        result.append(_rate_check(soak, periods))
    else:
        result += _call_checks(soak)
    result.append(_rss_check(readings))
    sent = media["rtp_packets_sent"]
    within_1ms, within_2ms = _share(media["on_time_1ms"], sent), _share(media["on_time_2ms"], sent)
    result.append(
        Check(
            "on time",
            f"{_percent(within_1ms)} within 1 ms, {_percent(within_2ms)} within 2 ms; "
            f"late (>1 ms) {media['late_packets']:,}, at most {media['max_late_ms']:.1f} ms",
            f">= {MIN_WITHIN_2MS:.0%} within 2 ms",
            within_2ms is not None and within_2ms >= MIN_WITHIN_2MS,
        )
    )
    threads = max((reading.threads or 0) for reading in readings)
    result.append(Check("threads", f"at most {threads}", f"under {MAX_THREADS}", threads < MAX_THREADS))
    result.append(
        Check("engine", media["engine"], f"{soak.engine} (--engine)", media["engine"] == soak.engine)
    )
    return result


def _rate_check(soak: Soak, periods: list[tuple[Reading, Reading]]) -> Check:
    later = periods[1:]
    rates = [_rate(soak.offered, first, last) or 0.0 for first, last in later]
    short = [last.active for _, last in later if last.active != soak.offered]
    measured = (
        f"{min(rates):.2%}-{max(rates):.2%} of {soak.offered:,} x {PACKETS_PER_S}/s"
        if rates
        else "one period only: nothing after start-up to check"
    )
    if short:
        measured += f"; active streams {min(short):,} at worst"
    return Check(
        "rate",
        measured,
        f"every period after the first: {soak.offered:,} streams active, within {MAX_DIFFERENCE:.1%}",
        None if not rates else not short and all(abs(rate - 1) <= MAX_DIFFERENCE for rate in rates),
    )


def _call_checks(soak: Soak) -> list[Check]:
    final = soak.final
    calls = Check(
        "calls",
        f"{final.created:,} created, {final.succeeded:,} succeeded, {final.failed:,} failed; "
        f"at most {max(reading.active for reading in soak.readings):,} up at a period's end",
        f"all {soak.offered:,} succeed",
        final.succeeded == soak.offered and final.failed == 0,
    )
    expected = round(soak.offered * soak.hold_s * PACKETS_PER_S)
    shortfall = _share(final.packets - expected, expected)
    scheduled = Check(
        "scheduled",
        f"{final.packets:,} of {soak.offered:,} x {soak.hold_s:g} s x {PACKETS_PER_S}/s = {expected:,}: "
        f"{_percent(shortfall, '.3f', '+')}",
        f"within {MAX_DIFFERENCE:.1%}",
        shortfall is not None and abs(shortfall) <= MAX_DIFFERENCE,
    )
    return [calls, scheduled]


def _rss_check(readings: list[Reading]) -> Check:
    measured = [reading.rss_mb for reading in readings[1:] if reading.rss_mb is not None]
    if len(measured) < 2:
        return Check("RSS", "fewer than two periods read", "stable after the first period", None)
    reference, highest = measured[0], max(measured[1:], default=measured[0])
    bound = max(RSS_GROWTH_FLOOR_MB, RSS_GROWTH * reference)
    return Check(
        "RSS",
        f"{reference:.1f} MB after the first period, at most {highest:.1f} MB later "
        f"({highest - reference:+.1f})",
        f"at most +{bound:.1f} MB (max of {RSS_GROWTH_FLOOR_MB:g} MB, {RSS_GROWTH:.0%})",
        highest - reference <= bound,
    )


def print_checks(result: list[Check]) -> bool:
    print()
    print(markdown_header("criterion", "measured", "goal", "result"))
    for check in result:
        verdict = "n/a" if check.passed is None else "PASS" if check.passed else "FAIL"
        print(f"| {check.name} | {check.measured} | {check.goal} | {verdict} |")
    passed = all(check.passed is not False for check in result)
    print(f"\nsoak: {'PASS' if passed else 'FAIL'}", flush=True)
    return passed


# --- driver -------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", choices=("streams", "calls"), default="streams")
    parser.add_argument("--minutes", type=float, default=5.0, help="how long every stream is up")
    parser.add_argument("--period", type=int, default=60, help="seconds per table row")
    parser.add_argument("--streams", type=int, default=10000, help="streams: how many")
    parser.add_argument("--calls", type=int, default=8000, help="calls: how many, all up at once")
    parser.add_argument("--rate", type=int, default=500, help="calls: calls placed per second")
    parser.add_argument("--engine", choices=ENGINES, default=ENGINES[0], help="the scale engine's sender")
    args = parser.parse_args()
    if args.minutes <= 0 or args.period <= 0 or args.streams <= 0 or args.calls <= 0 or args.rate <= 0:
        parser.error("--minutes, --period, --streams, --calls and --rate must be positive")
    if shutil.which("unshare") is None or os.geteuid() != 0:
        parser.error("needs root and unshare(1): the run has a network namespace of its own")
    if args.mode == "calls" and args.calls / args.rate > args.period:
        print(
            f"bench.soak: the ramp ({args.calls / args.rate:.0f} s) is longer than a period: "
            "the RSS check's reference row will not hold every call",
            file=sys.stderr,
        )
    offered = args.streams if args.mode == "streams" else args.calls
    columns = STREAM_COLUMNS if args.mode == "streams" else CALL_COLUMNS
    what = f"{offered:,} {args.mode}"
    print(
        f"soak: {what} of PCMU/8000 every {INTERVAL_MS} ms for {args.minutes:g} min, "
        f"a row every {args.period} s; engine {args.engine}",
        flush=True,
    )
    print(markdown_header(*columns), flush=True)

    def show(readings: list[Reading]) -> None:
        print(format_row(args.mode, offered, readings[-2], readings[-1], len(readings) - 1), flush=True)

    with tempfile.TemporaryDirectory(prefix="soak-") as temp:
        try:
            run = run_streams if args.mode == "streams" else run_calls
            soak = run(args, Path(temp), show)
        except SoakError as error:
            print(f"bench.soak: {error}", file=sys.stderr)
            return 2
    print(format_total(soak), flush=True)
    return 0 if print_checks(checks(soak)) else 1


if __name__ == "__main__":
    sys.exit(main())
