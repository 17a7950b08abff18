"""Which mode a validated Config asks for, run with the settings compiled for it.

The engine and the scale engine are imported only when their mode runs, so -h, -v and
-sd answer without loading them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from gossipper.cli.background import detach
from gossipper.cli.compile import run_settings, standalone_settings
from gossipper.cli.config import Config
from gossipper.cli.errors import UsageError
from gossipper.cli.exit_codes import EXIT_ALL_CALLS_OK, EXIT_STATUS
from gossipper.outcome import RunOutcome
from gossipper.scenario.builtins import dump_builtin, load_builtin
from gossipper.scenario.loader import load_scenario_file
from gossipper.scenario.model import Scenario

if TYPE_CHECKING:
    from gossipper.engine.other_scenario import OtherScenario


def run(config: Config) -> int:
    """Dispatch a validated Config to the mode it asks for; SIPp's exit status."""
    if config.dump_scenario:
        sys.stdout.write(dump_builtin(config.dump_scenario, srtp=config.media_srtp))
        return EXIT_ALL_CALLS_OK
    if config.rtp_send:
        from gossipper.media.scale.standalone import run_standalone

        standalone = standalone_settings(config)

        def run_streams(on_ready: Callable[[], None] | None) -> int:
            if on_ready is not None:
                on_ready()  # no hook inside the stream engine: -bg returns as it starts
            return EXIT_STATUS[run_standalone(standalone)]

        return detach(run_streams) if config.background else run_streams(None)
    from gossipper.engine.runner import run_scenario

    settings, scenario = run_settings(config), load_run_scenario(config)
    other = load_other_scenario(config, scenario)
    for notice in config.notices:
        print(f"gossipper: {notice}", file=sys.stderr)

    def run_sip(on_ready: Callable[[], None] | None) -> int:
        return _exit_status(config, run_scenario(settings, scenario, on_ready, other))

    return detach(run_sip) if config.background else run_sip(None)


def _exit_status(config: Config, outcome: RunOutcome) -> int:
    if outcome is RunOutcome.TIMED_OUT:
        elapsed = config.global_timeout_ms / 1000
        print(f"gossipper: -timeout: run timed out after {elapsed:.3f} seconds", file=sys.stderr)
    return EXIT_STATUS[outcome]


def load_other_scenario(config: Config, main: Scenario) -> OtherScenario | None:
    """SIPp's second scenario: -rxsf/-rxrn (mixed mode) or -oocsf/-oocsn, for a client run."""
    from gossipper.engine.other_scenario import OtherScenario

    receiving = _load(config, config.rx_scenario_file, config.rx_scenario_name)
    out_of_call = _load(config, config.ooc_scenario_file, config.ooc_scenario_name)
    if receiving is None and config.rx_inject_files:
        raise UsageError("-rxinf: needs -rxsf or -rxrn (it feeds the receiving scenario)")
    if receiving is not None and out_of_call is not None:
        raise UsageError("-oocsf/-oocsn: no effect with -rxsf/-rxrn, where every new call is received")
    if receiving is not None:
        if not main.is_uac or receiving.is_uac:
            raise UsageError("-rxsf/-rxrn: the main scenario must be a client's and the -rxsf one a server's")
        return OtherScenario(receiving, receiving=True, injection_files=tuple(config.rx_inject_files))
    if out_of_call is not None:
        if not main.is_uac:
            raise UsageError("-oocsf/-oocsn: a server run has no out-of-call messages (SIPp refuses it too)")
        return OtherScenario(out_of_call, receiving=False)
    return None


def _load(config: Config, path: str | None, name: str | None) -> Scenario | None:
    if path is not None and name is not None:
        raise UsageError(f"{path}, {name}: give a second scenario once, as a file or a built-in")
    if path is not None:
        return load_scenario_file(path, frozenset(config.keys))
    return load_builtin(name) if name is not None else None


def load_run_scenario(config: Config) -> Scenario:
    """-sf file, else -sn built-in, else SIPp's default: the uac built-in."""
    if config.scenario_file:
        return load_scenario_file(config.scenario_file, frozenset(config.keys))
    return load_builtin(config.scenario_name or "uac")
