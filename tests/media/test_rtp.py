from __future__ import annotations

import pytest

from gossipper.media.rtp import (
    MARKER_PT_OFFSET,
    SEQ_TS,
    SEQ_TS_OFFSET,
    RtpHeader,
    build_packet,
    parse_rtp,
    rtp_payload,
)

# V=2, M=1, PT=0, seq 0x1234, ts 0x01020304, SSRC 0xDEADBEEF: written out by hand from RFC 3550 5.1
WIRE = bytes.fromhex("80 80 1234 01020304 deadbeef") + b"\xff" * 4


def test_parse_fixed_header_from_known_bytes() -> None:
    header = parse_rtp(WIRE)
    assert header == RtpHeader(
        payload_type=0, sequence=0x1234, timestamp=0x01020304, ssrc=0xDEADBEEF, marker=True
    )
    assert (header.version, header.padding, header.extension, header.csrc_count) == (2, False, False, 0)
    assert header.header_length == 12
    assert rtp_payload(WIRE, header) == b"\xff" * 4


def test_serialise_matches_known_bytes() -> None:
    header = RtpHeader(payload_type=0, sequence=0x1234, timestamp=0x01020304, ssrc=0xDEADBEEF, marker=True)
    assert bytes(header) == WIRE[:12]


def test_round_trip_with_csrcs_extension_and_padding() -> None:
    header = RtpHeader(
        payload_type=111,
        sequence=65535,
        timestamp=0xFFFFFFFF,
        ssrc=1,
        csrcs=(10, 20, 30),
        extension_profile=0xBEDE,
        extension_data=b"\x10\xaa\x00\x00",
        padding_bytes=3,
    )
    packet = build_packet(header, b"opus")
    assert packet[0] == 0x80 | 0x20 | 0x10 | 3
    parsed = parse_rtp(packet)
    assert parsed == header
    assert parsed.header_length == 12 + 12 + 8
    assert rtp_payload(packet, parsed) == b"opus"


def test_patching_sequence_timestamp_and_marker_in_place() -> None:
    packet = build_packet(RtpHeader(payload_type=8, sequence=1, timestamp=2, ssrc=3), b"\xd5" * 160)
    SEQ_TS.pack_into(packet, SEQ_TS_OFFSET, 0xFFFF, 0xFFFFFFF0)
    packet[MARKER_PT_OFFSET] |= 0x80
    parsed = parse_rtp(packet)
    assert (parsed.sequence, parsed.timestamp, parsed.marker, parsed.payload_type) == (
        0xFFFF,
        0xFFFFFFF0,
        True,
        8,
    )
    assert parsed.ssrc == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\x00\x00", "shorter than the 12-byte header"),
        (bytes.fromhex("40 00 0001 00000001 00000001"), "version is 1"),
        (bytes.fromhex("82 00 0001 00000001 00000001 00000005"), "announces 2 CSRCs"),
        (bytes.fromhex("90 00 0001 00000001 00000001 bede"), "extension is truncated"),
        (bytes.fromhex("90 00 0001 00000001 00000001 bede0002 00000000"), "announces 2 words"),
        (bytes.fromhex("a0 00 0001 00000001 00000001 ff ff 00"), "padding count 0"),
        (bytes.fromhex("a0 00 0001 00000001 00000001 ff ff 09"), "padding count 9"),
    ],
)
def test_malformed_packets_name_the_problem(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rtp(data)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"payload_type": 128}, "payload type 128"),
        ({"sequence": 65536}, "sequence number"),
        ({"timestamp": 1 << 32}, "timestamp"),
        ({"ssrc": -1}, "SSRC"),
        ({"csrcs": tuple(range(16))}, "at most 15 CSRCs"),
        ({"extension_profile": 1, "extension_data": b"abc"}, "32-bit words"),
        ({"padding_bytes": 256}, "padding"),
    ],
)
def test_out_of_range_fields_are_refused(fields: dict[str, object], message: str) -> None:
    values: dict[str, object] = {"payload_type": 0, "sequence": 0, "timestamp": 0, "ssrc": 0}
    values.update(fields)
    with pytest.raises(ValueError, match=message):
        RtpHeader(**values)  # type: ignore[arg-type]
