"""The driver of a standalone (-rtp_send) cluster run: one scale engine per Ray node, one
merged result.

Each node is handed its row of the split (gossipper/cluster/split.py: its streams and its
slice of the media ports); the driver polls every node once a second (gossipper/cluster/
nodes.py) and writes the summary a single host writes (counters summed, histograms merged),
plus a `nodes` section. SIP scenarios have their own driver (scenario_driver.py).
"""

from __future__ import annotations

import sys
import threading
import time
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
from gossipper.cluster.split import NodeShare, RunTotals, plan
from gossipper.media.scale.standalone import LivePeriods, stop_on_signals
from gossipper.media.settings import StandaloneSettings
from gossipper.outcome import RunOutcome
from gossipper.stats.counters import MediaCounters, RunCounters
from gossipper.stats.health import HealthGates
from gossipper.stats.live import LiveOutputs, LiveOutputSettings
from gossipper.stats.merge import merge_media
from gossipper.stats.summary import by_errno, health_report, write_summary_json


def run_cluster_standalone(
    settings: StandaloneSettings, address: str, nodes: int | None, media_ips: tuple[str, ...] = ()
) -> RunOutcome:
    """Run `-rtp_send` over the cluster at `address` (a Ray address or local:N); node i sends
    from media_ips[i] when given."""
    with ray_session(address) as ray:
        # a node beyond the streams would have none to send: fewer engines, never an idle one
        count = min(node_count(ray, nodes), settings.streams)
        shares = plan(
            RunTotals(
                streams=settings.streams, base_port=settings.media.base_port, max_port=settings.media.max_port
            ),
            count,
        )
        states = place(ray, shares)
        announce(states)
        counters = RunCounters()
        outputs = LiveOutputs(settings.live, counters, sip=False)  # on the merged counters
        try:
            outputs.open()
            outputs.start(counters.started_at)
            for state in states:
                media_ip = media_ips[state.share.index] if media_ips else None
                state.result = state.actor.run_streams.remote(_node_settings(settings, state.share, media_ip))
            stop = threading.Event()
            with stop_on_signals(stop):  # Ctrl-C: every node stops, the summary is written

                def merged() -> MediaCounters:
                    return merge_media(state.counters.media for state in states)

                _collect(ray, states, stop, LivePeriods(outputs, counters, merged, settings.stat_period_s))
        except BaseException:
            outputs.close()
            raise
        counters.finished_at = time.time()
    counters.media = merge_media(state.counters.media for state in states)
    counters.process_cpu_s = sum(state.counters.process_cpu_s for state in states)
    outputs.finish(counters.finished_at)
    outcome = _report(settings, counters, states)
    outputs.write_report(__version__, settings.health)
    return outcome


def _node_settings(
    settings: StandaloneSettings, share: NodeShare, media_ip: str | None
) -> StandaloneSettings:
    """A node's settings: its streams, port slice and address; outputs and gates stay with the driver."""
    return replace(
        settings,
        streams=share.streams,
        local_ip=media_ip or settings.local_ip,
        media=replace(settings.media, base_port=share.base_port, max_port=share.max_port, quiet=True),
        summary_json=None,
        health=HealthGates(),
        live=LiveOutputSettings(),
    )


def _collect(ray: Any, states: list[NodeState], stop: threading.Event, periods: LivePeriods) -> None:
    """Until every node has ended: their reports each second, their results as they come.
    A stop (Ctrl-C) is passed to every node, which then ends and reports as at a normal end."""
    stopping = False
    live = _LiveLine(states)
    while any(state.running for state in states):
        if stop.is_set() and not stopping:
            stopping = True
            for state in states:
                if state.running:
                    state.actor.command.remote("quit_now")
        for state in wait_for_results(ray, states, POLL_S):
            state.finish(ray)
        poll(ray, states)
        periods.second()
        if time.monotonic() >= periods.next_at:
            periods.run()
        live.show()


class _LiveLine:
    """Each second, one line: the cluster's totals, then each node's packets and status."""

    def __init__(self, states: list[NodeState]) -> None:
        self.states = states
        self.started = self.previous_at = time.monotonic()
        self.previous_packets = 0

    def show(self) -> None:
        now = time.monotonic()
        media = merge_media(state.counters.media for state in self.states)
        pps = (media.rtp_packets_sent - self.previous_packets) / max(1e-9, now - self.previous_at)
        self.previous_at, self.previous_packets = now, media.rtp_packets_sent
        nodes = "  ".join(
            f"{state.name} {state.counters.media.rtp_packets_sent}"
            + ("" if state.status in ("running", "ok") else f" {state.status}")
            for state in self.states
        )
        print(
            f"gossipper: cluster {now - self.started:7.1f} s  {pps:9.0f} pps  "
            f"{media.rtp_packets_sent:>11} packets  "
            f"{sum(media.send_errors.values())} send errors  {media.late_packets} late  "
            f"{media.streams_active} active streams | {nodes}",
            file=sys.stderr,
            flush=True,
        )


def _report(settings: StandaloneSettings, counters: RunCounters, states: list[NodeState]) -> RunOutcome:
    """The result lines, one per node, and the summary with its `nodes` section."""
    media = counters.media
    elapsed = counters.elapsed_s()
    out = sys.stderr if settings.summary_json == "-" else sys.stdout
    for state in states:
        print(
            f"gossipper: cluster: {state.name}: {state.status}, {state.counters.media.rtp_packets_sent} "
            f"packets, send errors: {by_errno(state.counters.media.send_errors)}",
            file=out,
            flush=True,
        )
    print(
        f"gossipper: rtp_send done on {len(states)} node(s): {media.rtp_packets_sent} packets, "
        f"{media.rtp_octets_sent} payload octets in {elapsed:.3f} s "
        f"({media.rtp_packets_sent / elapsed if elapsed else 0.0:.1f} pps); "
        f"send errors: {by_errno(media.send_errors)}; "
        f"late (>1 ms): {media.late_packets}, max late {media.max_late_ms:.3f} ms; engine {media.engine}",
        file=out,
        flush=True,
    )
    report = health_report(counters, __version__, settings.health)
    for failure in report.failure_lines():
        print(f"gossipper: {failure}", file=sys.stderr)
    if settings.summary_json:
        nodes = {"nodes": [state.as_dict() for state in states]}
        write_summary_json(settings.summary_json, counters, __version__, settings.health, nodes)
    return _outcome(media, states).gated(report.passed)


def _outcome(media: MediaCounters, states: list[NodeState]) -> RunOutcome:
    """A run that lost a node is degraded; one with send errors did not fully succeed."""
    if any(state.status != "ok" for state in states):
        return RunOutcome.DEGRADED
    if sum(media.send_errors.values()):
        return RunOutcome.SOME_FAILED
    return RunOutcome.ALL_SUCCEEDED if media.rtp_packets_sent else RunOutcome.NOTHING_DONE
