"""The RTP of a capture, whatever its link layer and byte order; bad captures fail at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from gossipper.errors import FileProblem
from gossipper.media.classic.pcap import load_pcap
from tests.media.classic.helpers import rtp_packet, write_pcap

OFFSETS = [0.0, 0.020, 0.040, 0.100, 0.250]


def packets() -> list[tuple[float, bytes]]:
    return [
        (offset, rtp_packet(i, i * 160, 0x1234, bytes([i]) * (160 + i))) for i, offset in enumerate(OFFSETS)
    ]


@pytest.mark.parametrize("link", ["ethernet", "vlan", "sll", "sll2"])
@pytest.mark.parametrize("ipv6", [False, True], ids=["ipv4", "ipv6"])
def test_link_layers(tmp_path: Path, link: str, ipv6: bool) -> None:
    path = write_pcap(tmp_path / "c.pcap", link, packets(), ipv6=ipv6)
    media = load_pcap(str(path))
    assert [p.data for p in media.packets] == [data for _, data in packets()]
    assert [p.offset_s for p in media.packets] == pytest.approx(OFFSETS, abs=1e-6)
    assert [p.payload_octets for p in media.packets] == [160 + i for i in range(len(OFFSETS))]


@pytest.mark.parametrize(("nanoseconds", "big_endian"), [(True, False), (False, True), (True, True)])
def test_stamp_formats(tmp_path: Path, nanoseconds: bool, big_endian: bool) -> None:
    path = write_pcap(
        tmp_path / "c.pcap", "ethernet", packets(), nanoseconds=nanoseconds, big_endian=big_endian
    )
    assert [p.offset_s for p in load_pcap(str(path)).packets] == pytest.approx(OFFSETS, abs=1e-6)


def test_rtcp_and_other_udp_are_left_out(tmp_path: Path) -> None:
    rtcp = bytes([0x80, 200, 0, 6]) + bytes(24)
    sip = b"INVITE sip:a@b SIP/2.0\r\n\r\n"
    rtp = rtp_packet(1, 160, 9, b"x" * 160)
    path = write_pcap(tmp_path / "c.pcap", "sll", [(0.0, sip), (0.01, rtcp), (0.03, rtp)])
    media = load_pcap(str(path))
    assert [p.data for p in media.packets] == [rtp]
    assert media.packets[0].offset_s == 0.0  # timing starts at the first RTP packet


def test_truncated_capture(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "cut.pcap", "ethernet", packets())
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(FileProblem, match=r"cut\.pcap: pcap record 5 is truncated") as error:
        load_pcap(str(path))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x0a\x0d\x0d\x0a" + bytes(40), "pcapng is not supported"),
        (b"hello world, not a capture", "not a pcap file"),
        (b"\xd4\xc3\xb2\xa1" + bytes(10), "global header is truncated"),
    ],
)
def test_not_a_pcap(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(content)
    with pytest.raises(FileProblem, match=message):
        load_pcap(str(path))


def test_no_rtp_inside(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "sip.pcap", "ethernet", [(0.0, b"OPTIONS sip:a SIP/2.0\r\n\r\n")])
    with pytest.raises(FileProblem, match=r"sip\.pcap: no RTP"):
        load_pcap(str(path))


def test_unsupported_link_type(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "x.pcap", "ethernet", packets())
    data = bytearray(path.read_bytes())
    data[20:24] = (105).to_bytes(4, "little")  # 802.11
    path.write_bytes(bytes(data))
    with pytest.raises(FileProblem, match="link type 105 is not supported"):
        load_pcap(str(path))
