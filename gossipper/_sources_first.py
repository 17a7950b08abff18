"""Import the package's modules from their Python source even where a compiled twin (setup.py's
mypyc step) sits beside them: when GOSSIPPER_SIP_BACKEND=python asks, and when a source was
edited after its twin was built (the twin would run the old code).

The compiled modules are built from the very same files, so this is how the tests run the
engine both ways, and how a user rules the compiled code out when chasing a problem.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType


class _SourcesFirst(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith("gossipper.") or path is None:
            return None
        name = fullname.rpartition(".")[2]
        for entry in path:
            source = os.path.join(entry, f"{name}.py")
            if os.path.isfile(source):
                return importlib.util.spec_from_file_location(fullname, source)
        return None  # a package, or a C extension with no Python of its own


def run_sources() -> None:
    if not any(isinstance(finder, _SourcesFirst) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SourcesFirst())


def stale_compiled_module(package_dir: str) -> str | None:
    """A source file edited after its compiled twin was built, if any (the first one found)."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    # mypyc puts the code in one library per group (name__mypyc) and a small shim per module,
    # which a rebuild leaves alone when only the code changed
    groups = [entry.stat().st_mtime for entry in os.scandir(package_dir) if "__mypyc." in entry.name]
    built_at = max(groups, default=0.0)
    for folder, _, files in os.walk(package_dir):
        for file in files:
            if not file.endswith(suffixes) or "__mypyc." in file:
                continue
            source = os.path.join(folder, file.split(".", 1)[0] + ".py")
            try:
                if os.stat(source).st_mtime > max(built_at, os.stat(os.path.join(folder, file)).st_mtime):
                    return source
            except FileNotFoundError:
                continue  # a C extension with no Python twin
    return None
