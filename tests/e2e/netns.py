"""Private network namespaces for tests that compare against the kernel's own counters.

Inside a fresh namespace the only UDP traffic is the test's, so /proc/net/snmp's
OutDatagrams can be compared exactly with what gossipper says it sent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

IP = shutil.which("ip")
needs_netns = pytest.mark.skipif(
    IP is None or os.geteuid() != 0, reason="network namespaces need root and iproute2 (ip)"
)


@contextmanager
def network_namespace(tag: str) -> Iterator[str]:
    name = f"gsp-{tag}-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def in_namespace(name: str, command: list[str]) -> list[str]:
    return ["ip", "netns", "exec", name, *command]


def udp_counters(name: str) -> dict[str, int]:
    """The namespace's Udp line of /proc/net/snmp, by column name."""
    text = subprocess.run(
        in_namespace(name, ["cat", "/proc/net/snmp"]), capture_output=True, text=True, check=True
    ).stdout
    rows = [line.split()[1:] for line in text.splitlines() if line.startswith("Udp:")]
    return dict(zip(rows[0], (int(value) for value in rows[1]), strict=True))
