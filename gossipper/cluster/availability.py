"""Whether Ray can be imported: it is an optional extra, and -cluster must say so in one line."""

from __future__ import annotations

import importlib

INSTALL_HINT = "pip install gossipper[cluster]"


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
