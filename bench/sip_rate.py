"""Highest clean call rate of the uac scenario against `sipp -sn uas`: gossipper vs SIPp.

For each UAC (gossipper, then SIPp's own uac) the rate climbs step by step; a step
passes when every call succeeds and the achieved rate is within 5% of the target.
The UAC is pinned to CPU 0 and the SIPp UAS to CPU 1 so "one core" means one core.

    .venv/bin/python -m bench.sip_rate [--seconds 5] [--rates 100,200,400,...]
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

from bench.common import gossipper_command, last_sipp_stat_row, markdown_header
from gossipper.cli.ports import LOOPBACK, free_port

DEFAULT_RATES = (100, 200, 400, 600, 800, 1000, 1200, 1500, 2000, 2500, 3000, 4000)


@dataclass
class StepResult:
    target: int
    calls: int
    failed: int
    achieved: float

    @property
    def passed(self) -> bool:
        return self.failed == 0 and self.achieved >= 0.95 * self.target


def _pinned(cpu: int, command: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *command] if shutil.which("taskset") else command


def _uac_command(tool: str, port: int, rate: int, calls: int, workdir: Path) -> list[str]:
    common = [
        "-sn",
        "uac",
        f"{LOOPBACK}:{port}",
        "-i",
        LOOPBACK,
        "-m",
        str(calls),
        "-r",
        str(rate),
        "-l",
        str(max(100, rate * 2)),
        "-nostdin",
        "-timeout",  # a step that cannot finish (lost final answers under overload) fails, not hangs
        str(int(calls / rate * 4 + 60)),
    ]
    if tool == "gossipper":
        return gossipper_command(*common, "-summary_json", str(workdir / "summary.json"))
    return ["sipp", *common, "-trace_stat", "-stf", str(workdir / "uac.csv"), "-fd", "1"]


def _outcome(tool: str, workdir: Path) -> tuple[int, float]:
    """Failed calls and the call rate the UAC itself reports over its run, so that the
    interpreter's start-up (gossipper) is not counted against the rate it kept."""
    if tool == "gossipper":
        summary = json.loads((workdir / "summary.json").read_text())
        return int(summary["failed_calls"]), float(summary["calls_per_second"])
    final = last_sipp_stat_row(workdir / "uac.csv")
    return int(final["FailedCall(C)"]), float(final["CallRate(C)"])


def run_step(tool: str, rate: int, seconds: float) -> StepResult:
    calls = int(rate * seconds)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        uas = subprocess.Popen(
            _pinned(1, ["sipp", "-sn", "uas", "-i", LOOPBACK, "-p", str(port), "-nostdin"]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=workdir,
        )
        time.sleep(0.3)
        started = time.monotonic()
        try:
            returncode = subprocess.run(
                _pinned(0, _uac_command(tool, port, rate, calls, workdir)),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=workdir,
                timeout=seconds * 10 + 120,
            ).returncode
        except subprocess.TimeoutExpired:
            returncode = -1
        elapsed = time.monotonic() - started
        uas.terminate()
        uas.wait(timeout=10)
        try:
            failed, achieved = _outcome(tool, workdir)
        except (OSError, ValueError, KeyError, IndexError):
            failed, achieved = calls, calls / elapsed if elapsed else 0.0
        if returncode not in (0, 1):
            failed = calls
    return StepResult(rate, calls, failed, achieved)


def highest_rate(tool: str, rates: list[int], seconds: float) -> tuple[int, list[StepResult]]:
    best = 0
    results = []
    for rate in rates:
        result = run_step(tool, rate, seconds)
        results.append(result)
        print(
            f"  {tool:9} target {rate:5} cps: {result.calls} calls, {result.failed} failed, "
            f"achieved {result.achieved:7.1f} cps -> {'ok' if result.passed else 'FAIL'}",
            flush=True,
        )
        if not result.passed:
            break
        best = rate
    return best, results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each rate step")
    parser.add_argument("--rates", default=",".join(map(str, DEFAULT_RATES)))
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        print("bench/sip_rate: SIPp (Debian sip-tester) is required", file=sys.stderr)
        return 2
    rates = [int(r) for r in args.rates.split(",")]
    best = {tool: highest_rate(tool, rates, args.seconds)[0] for tool in ("gossipper", "sipp")}
    print()
    print(markdown_header("UAC (pinned to 1 core)", "highest clean rate (cps)"))
    for tool, rate in best.items():
        print(f"| {tool} | {rate} |")
    ratio = best["gossipper"] / best["sipp"] if best["sipp"] else 0.0
    print(f"\ngossipper / SIPp = {ratio:.2f} (target >= 0.50)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
