"""Free loopback ports (gossipper/cli/ports.py), checked by binding them."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from gossipper.cli import ports
from gossipper.cli.ports import LOOPBACK, free_port, free_ports_below_ephemeral, port_is_free


def test_free_port_is_free_for_udp_and_tcp_with_its_followers() -> None:
    assert port_is_free(free_port())
    first = free_port(count=4)
    assert all(port_is_free(first + offset) for offset in range(4))


def test_below_ephemeral_skips_taken_ports_and_keeps_the_start_parity() -> None:
    base = free_ports_below_ephemeral(10, start=21000)
    assert base >= 21000 and base % 2 == 0 and base + 10 <= ports._ephemeral_low()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind((LOOPBACK, base + 3))
        assert not port_is_free(base + 3)
        assert not port_is_free(base + 3, (socket.SOCK_DGRAM,))
        assert port_is_free(base + 3, (socket.SOCK_STREAM,))
        assert free_ports_below_ephemeral(4, start=base) == base + 4
        assert free_ports_below_ephemeral(2, start=base) == base
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.bind((LOOPBACK, base + 1))
        assert free_ports_below_ephemeral(4, start=base) == base + 2


def test_below_ephemeral_stops_at_the_kernels_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port_range = tmp_path / "ip_local_port_range"
    port_range.write_text("21010\t60999\n")
    monkeypatch.setattr(ports, "_EPHEMERAL_RANGE", port_range)
    with pytest.raises(RuntimeError, match="no 4 free ports between 21008 and 21010"):
        free_ports_below_ephemeral(4, start=21008)


def test_the_ephemeral_range_defaults_to_linuxs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "_EPHEMERAL_RANGE", tmp_path / "absent")
    assert ports._ephemeral_low() == 32768
