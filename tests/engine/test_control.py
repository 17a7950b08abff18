"""The control socket as SIPp opens it: 8888 or the first free of 60 ports, every address;
commands only from this host unless -ci names the address to listen on."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from gossipper.engine.control import (
    CONTROL_PORT_DEFAULT,
    CONTROL_PORT_TRIES,
    RunControl,
    _ControlProtocol,
    is_own_address,
)
from gossipper.engine.settings import ControlSettings
from gossipper.errors import BindError


class _Run:
    def __init__(self) -> None:
        self.rate = 10.0
        self.rate_ceiling = 100_000.0
        self.users: int | None = None
        self.errors: list[str] = []
        self.stopped = False

    def soft_stop(self) -> None:
        self.stopped = True

    def hard_stop(self) -> None:
        self.stopped = True

    def set_rate(self, rate: float) -> None:
        self.rate = rate

    def set_limit(self, limit: int) -> None: ...

    def pause_traffic(self) -> None: ...

    def trace_error(self, text: str) -> None:
        self.errors.append(text)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _first_free_control_port() -> int | None:
    for port in range(CONTROL_PORT_DEFAULT, CONTROL_PORT_DEFAULT + CONTROL_PORT_TRIES):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    return None


def test_port_search_takes_the_first_free_port_from_8888_on_every_address(
    loop: asyncio.AbstractEventLoop,
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as blocker:
        first = _first_free_control_port()
        if first is None or first == CONTROL_PORT_DEFAULT + CONTROL_PORT_TRIES - 1:
            pytest.skip("the control range is (nearly) full on this host")
        blocker.bind(("0.0.0.0", first))  # taken: the search must go past it
        expected = _first_free_control_port()
        control = RunControl(_Run(), ControlSettings(keyboard=False))
        control.start(loop)
        loop.run_until_complete(asyncio.sleep(0))
        try:
            assert control.port == expected
            assert control._transport is not None
            assert control._transport.get_extra_info("sockname")[0] == "0.0.0.0"
        finally:
            control.close()


def test_a_taken_cp_port_is_a_bind_error(loop: asyncio.AbstractEventLoop) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        port = blocker.getsockname()[1]
        control = RunControl(_Run(), ControlSettings(ip="127.0.0.1", port=port, keyboard=False))
        with pytest.raises(BindError, match=f"-cp: cannot bind the control socket to UDP 127.0.0.1:{port}"):
            control.start(loop)


def test_own_addresses_are_known_by_the_kernel() -> None:
    assert is_own_address("127.0.0.1") and is_own_address("127.0.0.5")
    assert not is_own_address("192.0.2.1")  # TEST-NET-1: never assigned


def test_commands_from_elsewhere_are_refused_unless_ci_opened_the_socket() -> None:
    run = _Run()
    _ControlProtocol(run, ControlSettings()).datagram_received(b"cset rate 50", ("192.0.2.1", 4000))
    assert run.rate == 10.0 and "refused" in run.errors[0]
    _ControlProtocol(run, ControlSettings()).datagram_received(b"cset rate 50", ("127.0.0.1", 4000))
    assert run.rate == 50.0
    _ControlProtocol(run, ControlSettings(ip="0.0.0.0")).datagram_received(b"+", ("192.0.2.1", 4000))
    assert run.rate == 51.0
    _ControlProtocol(run, ControlSettings(rate_scale=10)).datagram_received(b"-", ("127.0.0.1", 4000))
    assert run.rate == 41.0
