"""Entry point: `gossipper sipp [options] [host[:port]]` and `gossipper demo`.

Every user-facing failure becomes one line on stderr and SIPp's exit code; no
traceback reaches a lab script's log.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, Sequence

from gossipper import __version__
from gossipper.cli.demo import run_demo
from gossipper.cli.dispatch import dump_scenario, load_run_scenario, run
from gossipper.cli.errors import describe, exit_status
from gossipper.cli.exit_codes import EXIT_CALLS_FAILED, EXIT_FATAL, EXIT_NO_CALLS
from gossipper.cli.options import parse_args, usage_text
from gossipper.cli.validate import validate
from gossipper.errors import GossipperError


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] == "demo":
        return _guarded(lambda: run_demo(words[1:]))
    if words and words[0] == "sipp":
        words = words[1:]
    return _guarded(lambda: _run_sipp(words))


def _guarded(action: Callable[[], int]) -> int:
    try:
        return action()
    except GossipperError as error:
        return _report(error, exit_status(error))
    except KeyboardInterrupt:
        return EXIT_FATAL


def _report(error: GossipperError, status: int) -> int:
    print(f"gossipper: {describe(error)}", file=sys.stderr)
    return status


def _run_sipp(words: list[str]) -> int:
    try:
        config = parse_args(words)
        if config.show_help:
            print(usage_text())
            return EXIT_NO_CALLS  # SIPp's -h and -v exit 99 (EXIT_OTHER), as -sd does
        if config.show_version:
            print(f"gossipper {__version__} (SIPp-compatible)")
            return EXIT_NO_CALLS
        validate(config)
        if config.dump_scenario:
            return dump_scenario(config.dump_scenario, srtp=config.media_srtp)
        scenario = load_run_scenario(config)
    except GossipperError as error:
        # SIPp reads its flags and loads its scenario before it has a scenario to count
        # calls in; an ERROR() then exits 1 (sipp_exit with no display_scenario), not -1.
        return _report(error, EXIT_CALLS_FAILED)
    return run(config, scenario)


def console_main() -> None:
    try:
        status = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader went away (`gossipper sipp -sd uac | head`): what it wanted it got
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = EXIT_NO_CALLS
    # Everything the run made is let go by the process' exit, not by the interpreter's last
    # collections: over a UAS's tens of thousands of remembered calls those cost about 5% of
    # the run's CPU (bench.sip_rate --side uas). Outputs are closed by then.
    gc.freeze()
    sys.exit(status)
