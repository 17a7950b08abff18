"""Which mode a validated Config asks for, run with the settings compiled for it.

The engine and the scale engine are imported only when their mode runs, so -h, -v and
-sd answer without loading them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from gossipper.cli.background import detach
from gossipper.cli.compile import run_settings, standalone_settings
from gossipper.cli.config import Config
from gossipper.cli.exit_codes import EXIT_ALL_CALLS_OK, EXIT_STATUS
from gossipper.outcome import RunOutcome
from gossipper.scenario.builtins import dump_builtin, load_builtin
from gossipper.scenario.loader import load_scenario_file
from gossipper.scenario.model import Scenario


def run(config: Config) -> int:
    """Dispatch a validated Config to the mode it asks for; SIPp's exit status."""
    if config.dump_scenario:
        sys.stdout.write(dump_builtin(config.dump_scenario, srtp=config.media_srtp))
        return EXIT_ALL_CALLS_OK
    if config.rtp_send:
        from gossipper.media.scale.standalone import run_standalone

        return EXIT_STATUS[run_standalone(standalone_settings(config))]
    from gossipper.engine.runner import run_scenario

    settings, scenario = run_settings(config), load_run_scenario(config)
    for notice in config.notices:
        print(f"gossipper: {notice}", file=sys.stderr)

    def run_sip(on_ready: Callable[[], None] | None) -> int:
        return _exit_status(config, run_scenario(settings, scenario, on_ready))

    return detach(run_sip) if config.background else run_sip(None)


def _exit_status(config: Config, outcome: RunOutcome) -> int:
    if outcome is RunOutcome.TIMED_OUT:
        elapsed = config.global_timeout_ms / 1000
        print(f"gossipper: -timeout: run timed out after {elapsed:.3f} seconds", file=sys.stderr)
    return EXIT_STATUS[outcome]


def load_run_scenario(config: Config) -> Scenario:
    """-sf file, else -sn built-in, else SIPp's default: the uac built-in."""
    if config.scenario_file:
        return load_scenario_file(config.scenario_file, frozenset(config.keys))
    return load_builtin(config.scenario_name or "uac")
