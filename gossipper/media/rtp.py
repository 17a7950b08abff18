"""RTP fixed header (RFC 3550 section 5.1) as a value: build it, parse it, patch it in place.

The scale senders never rebuild a packet: they keep one prebuilt packet per stream and
rewrite the marker/payload-type byte, the sequence number and the timestamp, which is
why the offsets of those fields are named here next to the full codec.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

RTP_VERSION = 2
FIXED_HEADER_BYTES = 12
MAX_CSRC = 15
MAX_PAYLOAD_TYPE = 127

MARKER_BIT = 0x80
MARKER_PT_OFFSET = 1  # byte holding the marker bit and the 7-bit payload type
SEQ_TS_OFFSET = 2  # sequence (16 bits) then timestamp (32 bits), both big-endian

FIXED_HEADER = struct.Struct("!BBHII")
SEQ_TS = struct.Struct("!HI")  # what a sender patches per packet, at SEQ_TS_OFFSET
_WORD = struct.Struct("!I")
_EXTENSION_HEAD = struct.Struct("!HH")  # profile-defined id, length in 32-bit words


@dataclass(frozen=True)
class RtpHeader:
    """Every field of the fixed header, plus the CSRC list and the header extension (5.3.1)."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension_profile: int | None = None  # None: no header extension (X bit clear)
    extension_data: bytes = b""
    padding_bytes: int = 0  # trailing bytes after the payload, the last one counting them (P bit)
    version: int = RTP_VERSION

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type <= MAX_PAYLOAD_TYPE:
            raise ValueError(f"RTP payload type {self.payload_type} is outside 0..{MAX_PAYLOAD_TYPE}")
        if not 0 <= self.sequence <= 0xFFFF:
            raise ValueError(f"RTP sequence number {self.sequence} does not fit 16 bits")
        for name, value in (("timestamp", self.timestamp), ("SSRC", self.ssrc)):
            if not 0 <= value <= 0xFFFFFFFF:
                raise ValueError(f"RTP {name} {value} does not fit 32 bits")
        if len(self.csrcs) > MAX_CSRC:
            raise ValueError(f"RTP allows at most {MAX_CSRC} CSRCs, got {len(self.csrcs)}")
        if len(self.extension_data) % 4:
            raise ValueError("RTP header extension data must be a whole number of 32-bit words")
        if not 0 <= self.version <= 3:
            raise ValueError(f"RTP version {self.version} does not fit 2 bits")
        if not 0 <= self.padding_bytes <= 0xFF:
            raise ValueError(f"RTP padding of {self.padding_bytes} bytes does not fit its count byte")

    @property
    def padding(self) -> bool:
        return self.padding_bytes > 0

    @property
    def csrc_count(self) -> int:
        return len(self.csrcs)

    @property
    def extension(self) -> bool:
        return self.extension_profile is not None

    @property
    def header_length(self) -> int:
        """Bytes before the payload: fixed part, CSRCs and the extension if present."""
        length = FIXED_HEADER_BYTES + 4 * len(self.csrcs)
        if self.extension:
            length += _EXTENSION_HEAD.size + len(self.extension_data)
        return length

    def __bytes__(self) -> bytes:
        first = (self.version << 6) | (self.padding << 5) | (self.extension << 4) | len(self.csrcs)
        second = (MARKER_BIT if self.marker else 0) | self.payload_type
        parts = [FIXED_HEADER.pack(first, second, self.sequence, self.timestamp, self.ssrc)]
        parts.extend(_WORD.pack(csrc) for csrc in self.csrcs)
        if self.extension_profile is not None:
            parts.append(_EXTENSION_HEAD.pack(self.extension_profile, len(self.extension_data) // 4))
            parts.append(self.extension_data)
        return b"".join(parts)


def parse_rtp(data: bytes | bytearray | memoryview) -> RtpHeader:
    """The header of one RTP packet; ValueError naming the first thing that is wrong."""
    view = memoryview(data)
    if len(view) < FIXED_HEADER_BYTES:
        raise ValueError(
            f"RTP packet is {len(view)} bytes, shorter than the {FIXED_HEADER_BYTES}-byte header"
        )
    first, second, sequence, timestamp, ssrc = FIXED_HEADER.unpack_from(view)
    version = first >> 6
    if version != RTP_VERSION:
        raise ValueError(f"RTP version is {version}, expected {RTP_VERSION}")
    csrc_count = first & 0x0F
    offset = FIXED_HEADER_BYTES + 4 * csrc_count
    if len(view) < offset:
        raise ValueError(f"RTP packet announces {csrc_count} CSRCs but is only {len(view)} bytes long")
    csrcs = tuple(_WORD.unpack_from(view, FIXED_HEADER_BYTES + 4 * i)[0] for i in range(csrc_count))
    extension_profile: int | None = None
    extension_data = b""
    if first & 0x10:
        if len(view) < offset + _EXTENSION_HEAD.size:
            raise ValueError("RTP header extension is truncated (no room for its 4-byte head)")
        extension_profile, words = _EXTENSION_HEAD.unpack_from(view, offset)
        offset += _EXTENSION_HEAD.size
        if len(view) < offset + 4 * words:
            raise ValueError(f"RTP header extension announces {words} words past the end of the packet")
        extension_data = bytes(view[offset : offset + 4 * words])
        offset += 4 * words
    padding_bytes = 0
    if first & 0x20:
        padding_bytes = view[-1] if len(view) > offset else 0
        if padding_bytes == 0 or offset + padding_bytes > len(view):
            raise ValueError(f"RTP padding count {padding_bytes} does not fit the packet")
    return RtpHeader(
        payload_type=second & 0x7F,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        marker=bool(second & MARKER_BIT),
        csrcs=csrcs,
        extension_profile=extension_profile,
        extension_data=extension_data,
        version=version,
        padding_bytes=padding_bytes,
    )


def rtp_payload(data: bytes | bytearray | memoryview, header: RtpHeader) -> bytes:
    """The payload of a packet whose header parse_rtp returned (padding removed)."""
    return bytes(memoryview(data)[header.header_length : len(data) - header.padding_bytes])


def build_packet(header: RtpHeader, payload: bytes) -> bytearray:
    """A mutable packet a sender can patch in place (see SEQ_TS and MARKER_PT_OFFSET)."""
    padding = b""
    if header.padding_bytes:
        padding = bytes(header.padding_bytes - 1) + bytes((header.padding_bytes,))
    return bytearray(bytes(header) + payload + padding)
