"""Copies toward a Homer collector over UDP: SIP messages and per-stream QoS reports.

Sends are fire-and-forget from the caller's thread on a non-blocking socket: a
capture copy must never slow the calls it observes, so a full socket buffer or an
unreachable collector costs a counted drop, not a wait. Media is summarised once per
stream, never copied packet by packet: at load-test rates that would double the traffic.
"""

from __future__ import annotations

import errno
import json
import socket
from collections import Counter

from gossipper.errors import InvalidValue
from gossipper.hep.hep3 import IP_PROTO_TCP, IP_PROTO_UDP, PROTO_QOS_JSON, PROTO_SIP, HepPacket

_UNKNOWN_ADDRESS = {socket.AF_INET: ("0.0.0.0", 0), socket.AF_INET6: ("::", 0)}


class HepSender:
    def __init__(self, address: tuple[str, int], capture_id: int, password: str | None) -> None:
        try:
            family, _, _, _, resolved = socket.getaddrinfo(address[0], address[1], type=socket.SOCK_DGRAM)[0]
        except (OSError, UnicodeError) as error:
            raise InvalidValue(f"cannot resolve {address[0]!r} ({error})", setting="hep_address") from None
        self.address = (str(resolved[0]), int(resolved[1]))
        self.capture_id = capture_id
        self.password = password
        self.packets_sent = 0
        self.send_errors: Counter[str] = Counter()  # errno name (or "unencodable") -> count
        self._family = family
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    def sip(
        self,
        data: bytes,
        source: tuple[str, int],
        destination: tuple[str, int],
        reliable: bool,
        timestamp: float,
    ) -> None:
        self._send(
            HepPacket(
                payload=data,
                source=source,
                destination=destination,
                timestamp=timestamp,
                protocol_type=PROTO_SIP,
                ip_protocol=IP_PROTO_TCP if reliable else IP_PROTO_UDP,
                capture_id=self.capture_id,
                auth_key=self.password,
            )
        )

    def qos_report(self, call_id: str, report: dict[str, object]) -> None:
        """One stream's report as JSON, tied to its call by the correlation id chunk.

        Addresses come from the report's SRC_IP/SRC_PORT/DST_IP/DST_PORT when it has all four.
        """
        timestamp = report.get("REPORT_TS")
        source, destination = _addresses(report, _UNKNOWN_ADDRESS[self._family])
        self._send(
            HepPacket(
                payload=json.dumps(report, separators=(",", ":")).encode(),
                source=source,
                destination=destination,
                timestamp=float(timestamp) if isinstance(timestamp, int | float) else 0.0,
                protocol_type=PROTO_QOS_JSON,
                ip_protocol=IP_PROTO_UDP,
                capture_id=self.capture_id,
                auth_key=self.password,
                correlation_id=call_id,
            )
        )

    def _send(self, packet: HepPacket) -> None:
        try:
            data = bytes(packet)
        except ValueError:  # over 64 KiB, or addresses of two IP versions
            self.send_errors["unencodable"] += 1
            return
        try:
            self._sock.sendto(data, self.address)
        except OSError as error:
            self.send_errors[errno.errorcode.get(error.errno or 0, f"errno {error.errno}")] += 1
        else:
            self.packets_sent += 1

    def close(self) -> None:
        self._sock.close()


def _addresses(
    report: dict[str, object], unknown: tuple[str, int]
) -> tuple[tuple[str, int], tuple[str, int]]:
    fields = [report.get(key) for key in ("SRC_IP", "SRC_PORT", "DST_IP", "DST_PORT")]
    source_ip, source_port, destination_ip, destination_port = fields
    if (
        isinstance(source_ip, str)
        and isinstance(destination_ip, str)
        and isinstance(source_port, int)
        and isinstance(destination_port, int)
    ):
        return (source_ip, source_port), (destination_ip, destination_port)
    return unknown, unknown
