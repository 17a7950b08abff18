"""Which of a module's two forms runs: its compiled twin, or its Python when asked or when
the Python was edited after the twin was built."""

from __future__ import annotations

import importlib.machinery
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gossipper._sources_first import stale_compiled_module

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def _files(root: Path, times: dict[str, float]) -> None:
    for name, when in times.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
        os.utime(path, (when, when))


def test_a_source_newer_than_its_shim_and_its_group_library_is_stale(tmp_path: Path) -> None:
    _files(
        tmp_path,
        {
            f"g__mypyc{SUFFIX}": 200.0,  # the group library holds the code
            f"engine/call{SUFFIX}": 100.0,  # the shim: a rebuild may leave it alone
            "engine/call.py": 150.0,
            f"sip/_core{SUFFIX}": 50.0,  # a C extension without Python
        },
    )
    assert stale_compiled_module(str(tmp_path)) is None
    os.utime(tmp_path / "engine/call.py", (300.0, 300.0))
    assert stale_compiled_module(str(tmp_path)) == str(tmp_path / "engine/call.py")


def test_the_backend_switch_imports_the_python_of_a_compiled_module() -> None:
    code = "import gossipper.engine.call as c, gossipper.sip.message as m; print(c.__file__, m.BACKEND)"
    env = {**os.environ, "GOSSIPPER_SIP_BACKEND": "python"}
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    source, backend = shown.stdout.split()
    assert source.endswith("call.py") and backend == "python"
    assert shown.stderr == ""


def test_where_the_c_cores_built_the_engine_is_compiled_too() -> None:
    """A build that quietly fell back to Python would leave every test green and the engine
    slow: where a C compiler built _sipcore, mypyc must have built the engine."""

    if os.environ.get("GOSSIPPER_SIP_BACKEND") == "python" or os.environ.get("GOSSIPPER_COMPILE") == "0":
        pytest.skip("the Python engine was asked for")
    try:
        from gossipper.sip import _sipcore  # noqa: F401
    except ImportError:
        pytest.skip("no native build on this machine")
    import gossipper.engine.call

    assert not gossipper.engine.call.__file__.endswith(".py")
