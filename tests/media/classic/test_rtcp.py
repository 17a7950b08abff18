"""RTCP packets survive a round trip field for field; broken datagrams say what is wrong."""

from __future__ import annotations

import time

import pytest

from gossipper.media.classic.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    SenderReport,
    SourceDescription,
    encode_compound,
    ntp_middle,
    ntp_timestamp,
    ntp_to_unix,
    parse_compound,
)

BLOCK = ReportBlock(
    ssrc=0xCAFEBABE,
    fraction_lost=64,
    cumulative_lost=-3,
    highest_sequence=(2 << 16) | 17,
    jitter=123,
    last_sr=0x12345678,
    delay_since_last_sr=65536,
)


def test_compound_round_trip() -> None:
    now = time.time()
    packets = [
        SenderReport(1, ntp_timestamp(now), 0xFFFFFFF0, 50, 8000, (BLOCK,)),
        SourceDescription(((1, "gossipper@127.0.0.1"),)),
        Bye((1,), "stream ended"),
    ]
    data = encode_compound(packets)
    assert len(data) % 4 == 0
    assert parse_compound(data) == packets


def test_receiver_report_and_multiple_cnames() -> None:
    packets = [
        ReceiverReport(7, (BLOCK, ReportBlock(9, 0, 0, 1, 0))),
        SourceDescription(((7, "a"), (8, "exactly8"))),
        Bye((7, 8)),
    ]
    assert parse_compound(encode_compound(packets)) == packets


def test_ntp_conversions() -> None:
    now = 1_700_000_000.5
    ntp = ntp_timestamp(now)
    assert ntp >> 32 == 1_700_000_000 + 2_208_988_800
    assert ntp & 0xFFFFFFFF == 1 << 31
    assert ntp_to_unix(ntp) == pytest.approx(now)
    assert ntp_middle(ntp) == ((ntp >> 32) & 0xFFFF) << 16 | 0x8000


def test_unknown_packet_types_are_skipped() -> None:
    app = bytes([0x80, 204, 0, 2]) + b"\x00\x00\x00\x01name"
    data = app + bytes(ReceiverReport(5))
    assert parse_compound(data) == [ReceiverReport(5)]


def test_padding_is_removed() -> None:
    body = bytes(ReceiverReport(5))[4:] + b"\x00\x00\x00\x04"
    padded = bytes([0xA0, 201, 0, len(body) // 4]) + body
    assert parse_compound(padded) == [ReceiverReport(5)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\xc9", "shorter than its 4-byte header"),
        (b"\x40\xc9\x00\x01\x00\x00\x00\x05", "version is 1"),
        (b"\x80\xc9\x00\x05\x00\x00\x00\x05", "past the datagram"),
        (b"\x81\xc9\x00\x01\x00\x00\x00\x05", "receiver report length is invalid"),
        (b"\xa0\xc9\x00\x01\x00\x00\x00\x09", "invalid padding count"),
    ],
)
def test_malformed(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_compound(data)
