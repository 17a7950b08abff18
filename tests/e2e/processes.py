"""gossipper and SIPp as the end-to-end tests run them: real processes on loopback."""

from __future__ import annotations

import csv
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gossipper.cli.ports import LOOPBACK

SIPP = shutil.which("sipp")
needs_sipp = pytest.mark.skipif(SIPP is None, reason="SIPp (Debian sip-tester) is not installed")


def gossipper_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "gossipper", "sipp", *args]


def start_gossipper(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        gossipper_command(*args, "-nostdin"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_gossipper(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        gossipper_command(*args, "-nostdin"), capture_output=True, text=True, timeout=timeout
    )


def start_sipp(*args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    assert SIPP is not None
    return subprocess.Popen(
        [SIPP, *args, "-nostdin"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )


def wait_bound(port: int, kind: int = socket.SOCK_DGRAM, timeout: float = 10.0) -> None:
    """Wait until some process holds the loopback port (the peer is up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind((LOOPBACK, port))
            except OSError:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing bound {LOOPBACK}:{port}")


def stop(process: subprocess.Popen[str], timeout: float = 10.0) -> int:
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
