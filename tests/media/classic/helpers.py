"""Builders and probes shared by the classic media tests: files, SDP, loops, a UDP peer."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest
import uvloop

from gossipper.cli.compile import run_settings
from gossipper.cli.config import Config
from gossipper.cli.ports import LOOPBACK
from gossipper.media.classic.manager import ClassicMedia
from gossipper.scenario import model
from gossipper.scenario.rtp_stream import parse_rtp_stream

Runner = Callable[[Coroutine[Any, Any, None]], None]
RUNNERS = pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
WAIT_S = 5.0


def manager(interval_s: float = 0.2, **config: Any) -> ClassicMedia:
    """A run's classic media as the flags in `config` make it (given: the flags typed)."""
    settings = replace(run_settings(Config(**config)).media, rtcp_interval_s=interval_s)
    return ClassicMedia(settings, asyncio.get_running_loop())


def rtp_stream(value: str) -> model.Exec:
    return model.Exec(line=1, rtp_stream=value, rtp=parse_rtp_stream(value))


def sdp(port: int, crypto: str | None = None, video_port: int | None = None) -> bytes:
    lines = ["v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", f"c=IN IP4 {LOOPBACK}", "t=0 0"]
    lines.append(f"m=audio {port} {'RTP/SAVP' if crypto else 'RTP/AVP'} 0 8")
    if crypto:
        lines.append(crypto)
    if video_port is not None:
        lines.append(f"m=video {video_port} RTP/AVP 96")
    return ("\r\n".join(lines) + "\r\n").encode()


def write_wav(path: Path, data: bytes, format_tag: int = 7, channels: int = 1, rate: int = 8000) -> Path:
    fmt = struct.pack("<HHIIHH", format_tag, channels, rate, rate * channels, channels, 8)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"LIST" + struct.pack("<I", 3) + b"abc\x00"  # an odd-sized chunk to skip, padded
    body += b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def rtp_packet(sequence: int, timestamp: int, ssrc: int, payload: bytes, pt: int = 0) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, sequence, timestamp, ssrc) + payload


# --- pcap writing -------------------------------------------------------------------------------


def _ipv4_udp(payload: bytes, sport: int, dport: int) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp),
        0,
        0x4000,
        64,
        17,
        0,
        bytes([10, 0, 0, 1]),
        bytes([10, 0, 0, 2]),
    )
    return header + udp


def _ipv6_udp(payload: bytes, sport: int, dport: int) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    # A hop-by-hop extension header first, to be skipped over.
    hop = bytes([17, 0]) + bytes(6)
    return (
        struct.pack("!IHBB", 6 << 28, len(hop) + len(udp), 0, 64)
        + bytes(15)
        + b"\x01"
        + bytes(15)
        + b"\x02"
        + hop
        + udp
    )


def frame(link: str, payload: bytes, ipv6: bool = False, sport: int = 4000, dport: int = 5000) -> bytes:
    ip = _ipv6_udp(payload, sport, dport) if ipv6 else _ipv4_udp(payload, sport, dport)
    ethertype = 0x86DD if ipv6 else 0x0800
    if link == "ethernet":
        return bytes(6) + bytes(6) + struct.pack("!H", ethertype) + ip + bytes(4)  # trailing padding
    if link == "vlan":
        tags = struct.pack("!HH", 0x88A8, 100) + struct.pack("!HH", 0x8100, 200)
        return bytes(12) + tags + struct.pack("!H", ethertype) + ip
    if link == "sll":
        return struct.pack("!HHH", 0, 1, 6) + bytes(8) + struct.pack("!H", ethertype) + ip
    if link == "sll2":
        return struct.pack("!HHIHBB", ethertype, 0, 2, 1, 0, 6) + bytes(8) + ip
    raise ValueError(link)


LINKTYPES = {"ethernet": 1, "vlan": 1, "sll": 113, "sll2": 276}


def write_pcap(
    path: Path,
    link: str,
    packets: Iterable[tuple[float, bytes]],
    *,
    nanoseconds: bool = False,
    big_endian: bool = False,
    ipv6: bool = False,
) -> Path:
    order = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanoseconds else 0xA1B2C3D4
    ticks = 1_000_000_000 if nanoseconds else 1_000_000
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, LINKTYPES[link])]
    base = 1_700_000_000.25
    for offset, payload in packets:
        data = frame(link, payload, ipv6)
        stamp = base + offset
        seconds = int(stamp)
        out.append(
            struct.pack(order + "IIII", seconds, round((stamp - seconds) * ticks), len(data), len(data))
        )
        out.append(data)
    path.write_bytes(b"".join(out))
    return path


# --- a UDP peer standing for the far end ------------------------------------------------------


class Peer(asyncio.DatagramProtocol):
    """Collects (data, arrival, source) on one loopback port."""

    def __init__(self) -> None:
        self.items: list[tuple[bytes, float, tuple[str, int]]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # uvloop's is its own type

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.items.append((data, time.monotonic(), (addr[0], addr[1])))

    @property
    def datagrams(self) -> list[bytes]:
        return [item[0] for item in self.items]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_peer(port: int) -> Peer:
    loop = asyncio.get_running_loop()
    _, peer = await loop.create_datagram_endpoint(Peer, local_addr=(LOOPBACK, port))
    return peer


async def until(predicate: Callable[[], bool], timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
