"""Free loopback ports: where `gossipper demo` puts its UAS, and where tests and benchmarks
put the peers they start.

A port is "free" when both a UDP and a TCP socket can bind it on loopback just now; nothing
holds it for the caller, so the process that is handed the number should bind it soon.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from pathlib import Path

LOOPBACK = "127.0.0.1"
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_DEFAULT_EPHEMERAL_LOW = 32768  # Linux's default, where /proc does not say
_HIGHEST_PORT = 65535


def free_port(count: int = 1) -> int:
    """A loopback port free for UDP and TCP; with count, the next count - 1 ports are free too.

    The port comes from the kernel's ephemeral range, which is fine for a SIP or control
    socket bound at once, not for a media range bound call by call (see
    free_ports_below_ephemeral).
    """
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((LOOPBACK, 0))
            port = int(probe.getsockname()[1])
        if port + count - 1 <= _HIGHEST_PORT and all(port_is_free(port + i) for i in range(count)):
            return port
    raise RuntimeError(f"no run of {count} free loopback ports found")


def free_ports_below_ephemeral(count: int, start: int = 20000) -> int:
    """The first of count consecutive loopback ports free for UDP and TCP, all below the
    kernel's ephemeral range, so that no socket opened later with port 0 can land in a range
    picked now (a media range is bound a call at a time). The lowest such run at or above
    start whose first port has start's parity: even for an even start, as RTP wants."""
    end = _ephemeral_low()
    port = start
    while port + count <= end:
        busy = next((taken for taken in range(port, port + count) if not port_is_free(taken)), None)
        if busy is None:
            return port
        port = busy + 1 + (busy + 1 - start) % 2
    raise RuntimeError(f"no {count} free ports between {start} and {end}")


def _ephemeral_low() -> int:
    """The lowest port the kernel hands out for port 0 (net.ipv4.ip_local_port_range)."""
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _DEFAULT_EPHEMERAL_LOW


def port_is_free(port: int, kinds: Iterable[int] = (socket.SOCK_DGRAM, socket.SOCK_STREAM)) -> bool:
    """Whether a socket of each kind (UDP and TCP unless told) can bind the loopback port now."""
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind((LOOPBACK, port))
            except OSError:
                return False
    return True
