"""Real loopback sockets, run under both the default asyncio loop and uvloop (what runs use)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from gossipper.cli.ports import LOOPBACK, free_port
from gossipper.errors import BindError
from gossipper.sip import transport as transport_module
from gossipper.sip.transport import (
    Address,
    SipTransport,
    open_tcp_connection,
    open_tcp_listener,
    open_udp,
)

Runner = Callable[[Coroutine[Any, Any, None]], None]
RUNNERS = pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
WAIT_S = 5.0


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def _message(call_id: str, body: bytes = b"") -> bytes:
    head = f"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nCall-ID: {call_id}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


class Inbox:
    """Collects (data, source, transport) and lets a test wait for a number of them."""

    def __init__(self) -> None:
        self.items: list[tuple[bytes, Address, SipTransport]] = []
        self._arrived = asyncio.Event()

    def __call__(self, data: bytes, source: Address, transport: SipTransport) -> None:
        self.items.append((data, source, transport))
        self._arrived.set()

    async def wait_for(self, count: int) -> list[tuple[bytes, Address, SipTransport]]:
        async def enough() -> None:
            while len(self.items) < count:
                self._arrived.clear()
                await self._arrived.wait()

        await asyncio.wait_for(enough(), WAIT_S)
        return self.items


class Malformed:
    def __init__(self) -> None:
        self.reports: list[tuple[str, bytes, Address]] = []
        self.reported = asyncio.Event()

    def __call__(self, reason: str, data: bytes, source: Address) -> None:
        self.reports.append((reason, data, source))
        self.reported.set()


def _echo(data: bytes, source: Address, transport: SipTransport) -> None:
    transport.send(b"echo " + data, source)


# ---------------------------------------------------------------------- UDP
UDP_BACKENDS = pytest.mark.usefixtures("udp_backend")


@UDP_BACKENDS
@RUNNERS
@pytest.mark.parametrize("ip", ["127.0.0.1", "::1"])
def test_udp_echo(run: Runner, ip: str) -> None:
    if ip == "::1" and not _has_ipv6_loopback():
        pytest.skip("no IPv6 loopback")

    async def scenario() -> None:
        echo = await open_udp(ip, 0, _echo)
        inbox = Inbox()
        client = await open_udp(ip, 0, inbox)
        try:
            assert echo.local_address[0] == ip and echo.local_address[1] > 0
            assert not client.is_reliable
            for index in range(3):
                client.send(_message(f"udp-{index}"), echo.local_address)
            items = await inbox.wait_for(3)
            assert sorted(data for data, _, _ in items) == [b"echo " + _message(f"udp-{i}") for i in range(3)]
            assert all(source == echo.local_address and len(source) == 2 for _, source, _ in items)
            assert all(transport is client for _, _, transport in items)
            assert client.send_errors == 0 and echo.send_errors == 0
        finally:
            client.close()
            echo.close()

    run(scenario())


@UDP_BACKENDS
@RUNNERS
def test_udp_send_to_closed_port_or_bad_address_does_not_raise(run: Runner) -> None:
    async def scenario() -> None:
        inbox = Inbox()
        peer = await open_udp(LOOPBACK, 0, inbox)
        sender = await open_udp(LOOPBACK, 0, lambda data, source, transport: None)
        try:
            closed_port = free_port()
            for _ in range(20):
                sender.send(_message("lost"), (LOOPBACK, closed_port))
                await asyncio.sleep(0.001)
            sender.send(_message("wrong family"), ("::1", closed_port))
            await asyncio.sleep(0.01)  # a batched send fails when its turn's batch leaves
            assert sender.send_errors >= 1
            sender.send(_message("after"), peer.local_address)
            items = await inbox.wait_for(1)
            assert items[0][0] == _message("after")
        finally:
            sender.close()
            peer.close()
        sender.send(_message("after close"), peer.local_address)
        assert sender.send_errors >= 2

    run(scenario())


@UDP_BACKENDS
@RUNNERS
def test_udp_bursts_names_and_closing(run: Runner) -> None:
    """More datagrams than one batch holds, each way, in order; a destination given by name
    (resolved aside, the rest of the burst unharmed); what was sent before close leaves."""

    async def scenario() -> None:
        echo = await open_udp(LOOPBACK, 0, _echo)
        inbox = Inbox()
        client = await open_udp(LOOPBACK, 0, inbox)
        try:
            burst = [_message(f"burst-{index}") for index in range(300)]
            for index, data in enumerate(burst):
                port = echo.local_address[1]
                client.send(data, ("localhost", port) if index == 150 else echo.local_address)
            items = await inbox.wait_for(300)
            assert [data for data, _, _ in items] == [b"echo " + data for data in burst]
            assert client.send_errors == 0 and echo.send_errors == 0
        finally:
            client.close()
            echo.close()
        receiver = Inbox()
        peer = await open_udp(LOOPBACK, 0, receiver)
        sender = await open_udp(LOOPBACK, 0, Inbox())
        sender.send(_message("last words"), peer.local_address)
        sender.close()  # in the same turn as the send
        try:
            items = await receiver.wait_for(1)
            assert items[0][0] == _message("last words")
            assert sender.send_errors == 0
        finally:
            peer.close()

    run(scenario())


@RUNNERS
def test_answers_to_a_burst_leave_a_few_dozen_at_a_time(run: Runner) -> None:
    """A peer with SIPp's default 64 kB receive buffer lost answers when all of a wake-up's
    answers (up to 512) left in one sendmmsg: they leave FLUSH_AT at a time, in order."""
    if transport_module._native_io is None:
        pytest.skip("the native SIP core is not built")

    async def scenario() -> None:
        echo = await open_udp(LOOPBACK, 0, _echo)
        assert isinstance(echo, transport_module.BatchedUdpTransport)
        sizes: list[int] = []
        send_batch = echo._send_batch

        def counting(fd: int, queue: list[tuple[bytes, Address]], start: int) -> tuple[int, int]:
            sizes.append(len(queue) - start)
            return send_batch(fd, queue, start)  # type: ignore[no-any-return]

        echo._send_batch = counting
        inbox = Inbox()
        client = await open_udp(LOOPBACK, 0, inbox)
        try:
            burst = [_message(f"burst-{index}") for index in range(300)]
            for data in burst:
                client.send(data, echo.local_address)
            items = await inbox.wait_for(300)
            assert [data for data, _, _ in items] == [b"echo " + data for data in burst]
            assert sum(sizes) == 300 and max(sizes) <= 64  # SIPp's 64 kB holds about a hundred
        finally:
            client.close()
            echo.close()

    run(scenario())


@UDP_BACKENDS
@RUNNERS
def test_udp_port_in_use_is_a_bind_error(run: Runner) -> None:
    async def scenario() -> None:
        first = await open_udp(LOOPBACK, 0, _echo)
        port = first.local_address[1]
        try:
            # The socket layer cannot know which setting asked for the port (the SIP port,
            # a per-call socket): the run names it (tests/cli/test_bad_input.py).
            with pytest.raises(BindError, match=f"^cannot bind UDP 127.0.0.1:{port}: .*in use") as caught:
                await open_udp(LOOPBACK, port, _echo)
            assert caught.value.setting is None
            with pytest.raises(BindError, match=r"^cannot bind UDP 256\.0\.0\.1:0"):
                await open_udp("256.0.0.1", 0, _echo)
        finally:
            first.close()

    run(scenario())


# ---------------------------------------------------------------------- TCP
@RUNNERS
def test_tcp_exchange_with_split_and_pipelined_messages(run: Runner) -> None:
    async def scenario() -> None:
        server_inbox, client_inbox = Inbox(), Inbox()
        malformed = Malformed()
        listener = await open_tcp_listener(LOOPBACK, 0, server_inbox, malformed)
        client = await open_tcp_connection(listener.local_address, LOOPBACK, client_inbox, malformed)
        try:
            assert client.is_reliable and listener.is_reliable
            assert listener.local_address[0] == LOOPBACK
            first = _message("split", b"0123456789" * 30)
            for offset in range(0, len(first), 50):  # arrives in several reads
                client.send(first[offset : offset + 50], ("ignored", 0))
                await asyncio.sleep(0.005)
            pipelined = [_message(f"pipe-{i}", b"x" * i) for i in range(5)]
            client.send(b"\r\n\r\n" + b"".join(pipelined) + b"\r\n\r\n", listener.local_address)
            items = await server_inbox.wait_for(6)
            assert [data for data, _, _ in items] == [first, *pipelined]
            connection = items[0][2]
            assert connection.is_reliable
            assert all(
                source == client.local_address and transport is connection for _, source, transport in items
            )

            connection.send(_message("reply-direct"), client.local_address)
            listener.send(_message("reply-by-address"), client.local_address)
            listener.send(_message("nobody"), (LOOPBACK, 9))
            replies = await client_inbox.wait_for(2)
            assert [data for data, _, _ in replies] == [
                _message("reply-direct"),
                _message("reply-by-address"),
            ]
            assert replies[0][1] == listener.local_address and replies[0][2] is client
            assert listener.send_errors == 1
            assert malformed.reports == []
        finally:
            client.close()
            listener.close()

    run(scenario())


@RUNNERS
@pytest.mark.parametrize(
    ("junk", "reason"),
    [
        (b"INVITE sip:x SIP/2.0\r\nContent-Length: abc\r\n\r\n", "non-numeric Content-Length"),
        (b"J" * (70 * 1024), "no blank line"),
    ],
)
def test_tcp_bad_framing_is_reported_and_closes_the_connection(run: Runner, junk: bytes, reason: str) -> None:
    async def scenario() -> None:
        server_inbox, client_inbox = Inbox(), Inbox()
        malformed = Malformed()
        listener = await open_tcp_listener(LOOPBACK, 0, server_inbox, malformed)
        client = await open_tcp_connection(listener.local_address, LOOPBACK, client_inbox, Malformed())
        try:
            client.send(_message("good"), listener.local_address)
            await server_inbox.wait_for(1)
            client.send(junk, listener.local_address)
            await asyncio.wait_for(malformed.reported.wait(), WAIT_S)
            found_reason, data, source = malformed.reports[0]
            assert reason in found_reason
            assert source == client.local_address
            assert data.startswith(junk[:100])
            for _ in range(100):
                if not listener.connections:
                    break
                await asyncio.sleep(0.01)
            assert listener.connections == {}
            assert len(server_inbox.items) == 1
        finally:
            client.close()
            listener.close()

    run(scenario())


@RUNNERS
def test_tcp_connect_and_bind_failures(run: Runner) -> None:
    async def scenario() -> None:
        listener = await open_tcp_listener(LOOPBACK, 0, Inbox(), Malformed())
        port = listener.local_address[1]
        try:
            with pytest.raises(BindError, match=f"cannot bind TCP 127.0.0.1:{port}"):
                await open_tcp_listener(LOOPBACK, port, Inbox(), Malformed())
            with pytest.raises(OSError):
                await open_tcp_connection((LOOPBACK, free_port()), LOOPBACK, Inbox(), Malformed())
        finally:
            listener.close()

    run(scenario())


@RUNNERS
def test_tcp_over_ipv6(run: Runner) -> None:
    if not _has_ipv6_loopback():
        pytest.skip("no IPv6 loopback")

    async def scenario() -> None:
        server_inbox, client_inbox = Inbox(), Inbox()
        listener = await open_tcp_listener("::1", 0, server_inbox, Malformed())
        client = await open_tcp_connection(listener.local_address, "::1", client_inbox, Malformed())
        try:
            client.send(_message("v6"), listener.local_address)
            (data, source, connection), *_ = await server_inbox.wait_for(1)
            assert data == _message("v6") and source == client.local_address and len(source) == 2
            connection.send(_message("v6-reply"), source)
            assert (await client_inbox.wait_for(1))[0][0] == _message("v6-reply")
        finally:
            client.close()
            listener.close()

    run(scenario())
