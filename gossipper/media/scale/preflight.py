"""Checks that must pass before the first stream socket opens (SPEC sections 1 and 7).

A run that cannot hold all its streams should fail in the first second with the number
that fits and the fix, not after opening 9,000 sockets; kernel buffer limits that are
merely low only warn, because the run still works, just with less room for jitter.
"""

from __future__ import annotations

import resource
from pathlib import Path

from gossipper.errors import InvalidValue, PortRangeTooSmall
from gossipper.media.scale.api import SOCKET_BUFFER_BYTES

PORT_STEP = 2  # RTP on even ports, RTCP's odd neighbour left free (RFC 3550 section 11)
MAX_PORT = 65535
# Descriptors the process needs besides one per stream: stdio, SIP sockets, files, the
# interpreter's own. Generous on purpose: running out mid-run is far worse than asking early.
RESERVED_FDS = 64
BUFFER_WARNING_STREAMS = 1000  # below this, default kernel buffers are plenty
SYSCTL_ROOT = Path("/proc/sys")
TUNE_SCRIPT = "scripts/tune-udp-sysctl.sh"


def check_port_range(streams: int, base_port: int, max_port: int = MAX_PORT) -> None:
    """Stream i binds base + 2i; all of them must be real ports not above max_port."""
    last_port = base_port + PORT_STEP * (streams - 1)
    if last_port <= max_port:
        return
    fit = max(0, (max_port - base_port) // PORT_STEP + 1)
    raise PortRangeTooSmall(streams, base_port, last_port, max_port, fit)


def raise_open_files_limit(needed: int | None = None) -> tuple[int, int]:
    """Raise the soft descriptor limit toward the hard one (all of it when needed is None).

    One socket per stream is the price of a real port per stream, so the limit is
    raised for the user rather than failing on the default 1,024.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if (needed is None or _below(soft, needed)) and soft != hard:
        new_soft = hard if hard != resource.RLIM_INFINITY or needed is None else needed
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
            soft = new_soft
        except (OSError, ValueError):
            pass  # callers say what to do when the limit stays too low
    return soft, hard


def ensure_open_files(streams: int, setting: str = "streams") -> int:
    """Raise the soft descriptor limit as far as needed (up to the hard limit); return it."""
    needed = streams + RESERVED_FDS
    soft, hard = raise_open_files_limit(needed)
    if _below(soft, needed):
        fit = max(0, soft - RESERVED_FDS)
        raise InvalidValue(
            f"{streams} streams need about {needed} open files but the limit is {soft} "
            f"(hard limit {_limit_text(hard)}); {fit} streams fit. "
            f"Raise it with `ulimit -n {_suggested_limit(needed)}` "
            "(as root, or in /etc/security/limits.conf)",
            setting=setting,
        )
    return int(soft)


def socket_buffer_warnings(
    streams: int, requested: int = SOCKET_BUFFER_BYTES, sysctl_root: Path = SYSCTL_ROOT
) -> list[str]:
    """One line per kernel buffer cap below what each stream socket asks for."""
    if streams <= BUFFER_WARNING_STREAMS:
        return []
    warnings = []
    for name in ("net.core.wmem_max", "net.core.rmem_max"):
        value = _read_sysctl(sysctl_root, name)
        if value is not None and value < requested:
            warnings.append(
                f"warning: {name} is {value}, below the {requested} bytes each of the {streams} stream "
                f"sockets asks for; fix: sysctl -w {name}={_suggested_buffer(requested)} "
                f"(or run {TUNE_SCRIPT} as root)"
            )
    return warnings


def preflight(streams: int, base_port: int, max_port: int = MAX_PORT) -> list[str]:
    """Every check for a run of streams from base_port; returns the warnings to print."""
    check_port_range(streams, base_port, max_port)
    ensure_open_files(streams)
    return socket_buffer_warnings(streams)


def _below(limit: int, needed: int) -> bool:
    return limit != resource.RLIM_INFINITY and limit < needed


def _limit_text(limit: int) -> str:
    return "unlimited" if limit == resource.RLIM_INFINITY else str(limit)


def _suggested_limit(needed: int) -> int:
    """A round number with headroom, so the user need not come back after a small increase."""
    return max(1 << 16, 1 << (needed * 2 - 1).bit_length())


def _suggested_buffer(requested: int) -> int:
    return max(requested, 32 << 20)  # the seed's lab value: 32 MiB


def _read_sysctl(root: Path, name: str) -> int | None:
    try:
        return int((root / name.replace(".", "/")).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
