"""The cluster tests run Ray clusters on this one host: Ray keeps their control traffic on
loopback only when told so before it is imported (see gossipper.cluster.nodes). One 3-node
cluster serves every test that does not start its own."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from gossipper.cluster.availability import LOOPBACK_ONLY_ENV
from gossipper.cluster.nodes import RESOURCE

os.environ.setdefault(LOOPBACK_ONLY_ENV, "0")

NODES = 3


@pytest.fixture(scope="session")
def cluster() -> Iterator[Any]:
    pytest.importorskip("ray", reason="Ray is not installed (pip install gossipper[cluster])")
    from ray.cluster_utils import Cluster

    node_args = {"num_cpus": 1, "resources": {RESOURCE: 1}, "object_store_memory": 80 * 1024 * 1024}
    started = Cluster(initialize_head=True, head_node_args={**node_args, "include_dashboard": False})
    try:
        for _ in range(NODES - 1):
            started.add_node(**node_args)
        started.wait_for_nodes()
        yield started
    finally:
        started.shutdown()
