"""A UDP collector on loopback decodes every copy back to the exact SIP text and QoS report."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import pytest

from gossipper.cli.compile import run_settings
from gossipper.cli.config import Config
from gossipper.cli.errors import describe
from gossipper.cli.ports import LOOPBACK, free_port
from gossipper.errors import InvalidValue
from gossipper.hep.hep3 import IP_PROTO_TCP, IP_PROTO_UDP, PROTO_QOS_JSON, PROTO_SIP, HepPacket
from gossipper.hep.sender import HepSender
from gossipper.media.classic.manager import ClassicMedia
from tests.media.classic.helpers import RUNNERS, Runner, open_peer, rtp_packet, sdp, until


@pytest.fixture
def collector() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOPBACK, 0))
    sock.settimeout(5)
    yield sock  # type: ignore[misc]
    sock.close()


def receive(collector: socket.socket, count: int) -> list[HepPacket]:
    return [HepPacket.parse(collector.recv(65535)) for _ in range(count)]


def test_sip_copies_are_exact(collector: socket.socket) -> None:
    sender = HepSender(collector.getsockname(), 2001, "s3cret")
    messages = [
        f"OPTIONS sip:u{i}@127.0.0.1 SIP/2.0\r\nCall-ID: c{i}\r\nX-Utf8: é\r\n\r\n".encode()
        for i in range(20)
    ]
    now = time.time()
    for index, message in enumerate(messages):
        sender.sip(message, ("127.0.0.1", 5060), ("127.0.0.1", 5070 + index), index % 2 == 1, now + index)
    received = receive(collector, len(messages))
    assert [packet.payload for packet in received] == messages
    for index, packet in enumerate(received):
        assert packet.protocol_type == PROTO_SIP
        assert packet.ip_protocol == (IP_PROTO_TCP if index % 2 else IP_PROTO_UDP)
        assert packet.destination == ("127.0.0.1", 5070 + index)
        assert packet.capture_id == 2001 and packet.auth_key == "s3cret"
        assert packet.timestamp == pytest.approx(now + index, abs=1e-5)
    assert sender.packets_sent == 20 and not sender.send_errors
    sender.close()


def test_qos_report_and_drops(collector: socket.socket) -> None:
    sender = HepSender(collector.getsockname(), 7, None)
    report = {
        "CORRELATION_ID": "call-9",
        "SRC_IP": "127.0.0.1",
        "SRC_PORT": 4000,
        "DST_IP": "127.0.0.1",
        "DST_PORT": 6000,
        "REPORT_TS": 1234.5,
        "TOTAL_PK": 50,
    }
    sender.qos_report("call-9", report)
    sender.qos_report("call-10", {"TOTAL_PK": 1})  # no addresses: zeros
    first, second = receive(collector, 2)
    assert json.loads(first.payload) == report
    assert (first.protocol_type, first.correlation_id, first.auth_key) == (PROTO_QOS_JSON, "call-9", None)
    assert (first.source, first.destination, first.timestamp) == (
        ("127.0.0.1", 4000),
        ("127.0.0.1", 6000),
        1234.5,
    )
    assert second.source == ("0.0.0.0", 0) and second.correlation_id == "call-10"
    sender.sip(b"x" * 70000, ("127.0.0.1", 1), ("127.0.0.1", 2), False, 0.0)
    assert sender.send_errors == {"unencodable": 1} and sender.packets_sent == 2
    sender.close()


def test_unresolvable_collector() -> None:
    with pytest.raises(InvalidValue) as caught:
        HepSender(("no-such-host.invalid", 9060), 1, None)
    assert "-hep_addr: cannot resolve" in describe(caught.value)


@RUNNERS
def test_classic_media_reports_each_stream_at_its_end(run: Runner, tmp_path: Path) -> None:
    port, hep_port = free_port(count=4), free_port()

    async def scenario() -> None:
        collector = await open_peer(hep_port)
        hep = HepSender((LOOPBACK, hep_port), 42, "pw")
        media = ClassicMedia(
            run_settings(Config(rtp_echo=True)).media, asyncio.get_running_loop(), qos_sink=hep.qos_report
        )
        media.start(LOOPBACK)
        media.call_started("call-q", port)
        media.remote_sdp_changed("call-q", sdp(port + 2))
        peer = await open_peer(port + 2)
        assert peer.transport is not None
        for sequence in (0, 1, 3):
            peer.transport.sendto(rtp_packet(sequence, sequence * 160, 0xD00D, bytes(160)), (LOOPBACK, port))
        await until(lambda: len(peer.items) == 3)
        media.call_ended("call-q")
        await until(lambda: len(collector.items) == 1)
        packet = HepPacket.parse(collector.datagrams[0])
        assert (packet.correlation_id, packet.capture_id, packet.auth_key) == ("call-q", 42, "pw")
        assert packet.protocol_type == PROTO_QOS_JSON
        assert packet.source == (LOOPBACK, port + 2) and packet.destination == (LOOPBACK, port)
        report = json.loads(packet.payload)
        assert (report["SSRC"], report["TOTAL_PK"], report["EXPECTED_PK"], report["PACKET_LOSS"]) == (
            0xD00D,
            3,
            4,
            1,
        )
        media.close()
        hep.close()
        peer.close()
        collector.close()

    run(scenario())
