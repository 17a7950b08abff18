"""Past the ceiling: gossipper's uac and SIPp's uac offered 1x, 2x and 5x gossipper's clean rate.

    .venv/bin/python -m bench.overload --ceiling 1500 --seconds 10
        [--multiples 1,2,5] [--tools gossipper,sipp]

Why: bench.sip_rate finds the highest rate at which every call succeeds; this one asks what
happens above it. A load generator offered more than one core can carry should degrade
gracefully (keep most calls succeeding, keep carrying about its ceiling) rather than
collapse into retransmissions and timeouts. The goal checked for gossipper at each multiple:
success >= 95% of the calls it created and achieved >= 0.90 x ceiling.

Without --ceiling, the ceiling is found first by bench.sip_rate's climb (--rates,
--climb-seconds). Each run makes rate x --seconds calls at the offered rate against a fresh
`sipp -sn uas` (UAC on CPU 0, UAS on CPU 1), measured as bench.sip_rate measures a step.
A UAC that slows its creation under overload may take longer than --seconds, so each run
gets -timeout calls / ceiling x 3 + 60 s, and is killed 60 s after that.
"""

from __future__ import annotations

import argparse
import sys

from bench.common import markdown_header
from bench.sip_rate import (
    DEFAULT_RATES,
    TOOLS,
    Run,
    climb,
    format_cpu,
    measure_startup,
    parse_rates,
    parse_tools,
    run_uac,
    sipp_missing,
)

DEFAULT_MULTIPLES = (1.0, 2.0, 5.0)
SUCCESS_GOAL = 0.95
ACHIEVED_GOAL = 0.90
# keys another part of gossipper may add to its summary; printed when present
THROTTLE_KEYS = ("offered_rate_cps", "achieved_rate_cps", "throttle_reason")


def run_timeout_s(calls: int, ceiling: int) -> int:
    return int(calls / ceiling * 3 + 60)


def overload_table(results: list[tuple[float, Run]], ceiling: int, startup: dict[str, float]) -> str:
    header = markdown_header(
        "multiple",
        "offered cps",
        "tool",
        "calls created",
        "success %",
        "achieved cps",
        "achieved / ceiling",
        "retransmissions",
        "CPU us/call",
    )
    rows = [
        f"| {multiple:g}x | {run.offered} | {run.tool} | {run.created} | {run.success_ratio * 100:.1f} "
        f"| {run.achieved:.1f} | {run.achieved / ceiling:.2f} | {run.retransmissions} "
        f"| {format_cpu(run, startup)} |"
        for multiple, run in results
    ]
    return "\n".join([header, *rows])


def goal_line(multiple: float, run: Run, ceiling: int) -> str:
    share = run.achieved / ceiling
    met = run.success_ratio >= SUCCESS_GOAL and share >= ACHIEVED_GOAL
    return (
        f"{run.tool} at {multiple:g}x: {run.success_ratio * 100:.1f}% success "
        f"(goal >= {SUCCESS_GOAL * 100:.0f}%), achieved {share:.2f} x ceiling "
        f"(goal >= {ACHIEVED_GOAL:.2f}) -> {'met' if met else 'MISSED'}"
    )


def throttle_line(multiple: float, run: Run) -> str | None:
    present = {key: run.summary[key] for key in THROTTLE_KEYS if run.summary.get(key) is not None}
    if not present:
        return None
    return f"{run.tool} at {multiple:g}x reports " + ", ".join(f"{k} {v}" for k, v in present.items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ceiling", type=int, help="gossipper's clean rate (cps); climbed when absent")
    parser.add_argument("--seconds", type=float, default=10.0, help="calls = offered rate x seconds")
    parser.add_argument("--multiples", default=",".join(f"{m:g}" for m in DEFAULT_MULTIPLES))
    parser.add_argument("--tools", type=parse_tools, default=list(TOOLS), help="gossipper,sipp")
    parser.add_argument(
        "--rates", type=parse_rates, default=list(DEFAULT_RATES), help="climb without --ceiling"
    )
    parser.add_argument("--climb-seconds", type=float, default=5.0, help="length of each climb step")
    args = parser.parse_args()
    if sipp_missing("overload"):
        return 2
    multiples = [float(m) for m in args.multiples.split(",") if m.strip()]
    climbing = args.ceiling is None
    startup = measure_startup(list(dict.fromkeys([*args.tools, "gossipper"])) if climbing else args.tools)
    ceiling = args.ceiling
    if climbing:
        ceiling, _ = climb("gossipper", args.rates, args.climb_seconds, startup)
        if not ceiling:
            print("bench/overload: gossipper has no clean rate among --rates", file=sys.stderr)
            return 1
    if ceiling <= 0:
        print("bench/overload: --ceiling must be positive", file=sys.stderr)
        return 2
    print(f"ceiling: {ceiling} cps", flush=True)

    results: list[tuple[float, Run]] = []
    for multiple in multiples:
        offered = max(1, round(ceiling * multiple))
        calls = max(1, int(offered * args.seconds))
        for tool in args.tools:
            run = run_uac(tool, offered, calls, run_timeout_s(calls, ceiling))
            results.append((multiple, run))
            print(
                f"  {tool:9} {multiple:g}x offered {offered} cps: {run.created} created, "
                f"{run.success} succeeded, achieved {run.achieved:.1f} cps",
                flush=True,
            )
    print()
    print(overload_table(results, ceiling, startup))
    print()
    for multiple, run in results:
        if run.tool == "gossipper":
            print(goal_line(multiple, run, ceiling))
            extra = throttle_line(multiple, run)
            if extra:
                print(f"  {extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
