"""The RTP of a capture file, for play_pcap_audio/play_pcap_video.

Reads classic libpcap files (either byte order, micro- or nanosecond stamps) whose
link layer is Ethernet (with any number of 802.1Q/802.1ad tags) or Linux cooked
capture (SLL, and SLL2 which `tcpdump -i any` writes today), carrying UDP over IPv4
or IPv6. Only datagrams that are RTP are kept: the replay sends them, with their
original spacing, from the call's media port to the peer's, so the capture's own
addresses and ports never matter. A bad file fails at load, one line naming it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from gossipper.errors import FileProblem
from gossipper.media.rtp import RtpHeader, parse_rtp

LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
VLAN_ETHERTYPES = (0x8100, 0x88A8, 0x9100)
IPPROTO_UDP = 17
_IPV6_EXTENSIONS = (0, 43, 60)  # hop-by-hop, routing, destination options: skipped over
_RTCP_TYPES = range(72, 77)  # RTCP packet types 200..204 read as marker bit + payload type

_MAGIC = {  # first four bytes -> (struct byte order, ticks per second of the sub-second field)
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000),
    b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000),
    b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000),
}
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_GLOBAL_HEADER_BYTES = 24
_RECORD_HEADER_BYTES = 16


@dataclass(frozen=True)
class PcapPacket:
    offset_s: float  # since the capture's first RTP packet
    data: bytes  # the whole RTP packet, as captured
    payload_octets: int


@dataclass(frozen=True)
class PcapMedia:
    path: str
    packets: tuple[PcapPacket, ...]


def load_pcap(path: str) -> PcapMedia:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise FileProblem(f"{path}: cannot read pcap file ({error.strerror})") from None
    try:
        packets = tuple(_rtp_packets(data))
    except ValueError as error:
        raise FileProblem(f"{path}: {error}") from None
    if not packets:
        raise FileProblem(f"{path}: no RTP over UDP in the capture (nothing to replay)")
    return PcapMedia(path, packets)


def _rtp_packets(data: bytes) -> list[PcapPacket]:
    if data[:4] == _PCAPNG_MAGIC:
        raise ValueError(
            "pcapng is not supported, save it as classic pcap (editcap -F pcap in.pcapng out.pcap)"
        )
    if data[:4] not in _MAGIC:
        raise ValueError("not a pcap file (unknown magic number)")
    if len(data) < _GLOBAL_HEADER_BYTES:
        raise ValueError("pcap global header is truncated")
    order, ticks = _MAGIC[data[:4]]
    link_type = struct.unpack_from(order + "I", data, 20)[0] & 0x0FFFFFFF  # high bits: FCS info
    if link_type not in (LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2):
        raise ValueError(f"link type {link_type} is not supported (Ethernet, Linux cooked SLL/SLL2 are)")
    record = struct.Struct(order + "IIII")
    packets: list[PcapPacket] = []
    first_time: float | None = None
    offset, index = _GLOBAL_HEADER_BYTES, 0
    while offset < len(data):
        index += 1
        if len(data) - offset < _RECORD_HEADER_BYTES:
            raise ValueError(f"pcap record {index} header is truncated at byte {offset}")
        seconds, fraction, captured, _original = record.unpack_from(data, offset)
        offset += _RECORD_HEADER_BYTES
        if len(data) - offset < captured:
            raise ValueError(f"pcap record {index} is truncated ({len(data) - offset} of {captured} bytes)")
        frame = data[offset : offset + captured]
        offset += captured
        payload = _udp_payload(frame, link_type)
        header = _rtp_header(payload)
        if payload is None or header is None:
            continue
        stamp = seconds + fraction / ticks
        if first_time is None:
            first_time = stamp
        octets = len(payload) - header.header_length - header.padding_bytes
        packets.append(PcapPacket(max(0.0, stamp - first_time), payload, octets))
    return packets


def _udp_payload(frame: bytes, link_type: int) -> bytes | None:
    """The UDP payload of one captured frame, or None when it is not whole UDP over IP."""
    if link_type == LINKTYPE_ETHERNET:
        if len(frame) < 14:
            return None
        ethertype, start = struct.unpack_from("!H", frame, 12)[0], 14
        while ethertype in VLAN_ETHERTYPES and len(frame) >= start + 4:
            ethertype, start = struct.unpack_from("!H", frame, start + 2)[0], start + 4
    elif link_type == LINKTYPE_LINUX_SLL:
        if len(frame) < 16:
            return None
        ethertype, start = struct.unpack_from("!H", frame, 14)[0], 16
    else:
        if len(frame) < 20:
            return None
        ethertype, start = struct.unpack_from("!H", frame, 0)[0], 20
    if ethertype == ETHERTYPE_IPV4:
        return _ipv4_udp(frame[start:])
    if ethertype == ETHERTYPE_IPV6:
        return _ipv6_udp(frame[start:])
    return None


def _ipv4_udp(packet: bytes) -> bytes | None:
    if len(packet) < 20 or packet[0] >> 4 != 4 or packet[9] != IPPROTO_UDP:
        return None
    flags_fragment = struct.unpack_from("!H", packet, 6)[0]
    if flags_fragment & 0x3FFF:  # more fragments, or not the first: not a whole datagram
        return None
    total_length = struct.unpack_from("!H", packet, 2)[0]
    return _udp(packet[(packet[0] & 0x0F) * 4 : total_length])


def _ipv6_udp(packet: bytes) -> bytes | None:
    if len(packet) < 40 or packet[0] >> 4 != 6:
        return None
    next_header = packet[6]
    body = packet[40 : 40 + struct.unpack_from("!H", packet, 4)[0]]
    while next_header in _IPV6_EXTENSIONS and len(body) >= 8:
        next_header, body = body[0], body[(body[1] + 1) * 8 :]
    if next_header != IPPROTO_UDP:  # a fragment header (44) too: fragments are not whole datagrams
        return None
    return _udp(body)


def _udp(segment: bytes) -> bytes | None:
    if len(segment) < 8:
        return None
    length = struct.unpack_from("!H", segment, 4)[0]
    return segment[8:length] if 8 <= length <= len(segment) else None


def _rtp_header(payload: bytes | None) -> RtpHeader | None:
    """The RTP header of a UDP payload; None for RTCP and anything else."""
    if payload is None or len(payload) < 2 or payload[1] & 0x7F in _RTCP_TYPES:
        return None
    try:
        return parse_rtp(payload)
    except ValueError:
        return None
