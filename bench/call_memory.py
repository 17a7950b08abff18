"""Memory per waiting call: gossipper's UAS beside SIPp's, flooded with the same INVITEs.

Each tool runs as a UAS whose calls wait (the built-in uas answers and then waits for the
BYE; the recv-only scenario waits for it without answering). N INVITEs with distinct
Call-IDs arrive over UDP and none is ended, so every call stays; the UAS's resident set
grows by what N calls hold. The table gives RSS growth per call for both tools, measured
in one run, and their ratio.

    python -m bench.call_memory --calls 20000
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import gossipper_command, last_sipp_stat_row, markdown_header, threads_and_rss_mb
from bench.sip_rate import sipp_missing
from gossipper.cli.ports import LOOPBACK, free_port

WAIT_ONLY = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="wait">
  <recv request="INVITE"/>
  <recv request="BYE"/>
</scenario>
"""
SCENARIOS = ("uas", "recv_only")
BURST = 50  # INVITEs sent between two short sleeps: more at once overflow SIPp's 64 kB socket buffer
SETTLE_S = 3.0  # after the last INVITE, for the UAS to take the last of them and for RSS to settle


@dataclass
class Measure:
    tool: str
    scenario: str
    waiting: int  # calls the UAS holds at the end, from its own -trace_stat CurrentCall
    rss_before_mb: float
    rss_after_mb: float

    @property
    def bytes_per_call(self) -> float:
        return (self.rss_after_mb - self.rss_before_mb) * 1024 * 1024 / max(1, self.waiting)


def invite(index: int, port: int) -> bytes:
    body = (
        f"v=0\r\no=user1 53655765 2353687637 IN IP4 {LOOPBACK}\r\ns=-\r\nc=IN IP4 {LOOPBACK}\r\n"
        "t=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
    return (
        f"INVITE sip:x@{LOOPBACK}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {LOOPBACK}:9;branch=z9hG4bK-mem-{index}\r\n"
        f"From: <sip:a@{LOOPBACK}>;tag={index}\r\nTo: <sip:x@{LOOPBACK}>\r\n"
        f"Call-ID: mem-{index}@flood\r\nCSeq: 1 INVITE\r\nContact: <sip:a@{LOOPBACK}:9>\r\n"
        f"Max-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


def uas_command(tool: str, scenario: str, port: int, workdir: Path) -> list[str]:
    if scenario == "uas":
        chosen = ["-sn", "uas"]
    else:
        path = workdir / "wait.xml"
        path.write_text(WAIT_ONLY)
        chosen = ["-sf", str(path)]
    # -nr for both: the 200s are not retransmitted toward the flood's dead address
    args = [*chosen, "-i", LOOPBACK, "-p", str(port), "-nostdin", "-nr"]
    args += ["-trace_stat", "-fd", "1", "-stf", str(workdir / "stat.csv")]
    return ["sipp", *args] if tool == "sipp" else gossipper_command(*args)


def measure(tool: str, scenario: str, calls: int) -> Measure:
    with tempfile.TemporaryDirectory(prefix="call_memory-") as directory:
        workdir = Path(directory)
        port = free_port()
        process = subprocess.Popen(
            uas_command(tool, scenario, port, workdir),
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(2.0)  # started and settled (imports, sockets)
            _, before = threads_and_rss_mb(process.pid)
            flood(port, calls)
            time.sleep(SETTLE_S)
            _, after = threads_and_rss_mb(process.pid)
            waiting = int(last_sipp_stat_row(workdir / "stat.csv")["CurrentCall"])
        finally:
            process.kill()
            process.wait()
    return Measure(tool, scenario, waiting, before, after)


def flood(port: int, calls: int) -> None:
    """Send the INVITEs in bursts, reading (and dropping) the answers as they come."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.bind((LOOPBACK, 0))
        sender.setblocking(False)
        for index in range(calls):
            sender.sendto(invite(index, port), (LOOPBACK, port))
            if index % BURST == BURST - 1:
                time.sleep(0.02)
                drain(sender)


def drain(sock: socket.socket) -> None:
    while True:
        try:
            sock.recv(65535)
        except BlockingIOError:
            return


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="INVITEs per run (calls left waiting)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="uas,recv_only")
    args = parser.parse_args()
    if sipp_missing("call_memory"):
        return 2
    scenarios = [name for name in args.scenarios.split(",") if name]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(
            f"--scenarios: unknown {', '.join(sorted(unknown))} (choose from {', '.join(SCENARIOS)})"
        )
    results = [
        measure(tool, scenario, args.calls) for scenario in scenarios for tool in ("gossipper", "sipp")
    ]
    print(f"{args.calls} INVITEs sent to each UAS")
    print(markdown_header("scenario", "tool", "calls waiting", "RSS before MB", "RSS after MB", "bytes/call"))
    for result in results:
        print(
            f"| {result.scenario} | {result.tool} | {result.waiting} | {result.rss_before_mb:.1f} | "
            f"{result.rss_after_mb:.1f} | {result.bytes_per_call:.0f} |"
        )
    print()
    print(markdown_header("scenario", "gossipper / SIPp bytes per call"))
    for scenario in scenarios:
        ours, theirs = (
            next(r for r in results if r.scenario == scenario and r.tool == t) for t in ("gossipper", "sipp")
        )
        ratio = ours.bytes_per_call / theirs.bytes_per_call if theirs.bytes_per_call > 0 else float("nan")
        print(f"| {scenario} | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
