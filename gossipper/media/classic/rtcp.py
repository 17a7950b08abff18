"""RTCP packets (RFC 3550 section 6) as values: SR, RR, SDES CNAME and BYE, and compounds.

Each packet type serialises with bytes() and parse_compound() reads a whole datagram,
raising ValueError naming the first thing that is wrong. Packet types we do not
interpret (APP, XR, feedback) are skipped, not rejected: peers may send them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

RTCP_VERSION = 2
PT_SR = 200  # section 6.4.1
PT_RR = 201  # section 6.4.2
PT_SDES = 202  # section 6.5
PT_BYE = 203  # section 6.6
SDES_CNAME = 1
MAX_REPORT_BLOCKS = 31  # the 5-bit count field
NTP_UNIX_OFFSET_S = 2_208_988_800  # 1900-01-01 to 1970-01-01

_HEADER = struct.Struct("!BBH")
_SSRC = struct.Struct("!I")
_SENDER_INFO = struct.Struct("!IQIII")  # SSRC, NTP timestamp, RTP timestamp, packets, octets
_BLOCK = struct.Struct("!IIIIII")  # SSRC, fraction|cumulative, highest seq, jitter, LSR, DLSR


def ntp_timestamp(unix_time: float) -> int:
    """64-bit NTP timestamp (section 4): seconds since 1900 in 32.32 fixed point."""
    return int((unix_time + NTP_UNIX_OFFSET_S) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


def ntp_to_unix(ntp: int) -> float:
    return ntp / (1 << 32) - NTP_UNIX_OFFSET_S


def ntp_middle(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp: the LSR field of report blocks."""
    return (ntp >> 16) & 0xFFFFFFFF


@dataclass(frozen=True)
class ReportBlock:
    """Reception quality of one source (section 6.4.1, report block)."""

    ssrc: int
    fraction_lost: int  # lost/expected since the last report, in 1/256
    cumulative_lost: int  # signed 24-bit
    highest_sequence: int  # extended: cycles << 16 | sequence
    jitter: int  # RTP timestamp units
    last_sr: int = 0  # middle 32 bits of the last SR's NTP timestamp, 0 if none
    delay_since_last_sr: int = 0  # in 1/65536 s

    def __bytes__(self) -> bytes:
        lost = max(-0x800000, min(0x7FFFFF, self.cumulative_lost)) & 0xFFFFFF
        return _BLOCK.pack(
            self.ssrc,
            (self.fraction_lost & 0xFF) << 24 | lost,
            self.highest_sequence & 0xFFFFFFFF,
            self.jitter & 0xFFFFFFFF,
            self.last_sr,
            self.delay_since_last_sr,
        )

    @classmethod
    def parse(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, loss, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        cumulative = loss & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 0x1000000
        return cls(ssrc, loss >> 24, cumulative, highest, jitter, lsr, dlsr)


@dataclass(frozen=True)
class SenderReport:
    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int  # payload octets, headers and padding excluded
    reports: tuple[ReportBlock, ...] = ()

    def __bytes__(self) -> bytes:
        info = _SENDER_INFO.pack(
            self.ssrc,
            self.ntp_timestamp,
            self.rtp_timestamp & 0xFFFFFFFF,
            self.packet_count & 0xFFFFFFFF,
            self.octet_count & 0xFFFFFFFF,
        )
        return _packet(PT_SR, len(self.reports), info + _blocks(self.reports))


@dataclass(frozen=True)
class ReceiverReport:
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()

    def __bytes__(self) -> bytes:
        return _packet(PT_RR, len(self.reports), _SSRC.pack(self.ssrc) + _blocks(self.reports))


@dataclass(frozen=True)
class SourceDescription:
    """SDES with one CNAME chunk per source; the only item RFC 3550 makes mandatory."""

    cnames: tuple[tuple[int, str], ...]  # (SSRC, CNAME)

    def __bytes__(self) -> bytes:
        chunks = []
        for ssrc, cname in self.cnames:
            text = cname.encode()[:255]
            item = _SSRC.pack(ssrc) + bytes((SDES_CNAME, len(text))) + text + b"\x00"
            chunks.append(item + bytes(-len(item) % 4))  # null-terminated, padded to a word
        return _packet(PT_SDES, len(self.cnames), b"".join(chunks))


@dataclass(frozen=True)
class Bye:
    sources: tuple[int, ...]
    reason: str = ""

    def __bytes__(self) -> bytes:
        body = b"".join(_SSRC.pack(ssrc) for ssrc in self.sources)
        if self.reason:
            text = self.reason.encode()[:255]
            body += bytes((len(text),)) + text
            body += bytes(-len(body) % 4)
        return _packet(PT_BYE, len(self.sources), body)


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye


def encode_compound(packets: Iterable[RtcpPacket]) -> bytes:
    return b"".join(bytes(packet) for packet in packets)


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """Every packet of a compound RTCP datagram that we interpret, in order."""
    packets: list[RtcpPacket] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < _HEADER.size:
            raise ValueError(f"RTCP packet at byte {offset} is shorter than its 4-byte header")
        first, packet_type, words = _HEADER.unpack_from(data, offset)
        if first >> 6 != RTCP_VERSION:
            raise ValueError(f"RTCP version is {first >> 6}, expected {RTCP_VERSION}")
        end = offset + 4 * (words + 1)
        if end > len(data):
            raise ValueError(
                f"RTCP packet type {packet_type} announces {end - offset} bytes past the datagram"
            )
        count = first & 0x1F
        body = data[offset + _HEADER.size : end]
        if first & 0x20:  # padding: the last byte counts the padding bytes
            if not body or body[-1] == 0 or body[-1] > len(body):
                raise ValueError(f"RTCP packet type {packet_type} has an invalid padding count")
            body = body[: -body[-1]]
        parsed = _parse_one(packet_type, count, body)
        if parsed is not None:
            packets.append(parsed)
        offset = end
    return packets


def _parse_one(packet_type: int, count: int, body: bytes) -> RtcpPacket | None:
    if packet_type == PT_SR:
        _need(body, _SENDER_INFO.size + count * _BLOCK.size, "sender report")
        ssrc, ntp, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(body)
        return SenderReport(ssrc, ntp, rtp_ts, packets, octets, _parse_blocks(body, _SENDER_INFO.size, count))
    if packet_type == PT_RR:
        _need(body, _SSRC.size + count * _BLOCK.size, "receiver report")
        return ReceiverReport(_SSRC.unpack_from(body)[0], _parse_blocks(body, _SSRC.size, count))
    if packet_type == PT_SDES:
        return SourceDescription(_parse_sdes(body, count))
    if packet_type == PT_BYE:
        _need(body, 4 * count, "BYE")
        sources = tuple(_SSRC.unpack_from(body, 4 * i)[0] for i in range(count))
        reason = ""
        if len(body) > 4 * count:
            length = body[4 * count]
            reason = body[4 * count + 1 : 4 * count + 1 + length].decode("utf-8", errors="replace")
        return Bye(sources, reason)
    return None


def _parse_sdes(body: bytes, count: int) -> tuple[tuple[int, str], ...]:
    cnames: list[tuple[int, str]] = []
    offset = 0
    for _ in range(count):
        _need(body[offset:], 4, "SDES chunk")
        ssrc = _SSRC.unpack_from(body, offset)[0]
        offset += 4
        while offset < len(body) and body[offset] != 0:
            if offset + 2 > len(body) or offset + 2 + body[offset + 1] > len(body):
                raise ValueError("RTCP SDES item runs past the end of its packet")
            kind, length = body[offset], body[offset + 1]
            if kind == SDES_CNAME:
                cnames.append(
                    (ssrc, body[offset + 2 : offset + 2 + length].decode("utf-8", errors="replace"))
                )
            offset += 2 + length
        offset += 4 - offset % 4  # the null item, then padding to the next word
    return tuple(cnames)


def _parse_blocks(body: bytes, offset: int, count: int) -> tuple[ReportBlock, ...]:
    return tuple(ReportBlock.parse(body, offset + i * _BLOCK.size) for i in range(count))


def _need(body: bytes, size: int, what: str) -> None:
    if len(body) < size:
        raise ValueError(f"RTCP {what} length is invalid: {len(body)} bytes, needs {size}")


def _blocks(reports: tuple[ReportBlock, ...]) -> bytes:
    if len(reports) > MAX_REPORT_BLOCKS:
        raise ValueError(f"RTCP report carries at most {MAX_REPORT_BLOCKS} blocks, got {len(reports)}")
    return b"".join(bytes(block) for block in reports)


def _packet(packet_type: int, count: int, body: bytes) -> bytes:
    """Common header (section 6.4.1): V=2, count, type, length in words minus one."""
    return _HEADER.pack(RTCP_VERSION << 6 | count, packet_type, len(body) // 4) + body
