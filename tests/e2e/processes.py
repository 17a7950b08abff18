"""gossipper and SIPp as the end-to-end tests run them: real processes on loopback.

The launchers here back the fixtures of tests/e2e/conftest.py: each process a test starts
through them is stopped at teardown, whatever the test did. A run to the end (a UAC with
-m, a bad command line) needs no launcher: run_gossipper waits for it, or kills it at its
timeout.
"""

from __future__ import annotations

import csv
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from gossipper.cli.ports import LOOPBACK, free_port, port_is_free
from tests.e2e.netns import in_namespace

SIPP = shutil.which("sipp")
_TestFunction = TypeVar("_TestFunction", bound=Callable[..., object])


def needs_sipp(test: _TestFunction) -> _TestFunction:
    """Marks the test `sipp` (pytest -m sipp / -m "not sipp") and skips it where SIPp is absent."""
    skip = pytest.mark.skipif(SIPP is None, reason="SIPp (Debian sip-tester) is not installed")
    return pytest.mark.sipp(skip(test))


def gossipper_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "gossipper", "sipp", *args]


def dumped_builtin(name: str) -> str:
    """What `gossipper sipp -sd NAME` prints; it then exits 99, as SIPp's EXIT_OTHER."""
    result = subprocess.run(gossipper_command("-sd", name), capture_output=True, text=True)
    assert result.returncode == 99, result.stderr
    return result.stdout


def run_gossipper(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None, namespace: str | None = None
) -> subprocess.CompletedProcess[str]:
    """gossipper run to its end (in the network namespace, if named), its output captured."""
    command = gossipper_command(*args, "-nostdin")
    if namespace is not None:
        command = in_namespace(namespace, command)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def wait_bound(
    port: int,
    kind: int = socket.SOCK_DGRAM,
    timeout: float = 10.0,
    namespace: str | None = None,
    process: subprocess.Popen[str] | None = None,
) -> None:
    """Wait until some process holds the loopback port (the peer is up): in this network
    namespace by trying to bind it, in another by asking `ss` there. Given the process that
    should bind it, fail at once with its stderr if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _is_bound(port, kind, namespace):
            return
        if process is not None and process.poll() is not None:
            stderr = process.stderr.read() if process.stderr is not None else ""
            raise RuntimeError(
                f"{process.args!r} exited with {process.returncode} before binding {port}: {stderr}"
            )
        time.sleep(0.05)
    raise TimeoutError(f"nothing bound {LOOPBACK}:{port}" + (f" in {namespace}" if namespace else ""))


def _is_bound(port: int, kind: int, namespace: str | None) -> bool:
    if namespace is not None:
        flags = "-Htan" if kind == socket.SOCK_STREAM else "-Huan"
        listing = subprocess.run(
            in_namespace(namespace, ["ss", flags, f"sport = :{port}"]), capture_output=True, text=True
        ).stdout
        return bool(listing.strip())
    return not port_is_free(port, (kind,))


def stop(process: subprocess.Popen[str], timeout: float = 10.0) -> int:
    """Terminate the process if it still runs (kill it if it will not go); its exit status."""
    if process.poll() is None:
        process.terminate()
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def read_json(path: Path) -> dict[str, object]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def last_sipp_stat_row(path: Path) -> dict[str, str]:
    """The final row of a SIPp -trace_stat CSV (';' separated, header first)."""
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle, delimiter=";"))
    header, last = rows[0], rows[-1]
    return dict(zip(header, last, strict=False))


@dataclass(frozen=True)
class Server:
    """A UAS that is up: its process and the loopback port it holds."""

    process: subprocess.Popen[str]
    port: int

    @property
    def address(self) -> str:
        """Where a UAC sends: "127.0.0.1:port"."""
        return f"{LOOPBACK}:{self.port}"

    def wait(self, timeout: float | None = None) -> int:
        """Its exit status, once it has ended by itself (a UAS given -m)."""
        return self.process.wait(timeout=timeout)


class Processes:
    """The processes one test started, stopped at its teardown, last started first."""

    def __init__(self) -> None:
        self._started: list[subprocess.Popen[str]] = []

    def start(
        self,
        command: list[str],
        *,
        stdout: int = subprocess.PIPE,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        namespace: str | None = None,
    ) -> subprocess.Popen[str]:
        """Start the command (in the network namespace, if named); stderr is always piped."""
        if namespace is not None:
            command = in_namespace(namespace, command)
        process = subprocess.Popen(
            command, stdout=stdout, stderr=subprocess.PIPE, text=True, cwd=cwd, env=env
        )
        self._started.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self._started):
            stop(process)


class GossipperUas:
    """gossipper_uas(*args, port=None, kind=UDP) -> Server: `gossipper sipp *args -p PORT` started,
    returned once PORT is bound (over TCP for kind=SOCK_STREAM); PORT is a free loopback port
    unless given."""

    def __init__(self, processes: Processes) -> None:
        self._processes = processes

    def __call__(self, *args: str, port: int | None = None, kind: int = socket.SOCK_DGRAM) -> Server:
        port = free_port() if port is None else port
        process = self._processes.start(gossipper_command(*args, "-p", str(port), "-nostdin"))
        wait_bound(port, kind, process=process)
        return Server(process, port)


class SippUas:
    """sipp_uas(*args, port=None, cwd=None, namespace=None) -> Server: `sipp *args -p PORT`
    started (SIPp writes its files in cwd), returned once PORT is bound."""

    def __init__(self, processes: Processes) -> None:
        self._processes = processes

    def __call__(
        self, *args: str, port: int | None = None, cwd: Path | None = None, namespace: str | None = None
    ) -> Server:
        assert SIPP is not None
        port = free_port() if port is None else port
        command = [SIPP, *args, "-p", str(port), "-nostdin"]
        process = self._processes.start(command, stdout=subprocess.DEVNULL, cwd=cwd, namespace=namespace)
        wait_bound(port, namespace=namespace, process=process)
        return Server(process, port)


class GossipperUac:
    """gossipper_uac(*args, bound=None, kind=UDP) -> Popen: `gossipper sipp *args` started in
    the background (to be signalled, or waited for), returned once the port `bound` (a control
    or twin socket it opens) is held. A UAC run to its end is run_gossipper."""

    def __init__(self, processes: Processes) -> None:
        self._processes = processes

    def __call__(
        self, *args: str, bound: int | None = None, kind: int = socket.SOCK_DGRAM
    ) -> subprocess.Popen[str]:
        process = self._processes.start(gossipper_command(*args, "-nostdin"))
        if bound is not None:
            wait_bound(bound, kind, process=process)
        return process


class SippUac:
    """sipp_uac(*args, cwd=None) -> Popen: `sipp *args` started in the background, for the
    test to wait for (SIPp writes its files in cwd)."""

    def __init__(self, processes: Processes) -> None:
        self._processes = processes

    def __call__(self, *args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
        assert SIPP is not None
        return self._processes.start([SIPP, *args, "-nostdin"], stdout=subprocess.DEVNULL, cwd=cwd)
