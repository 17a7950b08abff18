"""The driver of a SIP scenario run over a cluster: one engine per node, one merged run.

Each node runs its share of the client scenario (gossipper/cluster/split.py: its part of
-r, -m, -l and -users, its slice of the media ports, its own call numbers and Call-ID
prefix) on its own loop, steered from the driver (gossipper/engine/steering.py). The driver
holds one RunCounters that it refills each second with the merge of the nodes' latest
counters, and hands it to the same views a single host has: the SIPp screen, -trace_stat
and the other CSVs, -stats_jsonl, -metrics_addr, -summary_html, -call_records (the nodes
send their records up), the summary and the health gates. So whatever a single host
reports, a cluster reports, merged; only the message and log traces stay on each node.
The keyboard and the control socket are the driver's, and each command reaches every
node, a rate or a limit split as the run's was.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from gossipper import __version__
from gossipper.cluster.nodes import (
    POLL_S,
    NodeState,
    announce,
    node_count,
    place,
    poll,
    ray_session,
    wait_for_results,
)
from gossipper.cluster.split import NodeShare, RunTotals, plan, split_count, split_rate
from gossipper.engine.control import RunControl
from gossipper.engine.other_scenario import OtherScenario
from gossipper.engine.run_end import install_signal_handlers
from gossipper.engine.runner import counters_for
from gossipper.engine.settings import RunSettings, TraceSettings, ViewSettings, rate_ceiling
from gossipper.engine.steering import Progress
from gossipper.engine.views import RunViews
from gossipper.errors import ScenarioFatal
from gossipper.outcome import RunOutcome
from gossipper.scenario.model import Scenario
from gossipper.stats.counters import RunCounters
from gossipper.stats.health import HealthGates
from gossipper.stats.live import LiveOutputSettings
from gossipper.stats.merge import merge_runs

# Fields the driver's counters keep as its own rather than take from the merge.
_DRIVER_FIELDS = frozenset({"started_at", "finished_at", "unexpected_codes", "collect_error_codes"})


def run_cluster_scenario(
    settings: RunSettings,
    scenario: Scenario,
    other: OtherScenario | None,
    address: str,
    nodes: int | None,
    media_ips: tuple[str, ...] = (),
) -> RunOutcome:
    """Run a client scenario over the cluster at `address` (a Ray address or local:N)."""
    generation = settings.generation
    with ray_session(address) as ray:
        count = node_count(ray, nodes)
        # a node without a call or a user to run would run without a limit: fewer nodes instead
        for limit in (generation.max_calls, generation.users):
            if limit:
                count = min(count, limit)
        totals = RunTotals(
            rate=generation.rate,
            max_calls=generation.max_calls,
            max_concurrent=generation.max_concurrent,
            users=generation.users,
            rate_increase=generation.rate_increase,
            rate_max=generation.rate_max,
            base_port=settings.media.base_port,
            max_port=settings.media.max_port,
        )
        states = place(ray, plan(totals, count))
        announce(states)
        driver = ClusterRun(ray, settings, scenario, states)

        def start_nodes() -> None:
            for state in states:
                media_ip = media_ips[state.share.index] if media_ips else None
                ray.get(state.actor.prepare_scenario.remote(settings.views.call_records is not None))
                state.result = state.actor.run_scenario.remote(
                    node_settings(settings, state.share, media_ip), scenario, other
                )

        return asyncio.run(driver.main(start_nodes))


def node_settings(settings: RunSettings, share: NodeShare, media_ip: str | None) -> RunSettings:
    """A node's share of the run: its part of the load, its ports and call numbers; the
    screen, the keyboard and control socket, the summary and the aggregate files are the
    driver's. Message and log traces stay on the node (its files carry its pid)."""
    generation = replace(
        settings.generation,
        rate=share.rate,
        max_calls=share.max_calls,
        max_concurrent=share.max_concurrent,
        users=share.users,
        rate_increase=share.rate_increase,
        rate_max=share.rate_max,
    )
    views = replace(
        settings.views,
        quiet=True,
        headless=True,
        screen=TraceSettings(),
        screen_period_s=0.0,
        stat_csv=False,
        counts_csv=False,
        error_codes_csv=False,
        summary_json=None,
        health=HealthGates(),
        live=LiveOutputSettings(),
    )
    return replace(
        settings,
        generation=generation,
        keywords=replace(
            settings.keywords, call_number_base=share.call_number_base, call_id_prefix=share.call_id_prefix
        ),
        views=views,
        control=replace(settings.control, keyboard=False, socket=False),
        media=replace(
            settings.media,
            ip=media_ip or settings.media.ip,
            base_port=share.base_port,
            max_port=share.max_port,
            quiet=True,
        ),
    )


def driver_views(views: ViewSettings) -> ViewSettings:
    """The driver's views: everything but what only a node sees (its messages and logs)."""
    off = TraceSettings()
    return replace(views, messages=off, shortmessages=off, errors=off, logs=off, calldebug=off, rtt_csv=False)


class ClusterRun:
    """The driver's run: the merged counters and their views, and the control every node obeys
    (the Controllable a single run is to its keyboard and control socket)."""

    def __init__(self, ray: Any, settings: RunSettings, scenario: Scenario, states: list[NodeState]) -> None:
        self.ray = ray
        self.settings = settings
        self.scenario = scenario
        self.states = states
        self.counters = counters_for(scenario)
        for state in states:  # until a node first reports: its steps and names, at zero
            state.counters = counters_for(scenario)
        self.counters.collect_error_codes = settings.views.error_codes_csv
        self.views = RunViews(driver_views(settings.views), scenario, self.counters, self._header_fields)
        self.control = RunControl(self, settings.control)
        generation = settings.generation
        self._rate = generation.rate
        self._users = generation.users or None
        self._limit = generation.max_concurrent
        self.paused = False
        self.counters.target_rate = self._rate
        self.counters.target_users = self._users

    # ------------------------------------------------------------------ the run
    async def main(self, start_nodes: Callable[[], None]) -> RunOutcome:
        """The driver's outputs and control first (a metrics port or control port that cannot
        be bound stops the run before any node sends), then the nodes, until all have ended."""
        loop = asyncio.get_running_loop()
        self.views.open_live()
        self.control.start(loop)
        self.counters.started_at = time.time()
        self.views.start()
        install_signal_handlers(loop, self.soft_stop, self.quit_now, self.views.dump_screen)
        fatal: str | None = None
        try:
            start_nodes()
            while any(state.running for state in self.states):
                ended = await loop.run_in_executor(None, wait_for_results, self.ray, self.states, POLL_S)
                for state in ended:
                    result = state.finish(self.ray)
                    if result is not None and result.tail is not None:
                        self._take(result.tail)
                    if state.fatal is not None and fatal is None:
                        fatal = state.fatal  # a scenario's <error> ends the whole run, as on one host
                        self.quit_now()
                for progress in await loop.run_in_executor(None, poll, self.ray, self.states):
                    self._take(progress)
                self._merge()
                self.views.tick(time.time())
                self._show_nodes()
        finally:
            self.control.close()
        self._merge()
        self.counters.finished_at = time.time()
        nodes = {"nodes": [state.as_dict() for state in self.states]}
        verdict = self.views.finish(__version__, nodes)
        self._print_nodes()
        if fatal is not None:
            raise ScenarioFatal(fatal)
        return self._outcome().gated(verdict.passed)

    def _take(self, progress: Progress) -> None:
        """What a node sent besides its counters: its ended calls' records, its codes."""
        if self.views.call_records is not None:
            for record in progress.records:
                self.views.call_records.write(record)
        if self.counters.collect_error_codes:
            self.counters.unexpected_codes.extend(progress.unexpected_codes)

    def _merge(self) -> None:
        """The driver's counters become the nodes' together, in place: the views hold them."""
        merged = merge_runs([state.counters for state in self.states])
        for item in dataclasses.fields(RunCounters):
            if item.name not in _DRIVER_FIELDS:
                setattr(self.counters, item.name, getattr(merged, item.name))

    def _outcome(self) -> RunOutcome:
        """The most telling of the nodes' endings: a node's own error ending, then a lost
        node, then the merged calls as a single run judges its own."""
        outcomes = [state.outcome for state in self.states]
        for severe in (RunOutcome.TIMED_OUT, RunOutcome.RTP_CHECK_FAILED):
            if severe in outcomes:
                return severe
        if any(state.status != "ok" for state in self.states):
            return RunOutcome.DEGRADED
        if self.counters.calls_failed:
            return RunOutcome.SOME_FAILED
        if RunOutcome.STOPPED_BY_COMMAND in outcomes and not self.counters.calls_succeeded:
            return RunOutcome.STOPPED_BY_COMMAND
        return RunOutcome.ALL_SUCCEEDED

    # ------------------------------------------------------------------ what the driver shows
    def _header_fields(self) -> dict[str, object]:
        remote = self.settings.transport.remote
        return {
            "scenario": self.scenario.name,
            "local": f"cluster of {len(self.states)} nodes",
            "remote": f"{remote[0]}:{remote[1]}" if remote else "",
            "transport": self.settings.transport.mode.value,
            "rate": self._rate,
            "rate_period_ms": self.settings.generation.rate_period_ms,
            "max_calls": self.settings.generation.max_calls,
            "max_concurrent": self._limit,
            "paused": self.paused,
        }

    def _node_line(self, state: NodeState) -> str:
        counters = state.counters
        status = "" if state.status in ("running", "ok") else f" {state.status}"
        return (
            f"{state.name}: {counters.calls_created} created, {counters.calls_succeeded} ok, "
            f"{counters.calls_failed} failed, {counters.calls_active} active, "
            f"{counters.media.rtp_packets_sent} rtp{status}"
        )

    def _show_nodes(self) -> None:
        """Each second, after the screen (or alone when there is no terminal): each node's calls."""
        line = " | ".join(self._node_line(state) for state in self.states)
        counters = self.counters
        print(
            f"gossipper: cluster {counters.elapsed_s():7.1f} s  {counters.calls_created} created  "
            f"{counters.calls_succeeded} ok  {counters.calls_failed} failed  "
            f"{counters.calls_active} active | {line}",
            file=sys.stderr,
            flush=True,
        )

    def _print_nodes(self) -> None:
        out = sys.stderr if self.settings.views.summary_json == "-" else sys.stdout
        for state in self.states:
            print(f"gossipper: cluster: {self._node_line(state)}", file=out, flush=True)

    # ------------------------------------------------------------------ Controllable
    def _tell_all(self, name: str, *args: object) -> None:
        for state in self.states:
            if state.running:
                state.actor.command.remote(name, *args)

    def _tell_each(self, name: str, values: list[Any]) -> None:
        for state, value in zip(self.states, values, strict=True):
            if state.running:
                state.actor.command.remote(name, value)

    def soft_stop(self) -> None:
        self._tell_all("soft_stop")

    def hard_stop(self) -> None:
        self._tell_all("hard_stop")

    def quit_now(self) -> None:
        self._tell_all("quit_now")

    def set_rate(self, rate: float) -> None:
        self._rate = rate
        self.counters.target_rate = rate
        self._tell_each("set_rate", split_rate(rate, len(self.states)))

    def set_limit(self, limit: int) -> None:
        self._limit = limit
        if self._users is not None:
            self._users = limit
            self.counters.target_users = limit
        self._tell_each("set_limit", split_count(limit, len(self.states)))

    def pause_traffic(self) -> None:
        self.paused = not self.paused
        self._tell_all("pause_traffic")

    def trace_error(self, text: str) -> None:
        self.views.trace_error(text)
        print(f"gossipper: {text}", file=sys.stderr)

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def rate_ceiling(self) -> float:
        """Each node may create calls as fast as one host may."""
        return rate_ceiling(self.settings.generation.rate_period_ms) * len(self.states)

    @property
    def users(self) -> int | None:
        return self._users
