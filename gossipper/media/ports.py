"""Which media port pair a call gets: its own slot, or the next free pair, as SIPp does.

Call n's slot is -mp base + 2 (n - 1), wrapped inside the range. SIPp
(rtpstream_get_localport) binds its next port and, when something else holds it,
tries the following ones two apart until one binds; here the call's slot is probed
the same way (RTP and RTCP both, since both are bound) the first time the call asks,
skipping pairs our other live calls hold, and a move is logged, never a failed call.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

Log = Callable[[str], None]


class MediaPorts:
    def __init__(self, base_port: int, span: int, log: Log) -> None:
        self.base_port = base_port
        self.span = span  # pairs in the range
        self._log = log
        self._by_call: dict[str, int] = {}
        self._held: set[int] = set()

    def port_for(self, call_id: str, preferred: int, media_ip: str) -> int:
        """The call's RTP port: `preferred` if free, else the next free pair (wrapping)."""
        port = self._by_call.get(call_id)
        if port is not None:
            return port
        slot = (preferred - self.base_port) // 2
        for step in range(self.span):
            candidate = self.base_port + 2 * ((slot + step) % self.span)
            if candidate not in self._held and _pair_is_free(media_ip, candidate):
                break
        else:
            candidate = preferred  # every pair is taken: the bind that follows says so
        if candidate != preferred:
            self._log(
                f"media ports {preferred}/{preferred + 1} are in use: call {call_id} takes "
                f"{candidate}/{candidate + 1}"
            )
        self._by_call[call_id] = candidate
        self._held.add(candidate)
        return candidate

    def release(self, call_id: str) -> None:
        port = self._by_call.pop(call_id, None)
        if port is not None:
            self._held.discard(port)


def _pair_is_free(ip: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    probes: list[socket.socket] = []
    try:
        for candidate in (port, port + 1):
            probe = socket.socket(family, socket.SOCK_DGRAM)
            probes.append(probe)
            probe.bind((ip, candidate))
        return True
    except (OSError, OverflowError):  # taken, or an RTCP port past 65535
        return False
    finally:
        for probe in probes:
            probe.close()
