"""What the benchmarks share: how they start gossipper and SIPp, what they read from /proc,
SIPp's own UAC with rtp_stream, and how they print a table.

Benchmarks run as modules from the repository root (`python -m bench.rtp_scale`), so that
they import this one as bench.common; free loopback ports come from gossipper.cli.ports.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import os
import shlex
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def gossipper_command(*args: str) -> list[str]:
    """`gossipper sipp *args` with the interpreter running the bench."""
    return [sys.executable, "-m", "gossipper", "sipp", *args]


# --- a sender alone in a network namespace, measured from /proc ---------------------------


def in_namespace(background: list[list[str]], command: list[str]) -> list[str]:
    """sh in a fresh network namespace: loopback up, helpers started, then exec the sender."""
    helpers = "".join(f"{shlex.join(helper)} >/dev/null 2>&1 & " for helper in background)
    script = f"ip link set lo up; {helpers}sleep 0.3; exec {shlex.join(command)}"
    return ["unshare", "-n", "--", "sh", "-c", script]


def start_in_namespace(
    background: list[list[str]],
    command: list[str],
    *,
    stdout: int,
    cwd: Path,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """The command (and its background helpers) alone in a fresh network namespace, so that
    /proc/PID/net/snmp counts only its datagrams; stderr piped. It runs in a process group of
    its own: kill_group ends the helpers with it."""
    return subprocess.Popen(
        in_namespace(background, command),
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )


def kill_group(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@dataclass
class Sample:
    """One reading of a process: when, its CPU seconds (user + system), UDP datagrams sent
    in its network namespace."""

    at: float
    cpu_s: float
    datagrams: int


def sample(pid: int) -> Sample:
    cpu = cpu_seconds(pid)
    rows = [
        line.split()
        for line in Path(f"/proc/{pid}/net/snmp").read_text().splitlines()
        if line.startswith("Udp:")
    ]
    return Sample(time.monotonic(), cpu, int(rows[1][rows[0].index("OutDatagrams")]))


def window(first: Sample, last: Sample) -> tuple[float, float | None]:
    """Between two samples: datagrams per second, and CPU seconds per million datagrams
    (None when nothing was sent)."""
    datagrams = last.datagrams - first.datagrams
    per_second = datagrams / (last.at - first.at)
    cpu_per_million = (last.cpu_s - first.cpu_s) / (datagrams / 1e6) if datagrams else None
    return per_second, cpu_per_million


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (its threads included, its children not), from
    /proc/PID/stat; a zombie's stat still holds its final times."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces and ')'
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


class CpuSampler:
    """A process' CPU seconds against the wall clock, read from /proc every SAMPLE_S while it
    runs, so that the CPU of any window of the run can be read afterwards (cpu_at)."""

    SAMPLE_S = 0.02

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []  # (time.time(), CPU seconds so far)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, pid: int) -> None:
        self._thread = threading.Thread(target=self._sample, args=(pid,), daemon=True)
        self._thread.start()

    def _sample(self, pid: int) -> None:
        while not self._stop.wait(self.SAMPLE_S):
            self._read(pid)

    def _read(self, pid: int) -> None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            self.samples.append((time.time(), cpu_seconds(pid)))

    def finish(self, pid: int) -> None:
        """The process has exited (not yet reaped): its last sample, and no more."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._read(pid)

    def cpu_at(self, epoch: float) -> float | None:
        """CPU seconds used by wall-clock time epoch, between the samples either side of it
        (None outside the samples)."""
        for (before_at, before_cpu), (after_at, after_cpu) in itertools.pairwise(self.samples):
            if before_at <= epoch <= after_at:
                share = (epoch - before_at) / (after_at - before_at) if after_at > before_at else 0.0
                return before_cpu + share * (after_cpu - before_cpu)
        return None


def run_and_measure_cpu(
    command: list[str], timeout: float, sampler: CpuSampler | None = None, **popen_kwargs: object
) -> tuple[int, float]:
    """Run command to its end; its return code and the CPU seconds it used in all (and, with
    a sampler, its CPU over time).

    The child is waited for without being reaped (waitid with WNOWAIT), so that its
    /proc/PID/stat still holds its final times when read; it is reaped after. Past timeout
    seconds it is killed (return code -SIGKILL); the CPU it used until then is still read.
    """
    process = subprocess.Popen(command, **popen_kwargs)  # type: ignore[call-overload]
    killer = threading.Timer(timeout, process.kill)  # kill() of an unreaped zombie is harmless
    killer.start()
    if sampler is not None:
        sampler.start(process.pid)
    try:
        os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
        if sampler is not None:
            sampler.finish(process.pid)
        cpu_s = cpu_seconds(process.pid)
    finally:
        killer.cancel()
        returncode = process.wait()
    return returncode, cpu_s


def threads_and_rss_mb(pid: int) -> tuple[int, float]:
    values = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(values["Threads"]), int(values["VmRSS"].split()[0]) / 1024


# --- SIPp ---------------------------------------------------------------------------------


def last_sipp_stat_row(path: Path) -> dict[str, str]:
    """The final row of a SIPp -trace_stat CSV (';' separated, header first)."""
    return sipp_stat_rows(path)[-1]


def sipp_duration_s(value: str) -> float:
    """A SIPp duration field: "HH:MM:SS" (ElapsedTime) or "HH:MM:SS:uuuuuu" (ResponseTime,
    CallLength; the last part is microseconds)."""
    parts = value.strip().split(":")
    seconds = int(parts[0]) * 3600 + int(parts[1]) * 60 + int(parts[2])
    return seconds + (int(parts[3]) / 1e6 if len(parts) > 3 else 0.0)


def sipp_stat_rows(path: Path) -> list[dict[str, str]]:
    """Every row of a -trace_stat CSV (SIPp's or gossipper's: the same columns), oldest first."""
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle, delimiter=";"))
    return [dict(zip(rows[0], row, strict=False)) for row in rows[1:]]


def sipp_epoch(value: str) -> float:
    """The epoch that ends a -trace_stat time field ("2026-12-02<TAB>20:24:17.912630<TAB>1796243057.9126")."""
    return float(value.split()[-1])


def sipp_elapsed_s(row: dict[str, str]) -> float:
    """Seconds from a SIPp -trace_stat row's StartTime to its CurrentTime.

    ElapsedTime(C) has whole seconds only ("00:00:02" for a 2.009 s run), too coarse for a
    rate over a short run; StartTime and CurrentTime end with an epoch in microseconds
    ("2026-12-02<TAB>20:24:17.912630<TAB>1796243057.912630"), so those are used when present.
    """
    try:
        return sipp_epoch(row["CurrentTime"]) - sipp_epoch(row["StartTime"])
    except (KeyError, IndexError, ValueError):
        return sipp_duration_s(row["ElapsedTime(C)"])


def write_pcmu_wav(path: Path, seconds: int = 10) -> None:
    """SIPp's rtp_stream plays a file: a mu-law WAV of silence (format 7, 8 kHz, mono)."""
    data = b"\xff" * 8000 * seconds
    fmt = struct.pack("<HHIIHH", 7, 1, 8000, 8000, 1, 8)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks)


SIP_HEADERS = """Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>{to_tag}
Call-ID: [call_id]
CSeq: {cseq}
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70"""

SDP = """v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio {port} RTP/AVP 0
a=rtpmap:0 PCMU/8000"""


def sipp_uac_xml(hold_ms: int) -> str:
    """SIPp's UAC with media: INVITE, ACK, silence.wav played by rtp_stream for hold_ms, BYE."""

    def request(method: str, cseq: str, to_tag: str, sdp: bool) -> str:
        body = SDP.format(port="[media_port]") if sdp else ""
        content = "Content-Type: application/sdp\nContent-Length: [len]" if sdp else "Content-Length: 0"
        headers = SIP_HEADERS.format(to_tag=to_tag, cseq=cseq)
        start_line = f"{method} sip:[service]@[remote_ip]:[remote_port] SIP/2.0"
        return f"<send><![CDATA[\n{start_line}\n{headers}\n{content}\n\n{body}\n]]></send>"

    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="bench rtp_stream uac">
{request("INVITE", "1 INVITE", "", True)}
<recv response="100" optional="true"/>
<recv response="200"/>
{request("ACK", "1 ACK", "[peer_tag_param]", False)}
<nop><action><exec rtp_stream="silence.wav,-1,0"/></action></nop>
<pause milliseconds="{hold_ms}"/>
{request("BYE", "2 BYE", "[peer_tag_param]", False)}
<recv response="200"/>
</scenario>
"""


# --- output -------------------------------------------------------------------------------


def markdown_header(*titles: str) -> str:
    """A Markdown table's header and rule lines."""
    return f"| {' | '.join(titles)} |\n|{'---|' * len(titles)}"


# --- rounds and tables --------------------------------------------------------------------

RoundRow = TypeVar("RoundRow", bound=Any)  # a benchmark's row: a dataclass with a `note`


def median_round(rounds: list[RoundRow], cost: Callable[[RoundRow], float | None], unit: str) -> RoundRow:
    """The round with the median cost, its note saying the spread of the others (a VM's
    neighbours move single rounds; the median of a few is what reproduces)."""
    measured = sorted((row for row in rounds if cost(row) is not None), key=lambda row: cost(row) or 0.0)
    if not measured:
        return rounds[0]
    middle = measured[(len(measured) - 1) // 2]
    if len(rounds) == 1:
        return middle
    low, high = cost(measured[0]) or 0.0, cost(measured[-1]) or 0.0
    spread = f"median of {len(measured)}/{len(rounds)} rounds, {unit} {low:.2f}-{high:.2f}"
    note: str = middle.note
    return replace(middle, note=f"{spread}; {note}" if note else spread)


def percent(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}%"


def compile_c(workdir: Path, source: str, *flags: str) -> Path:
    """bench/<source>.c built with the system cc into workdir, for a reference measured beside gossipper."""
    binary = workdir / source
    subprocess.run(["cc", "-O2", *flags, "-o", str(binary), str(REPO / "bench" / f"{source}.c")], check=True)
    return binary
