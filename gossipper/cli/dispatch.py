"""Which mode a validated Config asks for, run with the settings compiled for it.

The engine and the scale engine are imported only when their mode runs, so -h, -v and
-sd answer without loading them. Loading the scenario is a step of its own, so that its
errors end the process as SIPp's do while it reads its command line (exit 1).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from gossipper.cli.background import detach
from gossipper.cli.compile import run_settings, standalone_settings
from gossipper.cli.config import Config
from gossipper.cli.errors import UsageError
from gossipper.cli.exit_codes import EXIT_NO_CALLS, EXIT_STATUS
from gossipper.cli.validate import check_media_ports_for_calls
from gossipper.errors import FileProblem
from gossipper.outcome import RunOutcome
from gossipper.scenario.builtins import dump_builtin, load_builtin
from gossipper.scenario.loader import load_scenario_file
from gossipper.scenario.model import Scenario

if TYPE_CHECKING:
    from gossipper.engine.other_scenario import OtherScenario


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
    check_media_ports_for_calls(config, scenario)
    return scenario


def run(config: Config, scenario: Scenario | None) -> int:
    """Run a validated Config with the scenario load_run_scenario gave; SIPp's exit status."""
    if config.rtp_send:
        from gossipper.media.scale.standalone import run_standalone

        standalone = standalone_settings(config)
        if config.cluster_address is not None:
            from gossipper.cluster.driver import run_cluster_standalone

            return EXIT_STATUS[
                run_cluster_standalone(
                    standalone, config.cluster_address, config.cluster_nodes, config.cluster_media_ips
                )
            ]

        def run_streams(on_ready: Callable[[], None] | None) -> int:
            if on_ready is not None:
                on_ready()  # no hook inside the stream engine: -bg returns as it starts
            return EXIT_STATUS[run_standalone(standalone)]

        return detach(run_streams) if config.background else run_streams(None)
    assert scenario is not None, "a SIP run is given its scenario"
    if scenario.creation_mode is None:
        # SIPp's computeSippMode, once the scenario is in place: a fatal error (exit -1).
        raise FileProblem(
            f"{config.scenario_file or scenario.name}: unable to determine creation mode (server, client): "
            "no <send>, <recv>, <sendCmd> or <recvCmd>, only pauses and nops"
        )
    from gossipper.engine.runner import run_scenario

    settings = run_settings(config)
    other = load_other_scenario(config, scenario)
    for notice in config.notices:
        print(f"gossipper: {notice}", file=sys.stderr)
    if config.cluster_address is not None:
        from gossipper.cluster.scenario_driver import run_cluster_scenario

        if not scenario.is_uac:
            raise UsageError(
                f"-cluster: {scenario.name} is a server scenario, which waits for calls at one address; "
                "run it on one host (a cluster spreads the calls a client makes)"
            )
        outcome = run_cluster_scenario(
            settings, scenario, other, config.cluster_address, config.cluster_nodes, config.cluster_media_ips
        )
        return _exit_status(config, outcome)

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
