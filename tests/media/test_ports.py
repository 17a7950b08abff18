"""A call whose media port pair is taken moves to the next free pair, as SIPp's rtpstream does."""

from __future__ import annotations

import socket

from gossipper.cli.ports import LOOPBACK, free_port
from gossipper.media.ports import MediaPorts


def _taken(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOPBACK, port))
    return sock


def test_a_taken_pair_moves_the_call_to_the_next_free_pair_and_says_so() -> None:
    base = free_port(count=10)
    logged: list[str] = []
    ports = MediaPorts(base, 5, logged.append)
    holder, rtcp_holder = _taken(base), _taken(base + 3)  # the first pair's RTP, the second's RTCP
    try:
        assert ports.port_for("a", base, LOOPBACK) == base + 4
        assert logged == [f"media ports {base}/{base + 1} are in use: call a takes {base + 4}/{base + 5}"]
        assert ports.port_for("a", base, LOOPBACK) == base + 4  # asked again: the same answer
        assert ports.port_for("b", base + 4, LOOPBACK) == base + 6  # held by a live call of ours
        assert ports.port_for("c", base + 8, LOOPBACK) == base + 8
        assert len(logged) == 2
        ports.release("a")
        assert ports.port_for("d", base + 4, LOOPBACK) == base + 4
    finally:
        holder.close()
        rtcp_holder.close()


def test_the_search_wraps_inside_the_range_and_gives_up_on_a_full_one() -> None:
    base = free_port(count=4)
    ports = MediaPorts(base, 2, lambda _text: None)
    holders = [_taken(base + 2)]
    try:
        assert ports.port_for("a", base + 2, LOOPBACK) == base  # wrapped to the range's start
        assert ports.port_for("b", base + 2, LOOPBACK) == base + 2  # nothing free: its own, to fail its bind
    finally:
        for holder in holders:
            holder.close()
