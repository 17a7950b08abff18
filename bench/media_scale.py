"""SIP calls with media at scale: gossipper's invite_media_scale against SIPp's own uac with
rtp_stream, both toward `sipp -sn uas` on loopback, at the same call counts.

Each run happens alone in a fresh network namespace (so /proc/PID/net/snmp counts only
its datagrams). Calls are placed at --rate and held --hold seconds; the window where
every call is up (after the last call started, before the first ends) is measured
from /proc: datagrams per second, CPU seconds per million datagrams, threads, RSS.
Call outcomes come from each UAC's own summary (gossipper's JSON, SIPp's -trace_stat).

    sudo .venv/bin/python -m bench.media_scale [--calls 1000,5000,8000] [--rate 500] [--hold 20]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    REPO,
    gossipper_command,
    kill_group,
    last_sipp_stat_row,
    markdown_header,
    sample,
    sipp_uac_xml,
    start_in_namespace,
    threads_and_rss_mb,
    window,
    write_pcmu_wav,
)
from gossipper.cli.ports import LOOPBACK

UAS_PORT = 5070
UAS_MEDIA_PORT = 8000
UAC_MEDIA_BASE = 10000


@dataclass
class Row:
    calls: int
    tool: str
    ok: int = 0
    failed: int = 0
    pps: float = 0.0
    on_time_2ms: float | None = None
    cpu_s_per_mpkt: float | None = None
    threads: int = 0
    rss_mb: float = 0.0
    note: str = ""


def _uac_command(tool: str, calls: int, rate: int, hold_s: float, workdir: Path) -> list[str]:
    common = ["-i", LOOPBACK, "-m", str(calls), "-l", str(calls), "-r", str(rate), "-nostdin"]
    if tool == "gossipper":
        return gossipper_command(
            "-sn", "invite_media_scale", f"{LOOPBACK}:{UAS_PORT}",
            "-d", str(int(hold_s * 1000)), "-mp", str(UAC_MEDIA_BASE),
            "-summary_json", str(workdir / "summary.json"), *common,
        )  # fmt: skip
    write_pcmu_wav(workdir / "silence.wav")
    # The stream benchmark's UAC, taught that `sipp -sn uas` rings (180) before it answers.
    scenario = sipp_uac_xml(int(hold_s * 1000)).replace(
        '<recv response="100" optional="true"/>',
        '<recv response="100" optional="true"/>\n<recv response="180" optional="true"/>',
    )
    (workdir / "uac.xml").write_text(scenario)
    return [
        "sipp", "-sf", str(workdir / "uac.xml"), f"{LOOPBACK}:{UAS_PORT}", "-p", "5061",
        "-mp", str(UAC_MEDIA_BASE), "-mi", LOOPBACK, "-trace_stat", "-stf", str(workdir / "uac.csv"),
        "-fd", "1", *common,
    ]  # fmt: skip


def _outcome(tool: str, row: Row, workdir: Path) -> None:
    if tool == "gossipper":
        data = json.loads((workdir / "summary.json").read_text())
        row.ok, row.failed = data["success_calls"], data["failed_calls"]
        media = data["media"]
        row.on_time_2ms = (
            media["on_time_2ms"] / media["rtp_packets_sent"] if media["rtp_packets_sent"] else None
        )
        return
    last = last_sipp_stat_row(workdir / "uac.csv")
    row.ok, row.failed = int(last["SuccessfulCall(C)"]), int(last["FailedCall(C)"])


def measure(calls: int, tool: str, rate: int, hold_s: float) -> Row:
    row = Row(calls, tool)
    uas = ["sipp", "-sn", "uas", "-i", LOOPBACK, "-p", str(UAS_PORT), "-mp", str(UAS_MEDIA_PORT), "-nostdin"]
    ramp_s = calls / rate
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        process = start_in_namespace(
            [uas],
            _uac_command(tool, calls, rate, hold_s, workdir),
            stdout=subprocess.DEVNULL,
            cwd=workdir if tool == "sipp" else REPO,
        )
        try:
            time.sleep(0.3 + ramp_s + 1.0)
            first = sample(process.pid)
            time.sleep(max(1.0, hold_s - ramp_s - 2.0))
            last = sample(process.pid)
            row.threads, row.rss_mb = threads_and_rss_mb(process.pid)
            process.wait(timeout=hold_s + ramp_s + 120)
            _outcome(tool, row, workdir)
        except (OSError, ValueError, KeyError, IndexError, subprocess.TimeoutExpired) as error:
            row.note = f"failed: {error}"
            return row
        finally:
            kill_group(process)
    row.pps, row.cpu_s_per_mpkt = window(first, last)
    return row


def _cell(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", default="1000,5000,8000")
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--hold", type=float, default=20.0, help="seconds each call holds its stream")
    parser.add_argument("--tools", default="gossipper,sipp")
    args = parser.parse_args()
    if shutil.which("sipp") is None or shutil.which("unshare") is None:
        print("bench/media_scale: needs SIPp (sip-tester) and unshare (util-linux), as root", file=sys.stderr)
        return 2
    print(
        markdown_header(
            "calls", "UAC", "ok", "failed", "datagrams/s", "within 2 ms", "CPU s/Mdgram", "threads", "RSS MB"
        )
    )
    for calls in (int(text) for text in args.calls.split(",")):
        for tool in args.tools.split(","):
            row = measure(calls, tool, args.rate, args.hold)
            print(
                f"| {row.calls} | {row.tool} | {row.ok} | {row.failed} | {row.pps:,.0f} | "
                f"{_cell(row.on_time_2ms and row.on_time_2ms * 100, '.1f')}% | "
                f"{_cell(row.cpu_s_per_mpkt, '.2f')} | {row.threads} | {row.rss_mb:.0f} | {row.note}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
