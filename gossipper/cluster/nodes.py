"""The Ray side of a cluster run: the session, one engine actor per node, and what the
driver knows of each node.

The driver reserves one bundle of the `gossipper` resource on each node it uses with a
STRICT_SPREAD placement group (so no two engines share a host and its open-files limit and
NIC), starts one NodeRunner actor in each bundle, and polls every node once a second. A node
that dies keeps the counts of its last report, marked partial.

Only this package imports Ray, and only when a cluster run starts: Ray is an optional extra.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from gossipper.cluster.availability import local_cluster_nodes, prepare_environment
from gossipper.cluster.split import NodeShare
from gossipper.cluster.wire import register_frozen_dataclasses
from gossipper.engine.other_scenario import OtherScenario
from gossipper.engine.runner import run_steered
from gossipper.engine.settings import RunSettings
from gossipper.engine.steering import Progress, RunSteering
from gossipper.errors import GossipperError, InvalidValue, ScenarioFatal
from gossipper.media.scale.standalone import run_node_streams
from gossipper.media.settings import StandaloneSettings
from gossipper.outcome import RunOutcome
from gossipper.scenario.model import Scenario
from gossipper.stats.counters import MediaCounters, RunCounters

RESOURCE = "gossipper"  # the custom resource a node offers to take one engine
READY_TIMEOUT_S = 60.0  # for the placement group: a node that cannot be reserved in this long is not there
POLL_S = 1.0
CONNECT_TIMEOUT_S = 5.0  # for the head's port to accept a connection


@dataclass
class NodeResult:
    """A node's final counters (their process_cpu_s is the node process' CPU over the run: its
    engine's threads and Ray's own in that process, to compare a cluster's cost per packet
    with one host's). A SIP run adds its outcome and what the driver had not read yet."""

    counters: RunCounters
    outcome: RunOutcome | None = None
    tail: Progress | None = None


class NodeRunner:
    """The Ray actor on one node: runs that node's share, reports, and takes commands.

    Ray runs it with several threads (max_concurrency), so `command` and `progress` answer
    while `run_*` blocks in the engine.
    """

    def __init__(self, workdir: str) -> None:
        # Relative paths of the run (-sf's media files, -inf) mean what they mean for the
        # driver where the node has that folder (a local cluster, or a shared one).
        with suppress(OSError):
            os.chdir(workdir)
        register_frozen_dataclasses()  # for what the node sends back
        self.stop_event = threading.Event()
        self.latest = MediaCounters()
        self.steering: RunSteering | None = None

    def where(self) -> dict[str, str]:
        import ray

        return {
            "address": ray.util.get_node_ip_address(),
            "hostname": socket.gethostname(),
            "node_id": ray.get_runtime_context().get_node_id(),
        }

    def run_streams(self, settings: StandaloneSettings) -> NodeResult:
        started_at = time.time()
        counters = run_node_streams(settings, self.stop_event, self._report)
        counters.started_at = started_at
        register_frozen_dataclasses()
        return NodeResult(counters)

    def run_scenario(
        self, settings: RunSettings, scenario: Scenario, other: OtherScenario | None
    ) -> NodeResult:
        assert self.steering is not None, "the driver sets steering up before the run"
        outcome, counters, tail = run_steered(settings, scenario, other, self.steering)
        register_frozen_dataclasses()
        return NodeResult(counters, outcome, tail)

    def prepare_scenario(self, keep_records: bool) -> None:
        """Before run_scenario, so that a command sent as the run starts is never lost."""
        self.steering = RunSteering(keep_records)

    def _report(self, media: MediaCounters) -> None:
        self.latest = media

    def progress(self) -> Progress:
        if self.steering is not None:
            return self.steering.progress()
        return Progress(RunCounters(media=self.latest))

    def command(self, name: str, *args: object) -> None:
        if self.steering is not None:
            self.steering.command(name, *args)
        elif name in ("quit_now", "hard_stop", "soft_stop"):
            self.stop_event.set()


@dataclass
class NodeState:
    """What the driver knows of one node."""

    share: NodeShare
    actor: Any
    place: dict[str, str]
    result: Any = None  # the ObjectRef of its run
    counters: RunCounters = field(default_factory=RunCounters)
    finished_at: float | None = None
    # then ok (final counts), partial (died; last report kept), lost (no report), or fatal (its
    # scenario's <error> ended the run; last report kept)
    status: str = "running"
    error: str | None = None
    cpu_s: float | None = None  # the node process' CPU over its run (None: it died first)
    outcome: RunOutcome | None = None  # a SIP run's own outcome
    fatal: str | None = None  # the node's scenario ended the run with <error>: its message

    @property
    def name(self) -> str:
        return f"node{self.share.index}@{self.place.get('address', '?')}"

    @property
    def running(self) -> bool:
        return self.status == "running"

    def as_dict(self) -> dict[str, object]:
        counters, media = self.counters, self.counters.media
        return {
            "name": self.name,
            "address": self.place.get("address"),
            "hostname": self.place.get("hostname"),
            "node_id": self.place.get("node_id"),
            "status": self.status,
            "error": self.error,
            "streams": self.share.streams,
            "ports": f"{self.share.base_port}..{self.share.max_port}",
            "calls_created": counters.calls_created,
            "calls_succeeded": counters.calls_succeeded,
            "calls_failed": counters.calls_failed,
            "rtp_packets_sent": media.rtp_packets_sent,
            "rtp_octets_sent": media.rtp_octets_sent,
            "rtp_packets_received": media.rtp_packets_received,
            "send_errors": dict(sorted(media.send_errors.items())),
            "late_packets": media.late_packets,
            "streams_started": media.streams_started,
            "cpu_s": None if self.cpu_s is None else round(self.cpu_s, 3),
        }

    def finish(self, ray: Any) -> NodeResult | None:
        """Its run has returned or failed: its final counts, or the last report marked partial."""
        try:
            result: NodeResult = ray.get(self.result)
        except Exception as error:  # the actor died, its node went away, or its run raised
            reported = self.counters.calls_created or self.counters.media.rtp_packets_sent
            self.status = "partial" if reported or self.counters.media.streams_started else "lost"
            self.error = first_line(error)
            cause = getattr(error, "cause", None)
            if isinstance(cause, ScenarioFatal):
                self.fatal = cause.message
                self.status = "fatal"  # its scenario ended the run: not lost, and its counts partial
            self.finished_at = time.time()
            what = "ended the run" if self.fatal else "lost"
            print(f"gossipper: cluster: {self.name} {what}: {self.error}", file=sys.stderr, flush=True)
            return None
        self.counters = result.counters
        self.finished_at = result.counters.finished_at
        self.cpu_s = result.counters.process_cpu_s
        self.outcome = result.outcome
        self.status = "ok"
        return result


def first_line(error: BaseException) -> str:
    """What went wrong on the node: gossipper's own one line when its run refused something
    (a port taken, an open-files limit), else the first line of Ray's error."""
    cause = getattr(error, "cause", None)  # a RayTaskError carries the exception the node raised
    if isinstance(cause, GossipperError):
        return cause.message
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def poll(ray: Any, states: list[NodeState]) -> list[Progress]:
    """Every running node's report, asked of all at once; a node that does not answer within
    the poll keeps the report before (a dead one shows when its result is collected)."""
    asked = {state.actor.progress.remote(): state for state in states if state.running}
    if not asked:
        return []
    ready, _ = ray.wait(list(asked), num_returns=len(asked), timeout=POLL_S)
    reports = []
    for ref in ready:
        with suppress(Exception):
            progress: Progress = ray.get(ref)
            if progress.counters is not None:  # None: the node's run has not started yet
                asked[ref].counters = progress.counters
            reports.append(progress)
    return reports


def wait_for_results(ray: Any, states: list[NodeState], timeout_s: float) -> list[NodeState]:
    """The running nodes whose run has ended within `timeout_s` (returned or failed)."""
    running = {state.result: state for state in states if state.running}
    if not running:
        return []
    done, _ = ray.wait(list(running), num_returns=len(running), timeout=timeout_s)
    return [running[ref] for ref in done]


def announce(states: list[NodeState]) -> None:
    for state in states:
        print(
            f"gossipper: cluster: {state.name} ({state.place.get('hostname')}): {state.share.describe()}",
            file=sys.stderr,
            flush=True,
        )


@contextmanager
def ray_session(address: str) -> Iterator[Any]:
    """Ray connected to the cluster (a local one started here for local:N), shut down after."""
    import logging

    local = local_cluster_nodes(address)
    prepare_environment(address)
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


def node_count(ray: Any, wanted: int | None) -> int:
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


def place(ray: Any, shares: list[NodeShare]) -> list[NodeState]:
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
    register_frozen_dataclasses()  # for the settings and scenario the nodes are sent
    remote = ray.remote(max_concurrency=4, num_cpus=0, resources={RESOURCE: 1})(NodeRunner)
    actors = [
        remote.options(
            scheduling_strategy=PlacementGroupSchedulingStrategy(
                group, placement_group_bundle_index=share.index
            )
        ).remote(os.getcwd())
        for share in shares
    ]
    places = ray.get([actor.where.remote() for actor in actors], timeout=READY_TIMEOUT_S)
    return [
        NodeState(share, actor, where) for share, actor, where in zip(shares, actors, places, strict=True)
    ]
