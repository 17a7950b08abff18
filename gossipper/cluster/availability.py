"""Whether Ray can be imported: it is an optional extra, and -cluster must say so in one line."""

from __future__ import annotations

import importlib
import os

INSTALL_HINT = "pip install gossipper[cluster]"
# Ray's switch between a cluster across hosts and one on loopback (ray_constants).
LOOPBACK_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def prepare_environment(address: str) -> None:
    """Before Ray is first imported: a local:N cluster keeps all of Ray's traffic on loopback.
    Ray otherwise names each node by the host's outward address and runs its control traffic
    there; it reads the switch once, as it is imported, and its nodes inherit it."""
    if local_cluster_nodes(address) is not None:
        os.environ.setdefault(LOOPBACK_ONLY_ENV, "0")


def ray_import_problem() -> str | None:
    """None when Ray imports; else why not, in a few words (the caller names the flag).

    The import is tried for real (not only looked up) so that a Ray that is present but
    broken is reported here, before the run, rather than as a traceback from the driver.
    """
    try:
        importlib.import_module("ray")
    except ImportError as error:
        return f"needs Ray, which cannot be imported ({error.msg or error}); {INSTALL_HINT}"
    return None


def local_cluster_nodes(address: str) -> int | None:
    """N of a `local:N` address (a cluster started on this host for the run), else None."""
    if address.startswith("local:"):
        return int(address.removeprefix("local:"))
    return None
