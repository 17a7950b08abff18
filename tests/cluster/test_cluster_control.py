"""The driver's control of a SIP run over a cluster (keys and control-socket commands reach
every running node, a new rate or limit split as the run's was), checked against recording
stand-ins for the Ray actors, so no cluster is needed."""

from __future__ import annotations

from typing import Any

import pytest

from gossipper.cluster.nodes import NodeState
from gossipper.cluster.scenario_driver import ClusterRun
from gossipper.cluster.split import RunTotals, plan
from gossipper.engine.control import apply_command, apply_key
from gossipper.engine.settings import MAX_CALLS_PER_SECOND, GenerationSettings, RunSettings
from gossipper.scenario.builtins import load_builtin


class _Remote:
    def __init__(self, sent: list[tuple[object, ...]]) -> None:
        self.sent = sent

    def remote(self, *args: object) -> None:
        self.sent.append(args)


class _Actor:
    """Records what the driver asks of its node, as Ray's actor handle would carry it."""

    def __init__(self) -> None:
        self.sent: list[tuple[object, ...]] = []
        self.command = _Remote(self.sent)


def _run(nodes: int, **generation: Any) -> tuple[ClusterRun, list[_Actor]]:
    settings = RunSettings(generation=GenerationSettings(**generation))
    shares = plan(
        RunTotals(rate=settings.generation.rate, max_concurrent=settings.generation.max_concurrent), nodes
    )
    actors = [_Actor() for _ in shares]
    states = [
        NodeState(share, actor, {"address": "127.0.0.1"}) for share, actor in zip(shares, actors, strict=True)
    ]
    return ClusterRun(None, settings, load_builtin("uac"), states), actors


def test_a_new_rate_is_split_over_the_nodes_and_adds_up() -> None:
    run, actors = _run(3, rate=10.0)
    assert apply_command(run, "set rate 100") is None
    shares = [actor.sent[-1] for actor in actors]
    assert [name for name, _ in shares] == ["set_rate"] * 3
    assert sum(float(rate) for _, rate in shares) == 100.0  # type: ignore[arg-type]
    assert run.rate == 100.0 and run.counters.target_rate == 100.0
    apply_key(run, "+")  # SIPp's key: one more call per period, for the whole run
    assert sum(float(actor.sent[-1][1]) for actor in actors) == 101.0  # type: ignore[arg-type]


def test_a_limit_is_split_and_pause_and_stops_reach_every_node() -> None:
    run, actors = _run(2, rate=10.0, max_concurrent=10)
    assert apply_command(run, "set limit 7") is None
    assert [actor.sent[-1] for actor in actors] == [("set_limit", 4), ("set_limit", 3)]
    apply_key(run, "p")
    assert run.paused and all(actor.sent[-1] == ("pause_traffic",) for actor in actors)
    apply_key(run, "q")
    assert all(actor.sent[-1] == ("soft_stop",) for actor in actors)
    apply_key(run, "Q")
    assert all(actor.sent[-1] == ("hard_stop",) for actor in actors)


def test_a_node_that_has_ended_is_told_nothing_more() -> None:
    run, actors = _run(2, rate=10.0)
    run.states[1].status = "ok"
    run.quit_now()
    assert actors[0].sent == [("quit_now",)] and actors[1].sent == []


@pytest.mark.parametrize("value", ["1e12", "inf", "nan", "-5"])
def test_absurd_rates_are_refused_with_the_clusters_ceiling(value: str) -> None:
    run, actors = _run(2, rate=10.0)
    assert apply_command(run, f"set rate {value}") is not None
    assert all(actor.sent == [] for actor in actors)
    assert run.rate_ceiling == pytest.approx(2 * MAX_CALLS_PER_SECOND)  # -rp 1000: per second
