"""Which mode a validated Config asks for, run with the settings compiled for it.

The engine and the scale engine are imported only when their mode runs, so -h, -v and
-sd answer without loading them. Loading the scenario is a step of its own, so that its
errors end the process as SIPp's do while it reads its command line (exit 1).
"""

from __future__ import annotations

import sys
from pathlib import Path

from gossipper.cli.compile import run_settings, standalone_settings
from gossipper.cli.config import Config
from gossipper.cli.errors import UsageError
from gossipper.cli.exit_codes import EXIT_NO_CALLS, EXIT_STATUS
from gossipper.errors import FileProblem
from gossipper.outcome import RunOutcome
from gossipper.scenario.builtins import dump_builtin, load_builtin
from gossipper.scenario.loader import load_scenario_file
from gossipper.scenario.model import Scenario


def dump_scenario(name: str, srtp: bool) -> int:
    """-sd NAME: the built-in's XML on stdout; SIPp then exits 99 (EXIT_OTHER)."""
    sys.stdout.write(dump_builtin(name, srtp=srtp))
    return EXIT_NO_CALLS


def load_run_scenario(config: Config) -> Scenario | None:
    """The scenario a SIP run plays (-sf file, else -sn built-in, else SIPp's default, the
    uac built-in) with -set checked against it; None for the modes that play none."""
    if config.rtp_send:
        return None
    if config.scenario_file:
        injection = frozenset(config.inject_files) | {Path(name).name for name in config.inject_files}
        scenario = load_scenario_file(config.scenario_file, frozenset(config.keys), injection)
    else:
        scenario = load_builtin(config.scenario_name or "uac")
    for name in config.globals_set:
        # SIPp's -set only fills a variable the scenario declares in <Global>.
        if name not in scenario.global_variables:
            raise UsageError(f"-set {name}: the scenario declares no <Global variables=...> named {name!r}")
    return scenario


def run(config: Config, scenario: Scenario | None) -> int:
    """Run a validated Config with the scenario load_run_scenario gave; SIPp's exit status."""
    if config.rtp_send:
        from gossipper.media.scale.standalone import run_standalone

        return EXIT_STATUS[run_standalone(standalone_settings(config))]
    assert scenario is not None, "a SIP run is given its scenario"
    if scenario.creation_mode is None:
        # SIPp's computeSippMode, once the scenario is in place: a fatal error (exit -1).
        raise FileProblem(
            f"{config.scenario_file or scenario.name}: unable to determine creation mode (server, client): "
            "no <send>, <recv>, <sendCmd> or <recvCmd>, only pauses and nops"
        )
    from gossipper.engine.runner import run_scenario

    outcome = run_scenario(run_settings(config), scenario)
    if outcome is RunOutcome.TIMED_OUT:
        elapsed = config.global_timeout_ms / 1000
        print(f"gossipper: -timeout: run timed out after {elapsed:.3f} seconds", file=sys.stderr)
    return EXIT_STATUS[outcome]
