"""HEPv3 packets round-trip chunk for chunk; broken ones say what is wrong."""

from __future__ import annotations

import struct

import pytest

from gossipper.hep.hep3 import IP_PROTO_TCP, PROTO_QOS_JSON, HepPacket

SIP = b"INVITE sip:bob@127.0.0.1 SIP/2.0\r\nCall-ID: abc\r\nContent-Length: 0\r\n\r\n"


def chunks(data: bytes) -> dict[int, bytes]:
    found, offset = {}, 6
    while offset < len(data):
        vendor, kind, length = struct.unpack_from("!HHH", data, offset)
        assert vendor == 0
        found[kind] = data[offset + 6 : offset + length]
        offset += length
    return found


def test_ipv4_wire_layout() -> None:
    packet = HepPacket(SIP, ("127.0.0.1", 5060), ("127.0.0.2", 5070), 1_700_000_000.123456, capture_id=2001)
    data = bytes(packet)
    assert data[:4] == b"HEP3" and struct.unpack_from("!H", data, 4)[0] == len(data)
    found = chunks(data)
    assert found[1] == b"\x02" and found[2] == b"\x11"
    assert found[3] == bytes([127, 0, 0, 1]) and found[4] == bytes([127, 0, 0, 2])
    assert found[7] == struct.pack("!H", 5060) and found[8] == struct.pack("!H", 5070)
    assert found[9] == struct.pack("!I", 1_700_000_000)
    assert abs(struct.unpack("!I", found[10])[0] - 123456) <= 1
    assert found[11] == b"\x01" and found[12] == struct.pack("!I", 2001)
    assert found[15] == SIP
    assert 14 not in found and 17 not in found
    assert HepPacket.parse(data) == HepPacket(
        SIP,
        ("127.0.0.1", 5060),
        ("127.0.0.2", 5070),
        1_700_000_000 + struct.unpack("!I", found[10])[0] / 1e6,
        capture_id=2001,
    )


def test_ipv6_tcp_auth_correlation_keepalive() -> None:
    packet = HepPacket(
        b"{}", ("::1", 1), ("::2", 2), 5.5, PROTO_QOS_JSON, IP_PROTO_TCP, 7, "secret", "call-1", 30
    )
    data = bytes(packet)
    found = chunks(data)
    assert found[1] == b"\x0a" and len(found[5]) == 16 and len(found[6]) == 16
    assert found[14] == b"secret" and found[17] == b"call-1" and found[13] == struct.pack("!H", 30)
    assert HepPacket.parse(data) == packet


def test_other_vendors_are_skipped() -> None:
    data = bytes(HepPacket(SIP, ("127.0.0.1", 1), ("127.0.0.1", 2), 1.0))
    extra = struct.pack("!HHH", 0x0003, 15, 9) + b"xyz"  # another vendor's chunk 15
    patched = b"HEP3" + struct.pack("!H", len(data) + len(extra)) + data[6:] + extra
    assert HepPacket.parse(patched).payload == SIP


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"HEP2\x00\x06", "no HEP3 magic"),
        (b"HEP3\x00\x40", "does not match"),
        (b"HEP3\x00\x0a\x00\x00\x00\x0f", "truncated"),
        (b"HEP3\x00\x0c\x00\x00\x00\x0f\x00\x02", "invalid length 2"),
        (b"HEP3\x00\x0d\x00\x00\x00\x0f\x00\x07x", "no chunk type 7"),
    ],
)
def test_malformed(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HepPacket.parse(data)


def test_mixed_ip_versions_and_oversize_refused() -> None:
    with pytest.raises(ValueError, match="not one IP version"):
        bytes(HepPacket(SIP, ("127.0.0.1", 1), ("::1", 2), 1.0))
    with pytest.raises(ValueError, match="over the 65535-byte limit"):
        bytes(HepPacket(b"x" * 70000, ("127.0.0.1", 1), ("127.0.0.1", 2), 1.0))
