"""Highest clean call rate of the uac scenario against `sipp -sn uas`: gossipper vs SIPp.

For each UAC (gossipper's and SIPp's own uac) the rate climbs step by step; a step
passes when no call fails and the achieved rate is within 5% of the offered one.
The UAC is pinned to CPU 0 and the SIPp UAS to CPU 1 so "one core" means one core.

    .venv/bin/python -m bench.sip_rate [--seconds 5] [--rates 100,200,400,...] [--tools gossipper,sipp]
        [--scenario uac|uac_ereg] [--side uac|uas] [--rounds N] [--timer-resol MS]

With --side uas the roles turn: each tool's UAS (`-sn uas -m calls`, CPU 0) answers
`sipp -sn uac` (CPU 1), the same driver for both tools; calls, failures, retransmissions
and the achieved rate come from the driver's -trace_stat, the CPU from the UAS under test
(it exits after its -m calls, so the last call's closing timewait is in its run time).

Every step is measured the same way for both tools, and printed in a per-step table:

- achieved cps: successful calls per second of the run as the tool itself reports it
  (gossipper's -summary_json: success_calls / duration_ms; SIPp's -trace_stat CSV:
  SuccessfulCall(C) over StartTime..CurrentTime), so that the interpreter's start-up is not
  counted against the rate it kept;
- failed and retransmissions: from the same reports (SIPp: FailedCall(C), Retransmissions(C));
- CPU us/call: the UAC's user + system CPU from /proc/PID/stat, read when it has exited but
  is not yet reaped, less what the same command costs for a single call (`-m 1 -r 1`, its
  start-up, measured once per tool and printed), divided by the calls it made;
- steady us/call: the same CPU, sampled from /proc every 20 ms, between two -trace_stat rows
  of the UAC (written every second; with --side uas, the SIPp driver's): from STEADY_FROM_S
  into the run to the last row before the last call was created, over the calls created in
  between.

The tools take turns at each rate (the first one alternating round by round), so that both
meet the same moments of a shared machine; --rounds N climbs N times. The side-by-side
table then gives, per offered rate, each tool's median CPU per call, the ratio of the
medians and the range of the ratios measured round by round; start-up CPU is the median
of N measurements too.

--timer-resol MS gives both measured tools `-timer_resol MS` (SIPp's default is 1 ms;
gossipper's, unset, ticks timers by the millisecond and creates calls in ticks of up to 5 ms).

bench.overload reuses run_uac, measure_startup and climb to load the UAC past its ceiling.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    CpuSampler,
    gossipper_command,
    last_sipp_stat_row,
    markdown_header,
    run_and_measure_cpu,
    sipp_elapsed_s,
    sipp_epoch,
    sipp_stat_rows,
)
from gossipper.cli.ports import LOOPBACK, free_port

DEFAULT_RATES = (100, 200, 400, 600, 800, 1000, 1200, 1500, 2000, 2500, 3000, 4000)
TOOLS = ("gossipper", "sipp")


@dataclass
class Run:
    """One UAC run, as the tool reports it, plus the CPU it used (/proc)."""

    tool: str
    offered: int  # -r, calls/s
    calls: int  # -m
    created: int
    success: int
    failed: int
    retransmissions: int
    elapsed_s: float  # the tool's own run time
    cpu_s: float
    returncode: int
    summary: dict[str, Any] = field(default_factory=dict)  # gossipper's -summary_json
    round_index: int = 0  # which of --rounds measured it
    steady_us: float | None = None  # CPU per call while calls were being created (steady_us_per_call)

    @property
    def achieved(self) -> float:
        """Successful calls per second."""
        return self.success / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def success_ratio(self) -> float:
        return self.success / self.created if self.created else 0.0

    @property
    def passed(self) -> bool:
        return self.failed == 0 and self.achieved >= 0.95 * self.offered

    def cpu_us_per_call(self, startup_cpu_s: float) -> float | None:
        return (self.cpu_s - startup_cpu_s) / self.created * 1e6 if self.created else None


STEADY_FROM_S = 1.5  # the steady window opens at the first stat row this long after the first


def steady_us_per_call(rows: list[dict[str, str]], sampler: CpuSampler, calls: int) -> float | None:
    """CPU per call between two -trace_stat rows (written every second) while calls were still
    being created: the first row STEADY_FROM_S after the run began, and the last one before the
    last call was created. Neither start-up nor the last calls' endings are in it, so it holds
    no estimate to subtract; the tools' start-ups differ by 30x, and the whole-run figure at a
    low rate moves with how long an interpreter took to start. None when the run was too short
    (fewer than two such rows)."""
    try:
        stamped = [(sipp_epoch(row["CurrentTime"]), int(row["TotalCallCreated"])) for row in rows]
    except (KeyError, IndexError, ValueError):
        return None
    if not stamped:
        return None
    opened = stamped[0][0] + STEADY_FROM_S
    window = [(epoch, created) for epoch, created in stamped if epoch >= opened and 0 < created < calls]
    if len(window) < 2:
        return None
    (first_at, first_created), (last_at, last_created) = window[0], window[-1]
    first_cpu, last_cpu = sampler.cpu_at(first_at), sampler.cpu_at(last_at)
    if first_cpu is None or last_cpu is None or last_created <= first_created:
        return None
    return (last_cpu - first_cpu) / (last_created - first_created) * 1e6


def _pinned(cpu: int, command: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *command] if shutil.which("taskset") else command


def default_timeout_s(rate: int, calls: int) -> int:
    """-timeout for a climb step: a step that cannot finish (lost final answers under
    overload) fails, not hangs."""
    return int(calls / rate * 4 + 60)


SCENARIOS = {
    "uac": ["-sn", "uac"],
    # the uac with an ereg on the 200 OK and its captures in the BYE's headers
    "uac_ereg": ["-sf", str(Path(__file__).parent / "scenarios" / "uac_ereg.xml")],
}


def _uac_command(
    tool: str,
    port: int,
    rate: int,
    calls: int,
    timeout_s: int,
    workdir: Path,
    scenario: str = "uac",
    tuning: tuple[str, ...] = (),
) -> list[str]:
    common = [
        *tuning,
        *SCENARIOS[scenario],
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
        "-timeout",
        str(timeout_s),
        *("-trace_stat", "-stf", str(workdir / "uac.csv"), "-fd", "1"),  # the steady window's rows
    ]
    if tool == "gossipper":
        return gossipper_command(*common, "-summary_json", str(workdir / "summary.json"))
    return ["sipp", *common]


def _read_report(run: Run, workdir: Path) -> None:
    """Fill run's counts from the tool's own report."""
    if run.tool == "gossipper":
        summary = json.loads((workdir / "summary.json").read_text())
        run.summary = summary
        run.created = int(summary["total_calls"])
        run.success = int(summary["success_calls"])
        run.failed = int(summary["failed_calls"])
        run.retransmissions = int(summary["retransmits"])
        run.elapsed_s = int(summary["duration_ms"]) / 1000
        return
    _read_sipp_report(run, workdir)


def _read_sipp_report(run: Run, workdir: Path) -> None:
    """Fill run's counts from SIPp's uac -trace_stat CSV."""
    final = last_sipp_stat_row(workdir / "uac.csv")
    run.created = int(final["TotalCallCreated"])
    run.success = int(final["SuccessfulCall(C)"])
    run.failed = int(final["FailedCall(C)"])
    run.retransmissions = int(final["Retransmissions(C)"])
    run.elapsed_s = sipp_elapsed_s(final)


def run_uac(
    tool: str,
    rate: int,
    calls: int,
    timeout_s: int | None = None,
    scenario: str = "uac",
    tuning: tuple[str, ...] = (),
) -> Run:
    """One run of tool's uac (CPU 0) against a fresh `sipp -sn uas` (CPU 1): calls at rate.

    A run whose report cannot be read, or that crashed or was killed, counts every call as
    failed."""
    timeout_s = timeout_s if timeout_s is not None else default_timeout_s(rate, calls)
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
        sampler = CpuSampler()
        try:
            returncode, cpu_s = run_and_measure_cpu(
                _pinned(0, _uac_command(tool, port, rate, calls, timeout_s, workdir, scenario, tuning)),
                timeout=timeout_s + 60,
                sampler=sampler,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=workdir,
            )
        finally:
            uas.terminate()
            uas.wait(timeout=10)
        run = Run(tool, rate, calls, 0, 0, calls, 0, time.monotonic() - started, cpu_s, returncode)
        _fill_counts(run, lambda: _read_report(run, workdir))
        _fill_steady(run, workdir / "uac.csv", sampler)
    return run


def _fill_steady(run: Run, stat_file: Path, sampler: CpuSampler) -> None:
    with contextlib.suppress(OSError, IndexError):
        run.steady_us = steady_us_per_call(sipp_stat_rows(stat_file), sampler, run.calls)


def _fill_counts(run: Run, read: Callable[[], None]) -> None:
    """The counts from a report; a report that cannot be read counts every call failed, and
    a tool that crashed or was killed every call it did not see succeed."""
    try:
        read()
    except (OSError, ValueError, KeyError, IndexError):
        run.failed = run.calls
    if run.returncode not in (0, 1):
        run.failed = max(run.failed, run.calls - run.success)


def _uas_command(tool: str, port: int, calls: int, tuning: tuple[str, ...] = ()) -> list[str]:
    common = [*tuning, "-sn", "uas", "-i", LOOPBACK, "-p", str(port), "-m", str(calls), "-nostdin"]
    return gossipper_command(*common) if tool == "gossipper" else ["sipp", *common]


def run_uas(
    tool: str, rate: int, calls: int, timeout_s: int | None = None, tuning: tuple[str, ...] = ()
) -> Run:
    """One run of tool's uas (CPU 0) answering `sipp -sn uac` (CPU 1): calls at rate.

    The driver's report gives the counts; a UAS that crashed or had to be killed counts
    every call the driver did not see succeed as failed."""
    timeout_s = timeout_s if timeout_s is not None else default_timeout_s(rate, calls)
    port = free_port()
    measured: dict[str, tuple[int, float]] = {}
    sampler = CpuSampler()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        uas = threading.Thread(
            target=lambda: measured.setdefault(
                "uas",
                run_and_measure_cpu(
                    _pinned(0, _uas_command(tool, port, calls, tuning)),
                    timeout=timeout_s + 60,
                    sampler=sampler,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    cwd=workdir,
                ),
            )
        )
        uas.start()
        time.sleep(0.6 if tool == "gossipper" else 0.3)  # the interpreter's start-up
        started = time.monotonic()
        driver = _uac_command("sipp", port, rate, calls, timeout_s, workdir)
        subprocess.run(
            _pinned(1, driver), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir, check=False
        )
        uas.join(timeout=timeout_s + 120)
        returncode, cpu_s = measured.get("uas", (-9, 0.0))
        run = Run(tool, rate, calls, 0, 0, calls, 0, time.monotonic() - started, cpu_s, returncode)
        _fill_counts(run, lambda: _read_sipp_report(run, workdir))
        _fill_steady(run, workdir / "uac.csv", sampler)
    return run


def run_side(
    side: str, tool: str, rate: int, calls: int, scenario: str = "uac", tuning: tuple[str, ...] = ()
) -> Run:
    """One step of the tool on that side of the call; `tuning` goes to the tool measured."""
    if side == "uas":
        return run_uas(tool, rate, calls, tuning=tuning)
    return run_uac(tool, rate, calls, scenario=scenario, tuning=tuning)


def measure_startup(
    tools: list[str], scenario: str = "uac", side: str = "uac", rounds: int = 1, tuning: tuple[str, ...] = ()
) -> dict[str, float]:
    """Each tool's start-up CPU seconds (the same command with `-m 1 -r 1`; the median of
    `rounds` runs), printed once."""
    startup = {
        tool: statistics.median(run_side(side, tool, 1, 1, scenario, tuning).cpu_s for _ in range(rounds))
        for tool in tools
    }
    print("start-up CPU: " + ", ".join(f"{tool} {cpu:.2f} s" for tool, cpu in startup.items()), flush=True)
    return startup


def format_cpu(run: Run, startup: dict[str, float]) -> str:
    cpu = run.cpu_us_per_call(startup.get(run.tool, 0.0))
    return "-" if cpu is None else f"{cpu:.0f}"


def format_steady(run: Run) -> str:
    return "-" if run.steady_us is None else f"{run.steady_us:.0f}"


def climb(
    tool: str,
    rates: list[int],
    seconds: float,
    startup: dict[str, float],
    scenario: str = "uac",
    side: str = "uac",
    tuning: tuple[str, ...] = (),
) -> tuple[int, list[Run]]:
    """Rates in turn until a step fails: the highest clean rate (0 when none) and every step."""
    best, runs = climb_together([tool], rates, seconds, startup, scenario, side, tuning)
    return best[tool], runs


def climb_together(
    tools: list[str],
    rates: list[int],
    seconds: float,
    startup: dict[str, float],
    scenario: str = "uac",
    side: str = "uac",
    tuning: tuple[str, ...] = (),
) -> tuple[dict[str, int], list[Run]]:
    """Rates in turn, each tool at each rate one after the other (so that a shared machine's
    slow moments fall on both), a tool leaving at its first failed step: each tool's highest
    clean rate (0 when none) and every step."""
    best = dict.fromkeys(tools, 0)
    climbing = list(tools)
    runs = []
    for rate in rates:
        for tool in list(climbing):
            run = run_side(side, tool, rate, int(rate * seconds), scenario, tuning)
            runs.append(run)
            print(
                f"  {tool:9} offered {rate:5} cps: {run.created} calls, {run.failed} failed, "
                f"{run.retransmissions} retransmissions, achieved {run.achieved:7.1f} cps, "
                f"CPU {format_cpu(run, startup)} us/call (steady {format_steady(run)}) "
                f"-> {'ok' if run.passed else 'FAIL'}",
                flush=True,
            )
            if run.passed:
                best[tool] = rate
            else:
                climbing.remove(tool)
        if not climbing:
            break
    return best, runs


def step_table(runs: list[Run], startup: dict[str, float]) -> str:
    header = markdown_header(
        "round",
        "tool",
        "offered cps",
        "calls",
        "achieved cps",
        "failed",
        "retransmissions",
        "CPU us/call",
        "steady us/call",
    )
    rows = [
        f"| {run.round_index + 1} | {run.tool} | {run.offered} | {run.created} | {run.achieved:.1f} "
        f"| {run.failed} | {run.retransmissions} | {format_cpu(run, startup)} | {format_steady(run)} |"
        for run in runs
    ]
    return "\n".join([header, *rows])


def parse_tools(value: str) -> list[str]:
    tools = [tool.strip() for tool in value.split(",") if tool.strip()]
    unknown = sorted(set(tools) - set(TOOLS))
    if unknown or not tools:
        raise argparse.ArgumentTypeError(f"choose among {','.join(TOOLS)} (got {value!r})")
    return tools


def parse_rates(value: str) -> list[int]:
    return [int(rate) for rate in value.split(",") if rate.strip()]


def sipp_missing(bench: str) -> bool:
    if shutil.which("sipp") is None:
        print(f"bench/{bench}: SIPp (Debian sip-tester) is required", file=sys.stderr)
        return True
    return False


def cpu_side_by_side(runs: list[Run], measure: Callable[[Run], float | None]) -> str:
    """CPU per call (as measure reads it) of both tools at each offered rate both ran cleanly:
    the goal is <= 2x. Medians over the rounds, and the range of the ratios of runs of the
    same round."""
    by_rate: dict[int, dict[str, dict[int, float]]] = {}  # rate -> tool -> round -> us/call
    for run in runs:
        cpu = measure(run)
        if run.passed and cpu is not None:
            by_rate.setdefault(run.offered, {}).setdefault(run.tool, {})[run.round_index] = cpu
    header = markdown_header(
        "offered cps", "rounds", "gossipper us/call", "sipp us/call", "gossipper / sipp", "per-round ratios"
    )
    rows = []
    for rate, cpus in sorted(by_rate.items()):
        ours, theirs = cpus.get("gossipper", {}), cpus.get("sipp", {})
        both = ours.keys() & theirs.keys()
        paired = sorted(ours[index] / theirs[index] for index in both if theirs[index] > 0)
        if not paired:
            continue
        ours_median, theirs_median = statistics.median(ours.values()), statistics.median(theirs.values())
        rows.append(
            f"| {rate} | {len(paired)} | {ours_median:.0f} | {theirs_median:.0f} "
            f"| {ours_median / theirs_median:.2f} | {paired[0]:.2f}-{paired[-1]:.2f} |"
        )
    return "\n".join([header, *rows])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each rate step")
    parser.add_argument("--rates", type=parse_rates, default=list(DEFAULT_RATES))
    parser.add_argument("--tools", type=parse_tools, default=list(TOOLS), help="gossipper,sipp")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="uac", help="what each call runs")
    parser.add_argument("--side", choices=("uac", "uas"), default="uac", help="which side is measured")
    parser.add_argument("--rounds", type=int, default=1, help="climbs, the tools taking turns in each")
    parser.add_argument("--timer-resol", type=int, help="-timer_resol MS for both measured tools")
    args = parser.parse_args()
    if sipp_missing("sip_rate"):
        return 2
    if args.side == "uas" and args.scenario != "uac":
        parser.error("--side uas runs the built-in uas; --scenario applies to the uac side")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.timer_resol is not None and not 1 <= args.timer_resol <= 1000:
        parser.error("--timer-resol must be 1..1000 ms")
    tuning = () if args.timer_resol is None else ("-timer_resol", str(args.timer_resol))
    startup = measure_startup(args.tools, args.scenario, args.side, args.rounds, tuning)
    clean_rates: dict[str, list[int]] = {tool: [] for tool in args.tools}
    runs: list[Run] = []
    for round_index in range(args.rounds):
        order = args.tools if round_index % 2 == 0 else args.tools[::-1]  # neither always goes first
        rates, steps = climb_together(
            order, args.rates, args.seconds, startup, args.scenario, args.side, tuning
        )
        for tool, rate in rates.items():
            clean_rates[tool].append(rate)
        for step in steps:
            step.round_index = round_index
        runs.extend(steps)
    best = {tool: int(statistics.median(rates)) for tool, rates in clean_rates.items()}
    print()
    print(f"scenario: {'uas' if args.side == 'uas' else args.scenario}", *tuning)
    print(step_table(runs, startup))
    print()
    print(markdown_header(f"{args.side.upper()} (pinned to 1 core)", "highest clean rate (cps)", "per round"))
    for tool, rate in best.items():
        print(f"| {tool} | {rate} | {', '.join(map(str, clean_rates[tool]))} |")
    if "gossipper" in best and "sipp" in best:
        ratio = best["gossipper"] / best["sipp"] if best["sipp"] else 0.0
        print(f"\ngossipper / SIPp = {ratio:.2f} (target >= 0.75)")
        print("\nCPU per call over the whole run, less each tool's start-up:")
        print(cpu_side_by_side(runs, lambda run: run.cpu_us_per_call(startup.get(run.tool, 0.0))))
        print(f"\nCPU per call in the steady window (stat rows from {STEADY_FROM_S} s until creation ends):")
        print(cpu_side_by_side(runs, lambda run: run.steady_us))
    return 0


if __name__ == "__main__":
    sys.exit(main())
