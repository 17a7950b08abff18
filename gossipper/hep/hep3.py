"""HEPv3 (the Homer Encapsulation Protocol, version 3) packets as values.

A packet is "HEP3", its total length, then chunks: vendor id, chunk type, chunk
length (header included) and data, all big-endian. We write vendor 0 (generic)
chunks with the types Homer reads: 1 IP family, 2 IP protocol, 3/4 IPv4 and 5/6 IPv6
source/destination, 7/8 ports, 9/10 time (seconds, microseconds), 11 payload
protocol, 12 capture agent id, 13 keep-alive, 14 authentication key, 15 payload, and
17 correlation id (which ties a QoS report to its call). The decoder skips what it
does not know, as collectors do.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass

MAGIC = b"HEP3"
VENDOR_GENERIC = 0
PROTO_SIP = 0x01
PROTO_QOS_JSON = 0x22  # full QoS/MOS report as JSON
IP_PROTO_UDP = 17
IP_PROTO_TCP = 6
FAMILY_IPV4 = socket.AF_INET
FAMILY_IPV6 = socket.AF_INET6
MAX_PACKET_BYTES = 0xFFFF

CHUNK_IP_FAMILY = 1
CHUNK_IP_PROTOCOL = 2
CHUNK_IPV4_SOURCE = 3
CHUNK_IPV4_DESTINATION = 4
CHUNK_IPV6_SOURCE = 5
CHUNK_IPV6_DESTINATION = 6
CHUNK_SOURCE_PORT = 7
CHUNK_DESTINATION_PORT = 8
CHUNK_SECONDS = 9
CHUNK_MICROSECONDS = 10
CHUNK_PROTOCOL_TYPE = 11
CHUNK_CAPTURE_ID = 12
CHUNK_KEEP_ALIVE = 13
CHUNK_AUTH_KEY = 14
CHUNK_PAYLOAD = 15
CHUNK_CORRELATION_ID = 17

_HEAD = struct.Struct("!4sH")
_CHUNK = struct.Struct("!HHH")


@dataclass(frozen=True)
class HepPacket:
    payload: bytes
    source: tuple[str, int]
    destination: tuple[str, int]
    timestamp: float  # Unix time
    protocol_type: int = PROTO_SIP
    ip_protocol: int = IP_PROTO_UDP
    capture_id: int = 0
    auth_key: str | None = None
    correlation_id: str | None = None
    keep_alive_s: int | None = None

    def __bytes__(self) -> bytes:
        source = ipaddress.ip_address(self.source[0])
        destination = ipaddress.ip_address(self.destination[0])
        if source.version != destination.version:
            raise ValueError(f"HEP source {source} and destination {destination} are not one IP version")
        v6 = source.version == 6
        seconds = int(self.timestamp)
        chunks = [
            _u8(CHUNK_IP_FAMILY, FAMILY_IPV6 if v6 else FAMILY_IPV4),
            _u8(CHUNK_IP_PROTOCOL, self.ip_protocol),
            _chunk(CHUNK_IPV6_SOURCE if v6 else CHUNK_IPV4_SOURCE, source.packed),
            _chunk(CHUNK_IPV6_DESTINATION if v6 else CHUNK_IPV4_DESTINATION, destination.packed),
            _chunk(CHUNK_SOURCE_PORT, struct.pack("!H", self.source[1])),
            _chunk(CHUNK_DESTINATION_PORT, struct.pack("!H", self.destination[1])),
            _chunk(CHUNK_SECONDS, struct.pack("!I", seconds)),
            _chunk(CHUNK_MICROSECONDS, struct.pack("!I", int((self.timestamp - seconds) * 1e6))),
            _u8(CHUNK_PROTOCOL_TYPE, self.protocol_type),
            _chunk(CHUNK_CAPTURE_ID, struct.pack("!I", self.capture_id)),
        ]
        if self.keep_alive_s is not None:
            chunks.append(_chunk(CHUNK_KEEP_ALIVE, struct.pack("!H", self.keep_alive_s)))
        if self.auth_key is not None:
            chunks.append(_chunk(CHUNK_AUTH_KEY, self.auth_key.encode()))
        if self.correlation_id is not None:
            chunks.append(_chunk(CHUNK_CORRELATION_ID, self.correlation_id.encode()))
        chunks.append(_chunk(CHUNK_PAYLOAD, self.payload))
        body = b"".join(chunks)
        total = _HEAD.size + len(body)
        if total > MAX_PACKET_BYTES:
            raise ValueError(f"HEP packet would be {total} bytes, over the {MAX_PACKET_BYTES}-byte limit")
        return _HEAD.pack(MAGIC, total) + body

    @classmethod
    def parse(cls, data: bytes) -> HepPacket:
        """ValueError naming what is wrong; chunks of other vendors or types are skipped."""
        if len(data) < _HEAD.size or data[:4] != MAGIC:
            raise ValueError("not a HEPv3 packet (no HEP3 magic)")
        total = _HEAD.unpack_from(data)[1]
        if total > len(data) or total < _HEAD.size:
            raise ValueError(f"HEP packet length {total} does not match the {len(data)} bytes received")
        chunks: dict[int, bytes] = {}
        offset = _HEAD.size
        while offset < total:
            if total - offset < _CHUNK.size:
                raise ValueError(f"HEP chunk header at byte {offset} is truncated")
            vendor, kind, length = _CHUNK.unpack_from(data, offset)
            if length < _CHUNK.size or offset + length > total:
                raise ValueError(f"HEP chunk type {kind} has invalid length {length}")
            if vendor == VENDOR_GENERIC:
                chunks[kind] = data[offset + _CHUNK.size : offset + length]
            offset += length
        for required in (CHUNK_SOURCE_PORT, CHUNK_DESTINATION_PORT, CHUNK_SECONDS, CHUNK_PAYLOAD):
            if required not in chunks:
                raise ValueError(f"HEP packet has no chunk type {required}")
        if CHUNK_IPV4_SOURCE in chunks and CHUNK_IPV4_DESTINATION in chunks:
            addresses = chunks[CHUNK_IPV4_SOURCE], chunks[CHUNK_IPV4_DESTINATION]
        elif CHUNK_IPV6_SOURCE in chunks and CHUNK_IPV6_DESTINATION in chunks:
            addresses = chunks[CHUNK_IPV6_SOURCE], chunks[CHUNK_IPV6_DESTINATION]
        else:
            raise ValueError("HEP packet has no source/destination address chunks")
        source_ip, destination_ip = (str(ipaddress.ip_address(raw)) for raw in addresses)
        micros = _number(chunks.get(CHUNK_MICROSECONDS, b"\x00\x00\x00\x00"))
        return cls(
            payload=chunks[CHUNK_PAYLOAD],
            source=(source_ip, _number(chunks[CHUNK_SOURCE_PORT])),
            destination=(destination_ip, _number(chunks[CHUNK_DESTINATION_PORT])),
            timestamp=_number(chunks[CHUNK_SECONDS]) + micros / 1e6,
            protocol_type=_number(chunks.get(CHUNK_PROTOCOL_TYPE, b"\x00")),
            ip_protocol=_number(chunks.get(CHUNK_IP_PROTOCOL, b"\x00")),
            capture_id=_number(chunks.get(CHUNK_CAPTURE_ID, b"\x00")),
            auth_key=_text(chunks.get(CHUNK_AUTH_KEY)),
            correlation_id=_text(chunks.get(CHUNK_CORRELATION_ID)),
            keep_alive_s=_number(chunks[CHUNK_KEEP_ALIVE]) if CHUNK_KEEP_ALIVE in chunks else None,
        )


def _chunk(kind: int, data: bytes) -> bytes:
    length = _CHUNK.size + len(data)
    if length > MAX_PACKET_BYTES:
        raise ValueError(
            f"HEP chunk type {kind} would be {length} bytes, over the {MAX_PACKET_BYTES}-byte limit"
        )
    return _CHUNK.pack(VENDOR_GENERIC, kind, length) + data


def _u8(kind: int, value: int) -> bytes:
    return _chunk(kind, bytes((value,)))


def _number(raw: bytes) -> int:
    return int.from_bytes(raw, "big")


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", errors="replace")
