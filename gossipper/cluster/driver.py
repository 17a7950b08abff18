"""The driver of a cluster run: one scale engine per Ray node, one merged result.

The driver (the process the user started) connects to Ray, reserves one bundle of the
`gossipper` resource on each node it uses with a STRICT_SPREAD placement group (so no two
engines share a host and its open-files limit and NIC), hands each node its row of the
split (gossipper/cluster/split.py: its streams and its slice of the media ports), and
collects every node's counters. Each node reports its counters once a second; a node that
dies keeps the counts of its last report, marked partial. The summary is the one a single
host writes (counters summed, histograms merged), plus a `nodes` section.

Only this module imports Ray, and only when a cluster run starts: Ray is an optional extra.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from types import FrameType
from typing import Any

from gossipper import __version__
from gossipper.cluster.availability import local_cluster_nodes
from gossipper.cluster.split import NodeShare, RunTotals, plan
from gossipper.errors import GossipperError, InvalidValue
from gossipper.media.scale.standalone import run_node_streams
from gossipper.media.settings import StandaloneSettings
from gossipper.outcome import RunOutcome
from gossipper.stats.atomic_file import write_atomically
from gossipper.stats.counters import MediaCounters, RunCounters
from gossipper.stats.health import HealthGates, evaluate
from gossipper.stats.live import LiveOutputSettings
from gossipper.stats.merge import merge_media
from gossipper.stats.summary import by_errno, summary_dict

RESOURCE = "gossipper"  # the custom resource a node offers to take one engine
READY_TIMEOUT_S = 60.0  # for the placement group: a node that cannot be reserved in this long is not there
POLL_S = 1.0
CONNECT_TIMEOUT_S = 5.0  # for the head's port to accept a connection
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


@dataclass
class NodeResult:
    """A node's final counters, and the CPU its process spent on the run (its engine's threads
    and Ray's own in that process), to compare a cluster's cost per packet with one host's."""

    counters: RunCounters
    cpu_s: float


class NodeRunner:
    """The Ray actor on one node: runs that node's streams, reports, and can be stopped.

    Ray runs it with several threads (max_concurrency), so `stop` and `progress` answer
    while `run` blocks in the engine's wait.
    """

    def __init__(self) -> None:
        self.stop_event = threading.Event()
        self.latest = MediaCounters()
        self.started_at = time.time()

    def where(self) -> dict[str, str]:
        import ray

        return {
            "address": ray.util.get_node_ip_address(),
            "hostname": socket.gethostname(),
            "node_id": ray.get_runtime_context().get_node_id(),
        }

    def run(self, settings: StandaloneSettings) -> NodeResult:
        self.started_at = time.time()
        cpu_before = time.process_time()
        counters = run_node_streams(settings, self.stop_event, self._report)
        counters.started_at = self.started_at
        return NodeResult(counters, time.process_time() - cpu_before)

    def _report(self, media: MediaCounters) -> None:
        self.latest = media

    def progress(self) -> MediaCounters:
        return self.latest

    def stop(self) -> None:
        self.stop_event.set()


@dataclass
class NodeState:
    """What the driver knows of one node."""

    share: NodeShare
    actor: Any
    place: dict[str, str]
    result: Any = None  # the ObjectRef of its run
    media: MediaCounters = field(default_factory=MediaCounters)
    started_at: float = 0.0
    finished_at: float | None = None
    status: str = "running"  # then ok (final counts), partial (died; last report kept), lost (no report)
    error: str | None = None
    cpu_s: float | None = None  # the node process' CPU over its run (None: it died first)

    @property
    def name(self) -> str:
        return f"node{self.share.index}@{self.place.get('address', '?')}"

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "address": self.place.get("address"),
            "hostname": self.place.get("hostname"),
            "node_id": self.place.get("node_id"),
            "status": self.status,
            "error": self.error,
            "streams": self.share.streams,
            "ports": f"{self.share.base_port}..{self.share.max_port}",
            "rtp_packets_sent": self.media.rtp_packets_sent,
            "rtp_octets_sent": self.media.rtp_octets_sent,
            "rtp_packets_received": self.media.rtp_packets_received,
            "send_errors": dict(sorted(self.media.send_errors.items())),
            "late_packets": self.media.late_packets,
            "streams_started": self.media.streams_started,
            "cpu_s": None if self.cpu_s is None else round(self.cpu_s, 3),
        }


def run_cluster_standalone(settings: StandaloneSettings, address: str, nodes: int | None) -> RunOutcome:
    """Run `-rtp_send` over the cluster at `address` (a Ray address or local:N)."""
    with _ray_session(address) as ray:
        # a node beyond the streams would have none to send: fewer engines, never an idle one
        count = min(_node_count(ray, nodes), settings.streams)
        shares = plan(
            RunTotals(
                streams=settings.streams, base_port=settings.media.base_port, max_port=settings.media.max_port
            ),
            count,
        )
        states = _place(ray, shares)
        for state in states:
            print(
                f"gossipper: cluster: {state.name} ({state.place.get('hostname')}): {state.share.streams} "
                f"stream(s) from ports {state.share.base_port}..{state.share.max_port}",
                file=sys.stderr,
                flush=True,
            )
        started_at = time.time()
        for state in states:
            state.started_at = started_at
            state.result = state.actor.run.remote(_node_settings(settings, state.share))
        stop = threading.Event()
        with _stop_on_signals(stop):
            _collect(ray, states, stop)
        finished_at = time.time()
    counters = RunCounters(started_at=started_at, finished_at=finished_at)
    counters.media = merge_media(state.media for state in states)
    return _report(settings, counters, states)


# Ray's switch between a cluster across hosts and one on loopback (ray_constants).
LOOPBACK_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextmanager
def _ray_session(address: str) -> Iterator[Any]:
    """Ray connected to the cluster (a local one started here for local:N), shut down after."""
    import logging

    local = local_cluster_nodes(address)
    if local is not None:
        # Ray otherwise names a node by the host's outward address and runs its control
        # traffic there; a cluster on this one host keeps it on loopback. Read by Ray as
        # it is imported, so set first.
        os.environ.setdefault(LOOPBACK_ONLY_ENV, "0")
    import ray

    cluster = None
    try:
        if local is not None:
            from ray.cluster_utils import Cluster

            node_args: dict[str, Any] = {"num_cpus": 1, "resources": {RESOURCE: 1}}
            head_args = {**node_args, "include_dashboard": False}
            cluster = Cluster(initialize_head=True, head_node_args=head_args)
            for _ in range(local - 1):
                cluster.add_node(**node_args)
            cluster.wait_for_nodes()
            address = cluster.address
        else:
            _check_reachable(address)
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)
    except InvalidValue:
        raise
    except Exception as error:  # Ray raises ConnectionError, RuntimeError, ValueError...
        if cluster is not None:
            cluster.shutdown()
        raise InvalidValue(f"cannot reach a Ray cluster at {address!r}: {error}", setting="cluster") from None
    try:
        yield ray
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()


def _check_reachable(address: str) -> None:
    """A HOST:PORT or ray://HOST:PORT that nothing answers at: Ray itself would retry for
    minutes before giving up, so the driver asks once, with a short timeout, and says so."""
    target = address.removeprefix("ray://")
    if address == "auto" or ":" not in target:
        return
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except (OSError, ValueError) as error:
        raise InvalidValue(
            f"nothing answers at {address!r} ({getattr(error, 'strerror', None) or error}); "
            "is `ray start --head` running there?",
            setting="cluster",
        ) from None


def _node_count(ray: Any, wanted: int | None) -> int:
    offering = [node for node in ray.nodes() if node.get("Alive") and node.get("Resources", {}).get(RESOURCE)]
    if not offering:
        raise InvalidValue(
            f"no node of the cluster offers the {RESOURCE!r} resource "
            f"(start each with: ray start ... --resources='{{\"{RESOURCE}\": 1}}')",
            setting="cluster",
        )
    if wanted is not None and wanted > len(offering):
        raise InvalidValue(
            f"{wanted} nodes asked but {len(offering)} offer the {RESOURCE!r} resource",
            setting="cluster_nodes",
        )
    return wanted or len(offering)


def _place(ray: Any, shares: list[NodeShare]) -> list[NodeState]:
    """One actor per node: a STRICT_SPREAD placement group of one `gossipper` bundle each."""
    from ray.util.placement_group import placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    group = placement_group([{RESOURCE: 1} for _ in shares], strategy="STRICT_SPREAD")
    ready, _ = ray.wait([group.ready()], timeout=READY_TIMEOUT_S)
    if not ready:
        raise InvalidValue(
            f"could not place {len(shares)} engines on as many distinct nodes within {READY_TIMEOUT_S:g} s",
            setting="cluster_nodes",
        )
    remote = ray.remote(max_concurrency=4, num_cpus=0, resources={RESOURCE: 1})(NodeRunner)
    actors = [
        remote.options(
            scheduling_strategy=PlacementGroupSchedulingStrategy(
                group, placement_group_bundle_index=share.index
            )
        ).remote()
        for share in shares
    ]
    places = ray.get([actor.where.remote() for actor in actors], timeout=READY_TIMEOUT_S)
    return [
        NodeState(share, actor, place) for share, actor, place in zip(shares, actors, places, strict=True)
    ]


def _node_settings(settings: StandaloneSettings, share: NodeShare) -> StandaloneSettings:
    """A node's settings: its streams and port slice; outputs and gates stay with the driver."""
    return replace(
        settings,
        streams=share.streams,
        media=replace(settings.media, base_port=share.base_port, max_port=share.max_port, quiet=True),
        summary_json=None,
        health=HealthGates(),
        live=LiveOutputSettings(),
    )


def _collect(ray: Any, states: list[NodeState], stop: threading.Event) -> None:
    """Until every node has ended: their reports each second, their results as they come.
    A stop (Ctrl-C) is passed to every node, which then ends and reports as at a normal end."""
    stopping = False
    live = _LiveLine(states)
    while any(state.status == "running" for state in states):
        if stop.is_set() and not stopping:
            stopping = True
            for state in states:
                if state.status == "running":
                    state.actor.stop.remote()
        running = {state.result: state for state in states if state.status == "running"}
        done, _ = ray.wait(list(running), num_returns=len(running), timeout=POLL_S)
        for ref in done:
            _finish(ray, running[ref])
        _poll(ray, [state for state in states if state.status == "running"])
        live.show()


class _LiveLine:
    """Each second, one line: the cluster's totals, then each node's packets and status."""

    def __init__(self, states: list[NodeState]) -> None:
        self.states = states
        self.started = self.previous_at = time.monotonic()
        self.previous_packets = 0

    def show(self) -> None:
        now = time.monotonic()
        media = merge_media(state.media for state in self.states)
        pps = (media.rtp_packets_sent - self.previous_packets) / max(1e-9, now - self.previous_at)
        self.previous_at, self.previous_packets = now, media.rtp_packets_sent
        nodes = "  ".join(
            f"{state.name} {state.media.rtp_packets_sent}"
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


def _finish(ray: Any, state: NodeState) -> None:
    try:
        result: NodeResult = ray.get(state.result)
    except Exception as error:  # the actor died, its node went away, or its run raised
        state.status = "partial" if state.media.rtp_packets_sent or state.media.streams_started else "lost"
        state.error = _first_line(error)
        state.finished_at = time.time()
        print(f"gossipper: cluster: {state.name} lost: {state.error}", file=sys.stderr, flush=True)
        return
    state.media = result.counters.media
    state.started_at = result.counters.started_at
    state.finished_at = result.counters.finished_at
    state.cpu_s = result.cpu_s
    state.status = "ok"


def _poll(ray: Any, states: list[NodeState]) -> None:
    """Every running node's last report, asked of all at once; a node that does not answer
    within the poll keeps the report before (a dead one shows when its result is collected)."""
    asked = {state.actor.progress.remote(): state for state in states}
    ready, _ = ray.wait(list(asked), num_returns=len(asked), timeout=POLL_S)
    for ref in ready:
        with suppress(Exception):
            asked[ref].media = ray.get(ref)


def _first_line(error: BaseException) -> str:
    """What went wrong on the node: gossipper's own one line when its run refused something
    (a port taken, an open-files limit), else the first line of Ray's error."""
    cause = getattr(error, "cause", None)  # a RayTaskError carries the exception the node raised
    if isinstance(cause, GossipperError):
        return cause.message
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C stops every node through the normal end, so the merged summary is still written."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _report(settings: StandaloneSettings, counters: RunCounters, states: list[NodeState]) -> RunOutcome:
    """The result lines, one per node, and the summary with its `nodes` section."""
    media = counters.media
    elapsed = counters.elapsed_s()
    out = sys.stderr if settings.summary_json == "-" else sys.stdout
    for state in states:
        print(
            f"gossipper: cluster: {state.name}: {state.status}, {state.media.rtp_packets_sent} packets, "
            f"send errors: {by_errno(state.media.send_errors)}",
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
    document = summary_dict(counters, __version__, settings.health)
    document["nodes"] = [state.as_dict() for state in states]
    report = evaluate(document, settings.health)  # the merged run's figures, as the summary shows them
    for failure in report.failure_lines():
        print(f"gossipper: {failure}", file=sys.stderr)
    if settings.summary_json:
        text = json.dumps(document, indent=2) + "\n"
        if settings.summary_json == "-":
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            write_atomically(settings.summary_json, text, "summary_json")
    return _outcome(media, states).gated(report.passed)


def _outcome(media: MediaCounters, states: list[NodeState]) -> RunOutcome:
    """A run that lost a node, or had send errors, did not fully succeed."""
    if sum(media.send_errors.values()) or any(state.status != "ok" for state in states):
        return RunOutcome.SOME_FAILED
    return RunOutcome.ALL_SUCCEEDED if media.rtp_packets_sent else RunOutcome.NOTHING_DONE
