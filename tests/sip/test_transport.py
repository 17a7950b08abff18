"""Real loopback sockets, run under both the default asyncio loop and uvloop (what runs use)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from gossipper.cli.ports import LOOPBACK, free_port
from gossipper.errors import BindError
from gossipper.sip import transport as transport_module
from gossipper.sip.message import SipParseError
from gossipper.sip.transport import (
    INCOMPLETE_AT_CLOSE,
    TOO_LARGE,
    Address,
    ListenerGuard,
    Oversized,
    SipFramer,
    SipTransport,
    StreamLimits,
    open_tcp_connection,
    open_tcp_listener,
    open_udp,
)
from gossipper.sip.udp_batched import BatchedUdpTransport

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
        assert isinstance(echo, BatchedUdpTransport)
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
            items = await server_inbox.wait_for(8)
            # the CRLF CRLF keep-alives are handed on too, for the receiver to count and answer
            assert [data for data, _, _ in items] == [first, b"\r\n\r\n", *pipelined, b"\r\n\r\n"]
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


# ---------------------------------------------------------------------- what streams leave over
def test_the_framer_hands_on_keepalives_between_messages() -> None:
    """RFC 5626: a CRLF CRLF ping goes on as soon as it is whole; a lone CRLF (a pong) once
    the next message starts, since until then it may be the first half of a ping."""
    framer = SipFramer()
    message = _message("k")
    assert framer.feed(b"\r\n\r\n") == [b"\r\n\r\n"]
    assert framer.feed(b"\r\n") == []
    assert framer.feed(b"\r\n") == [b"\r\n\r\n"]  # it was the first half of a ping
    assert framer.feed(b"\r\n" + message) == [b"\r\n", message]
    assert framer.feed(message + b"\r\n\r\n\r\n\r\n") == [message, b"\r\n\r\n", b"\r\n\r\n"]
    assert framer.feed(b"\n\n" + message[:10]) == [b"\n\n"]  # bare LFs, as RFC 3261 7.5 allows
    assert framer.feed(message[10:]) == [message]


def test_the_framer_reports_what_a_closed_stream_cut_off() -> None:
    inbox: list[bytes] = []
    reports: list[tuple[str, bytes, Address]] = []
    framer = SipFramer()
    whole, half = _message("whole"), _message("half", b"body")[:40]
    framer.deliver(whole + b"\r\n" + half, ("192.0.2.1", 5060), None, lambda d, *_: inbox.append(d), None)  # type: ignore[arg-type]
    assert inbox == [whole, b"\r\n"]
    framer.end(("192.0.2.1", 5060), None, lambda d, *_: inbox.append(d), lambda *a: reports.append(a))  # type: ignore[arg-type]
    assert reports == [(INCOMPLETE_AT_CLOSE, half, ("192.0.2.1", 5060))]
    framer.end(("192.0.2.1", 5060), None, lambda d, *_: inbox.append(d), lambda *a: reports.append(a))  # type: ignore[arg-type]
    assert len(reports) == 1  # reported once
    framer.feed(b"\r\n")
    framer.end(("192.0.2.1", 5060), None, lambda d, *_: inbox.append(d), lambda *a: reports.append(a))  # type: ignore[arg-type]
    assert inbox[-1] == b"\r\n" and len(reports) == 1  # a pong left waiting is a keep-alive, not a message


@RUNNERS
def test_tcp_connections_closed_inside_a_message_are_each_counted(run: Runner) -> None:
    """A peer that sends half a message and closes: the half is reported with its peer, once
    per connection (it used to vanish with the connection's buffer)."""
    connections = 30

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        inbox, malformed = Inbox(), Malformed()
        listener = await open_tcp_listener(LOOPBACK, 0, inbox, malformed)
        halves: dict[Address, bytes] = {}
        try:
            for index in range(connections):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as peer:
                    peer.setblocking(False)
                    await loop.sock_connect(peer, listener.local_address)
                    half = _message(f"half-{index}", b"0123456789")[: 20 + index]
                    whole = _message(f"whole-{index}") if index % 2 else b""  # some send one whole first
                    await loop.sock_sendall(peer, whole + half)
                    halves[peer.getsockname()] = half
            for _ in range(int(WAIT_S / 0.01)):
                if len(malformed.reports) >= connections:
                    break
                await asyncio.sleep(0.01)
            assert len(malformed.reports) == connections
            assert {source: data for _, data, source in malformed.reports} == halves
            assert all(reason == INCOMPLETE_AT_CLOSE for reason, _, _ in malformed.reports)
            assert len(inbox.items) == connections // 2  # the whole ones arrived
        finally:
            listener.close()

    run(scenario())


def test_framer_drops_an_oversized_message_unread_and_goes_on() -> None:
    """Past the limit a message is handed on as Oversized as soon as its headers are in; its
    body is dropped as it arrives (never buffered) and the next message frames as usual."""
    framer = SipFramer(max_message_bytes=300)
    big = _message("big", b"x" * 1000)
    after = _message("after")
    head_end = big.index(b"\r\n\r\n") + 4
    [oversized] = framer.feed(big[: head_end + 10])
    assert isinstance(oversized, Oversized) and oversized.head == big[: head_end + 10]
    assert "over the limit of 300" in oversized.reason and str(len(big)) in oversized.reason
    assert framer.holds_partial  # the rest of its body is owed
    assert framer.feed(big[head_end + 10 : head_end + 500]) == []
    assert framer.feed(big[head_end + 500 :] + after) == [after]
    assert not framer.holds_partial
    assert framer.feed(_message("fits", b"y" * 200)) == [_message("fits", b"y" * 200)]


def test_framer_without_a_header_end_within_the_limit_gives_up_the_stream() -> None:
    framer = SipFramer(max_message_bytes=300)
    with pytest.raises(SipParseError, match="no blank line within 300 bytes"):
        framer.feed(b"OPTIONS sip:x SIP/2.0\r\n" + b"X-Long: " + b"z" * 400)


@RUNNERS
def test_tcp_oversized_messages_are_reported_and_the_connection_carries_on(run: Runner) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        inbox, malformed = Inbox(), Malformed()
        guard = ListenerGuard(StreamLimits(max_message_bytes=4096))
        listener = await open_tcp_listener(LOOPBACK, 0, inbox, malformed, guard=guard)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as peer:
                peer.setblocking(False)
                await loop.sock_connect(peer, listener.local_address)
                big = _message("big", b"b" * 100_000)
                for start in range(0, len(big), 8192):  # in pieces, as a stream delivers it
                    await loop.sock_sendall(peer, big[start : start + 8192])
                await loop.sock_sendall(peer, _message("after"))
                await inbox.wait_for(1)
        finally:
            listener.close()
        assert [data for data, _, _ in inbox.items] == [_message("after")]
        [(reason, head, _)] = malformed.reports
        assert reason.startswith(TOO_LARGE) and str(len(_message("big", b"b" * 100_000))) in reason
        assert head.startswith(b"OPTIONS sip:x@127.0.0.1") and len(head) <= 512

    run(scenario())


@RUNNERS
def test_a_listener_refuses_connections_past_its_cap_and_takes_them_again_below_it(run: Runner) -> None:
    """Past max_connections a new connection is closed at once (its peer reads the end of
    the stream), counted, and the burst reported once; once one closes, the next gets in."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        inbox, refusals = Inbox(), []
        guard = ListenerGuard(
            StreamLimits(max_connections=3), on_refused=lambda *report: refusals.append(report)
        )
        listener = await open_tcp_listener(LOOPBACK, 0, inbox, Malformed(), guard=guard)
        peers: list[socket.socket] = []
        try:
            for index in range(3):
                peer = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                peer.setblocking(False)
                await loop.sock_connect(peer, listener.local_address)
                await loop.sock_sendall(peer, _message(f"kept-{index}"))
                peers.append(peer)
            await inbox.wait_for(3)
            for _ in range(4):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as extra:
                    extra.setblocking(False)
                    await loop.sock_connect(extra, listener.local_address)
                    with contextlib.suppress(ConnectionResetError):
                        assert await asyncio.wait_for(loop.sock_recv(extra, 100), WAIT_S) == b""
            peers.pop().close()
            while len(listener.connections) > 2:
                await asyncio.sleep(0.01)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as again:
                again.setblocking(False)
                await loop.sock_connect(again, listener.local_address)
                await loop.sock_sendall(again, _message("again"))
                await inbox.wait_for(4)
        finally:
            for peer in peers:
                peer.close()
            listener.close()
        assert listener.refused_connections == 4
        assert sum(count for _, count, _, _ in refusals) == 4
        assert [first for _, _, _, first in refusals] == [True, False, False, False]
        assert "3 connections are open" in refusals[0][2]
        assert inbox.items[-1][0] == _message("again")

    run(scenario())


@RUNNERS
def test_a_peer_stalled_inside_a_message_is_closed_and_its_half_counted(run: Runner) -> None:
    """Half a message and then nothing: past the stall timeout the connection is closed,
    reported as closed quiet, and the half counted as a message cut off; a peer that is
    silent between whole messages is kept (no idle timeout given)."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        inbox, malformed, closures = Inbox(), Malformed(), []
        limits = StreamLimits(stall_timeout_s=0.3)
        guard = ListenerGuard(limits, on_quiet_closed=lambda *report: closures.append(report))
        listener = await open_tcp_listener(LOOPBACK, 0, inbox, malformed, guard=guard)
        try:
            with (
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as staller,
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as quiet,
            ):
                for peer in (staller, quiet):
                    peer.setblocking(False)
                    await loop.sock_connect(peer, listener.local_address)
                half = _message("half", b"0123456789")[:-4]
                await loop.sock_sendall(staller, half)
                await loop.sock_sendall(quiet, _message("whole"))
                with contextlib.suppress(ConnectionResetError):
                    assert await asyncio.wait_for(loop.sock_recv(staller, 100), WAIT_S) == b""
                await malformed.reported.wait()
                assert len(listener.connections) == 1  # the quiet one, whole messages only
                stall_peer = staller.getsockname()
        finally:
            listener.close()
        [(label, peer, reason)] = closures
        assert peer == stall_peer and label.startswith("TCP 127.0.0.1:")
        assert "stopped inside a message" in reason
        assert malformed.reports == [(INCOMPLETE_AT_CLOSE, half, stall_peer)]
        assert listener.quiet_closed_connections == 1

    run(scenario())


@RUNNERS
def test_an_idle_timeout_closes_a_connection_quiet_both_ways(run: Runner) -> None:
    """With an idle timeout a connection on which nothing moves is closed; one that keeps
    sending is kept."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        inbox, closures = Inbox(), []
        guard = ListenerGuard(
            StreamLimits(idle_timeout_s=0.5), on_quiet_closed=lambda *report: closures.append(report)
        )
        listener = await open_tcp_listener(LOOPBACK, 0, inbox, Malformed(), guard=guard)
        try:
            with (
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as idle,
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy,
            ):
                for peer in (idle, busy):
                    peer.setblocking(False)
                    await loop.sock_connect(peer, listener.local_address)
                await loop.sock_sendall(idle, _message("once"))
                closed = loop.create_task(loop.sock_recv(idle, 100))
                sent = 0
                while not closed.done():
                    await loop.sock_sendall(busy, _message(f"busy-{sent}"))
                    sent += 1
                    await asyncio.sleep(0.1)
                    assert sent < WAIT_S / 0.1, "the idle connection was never closed"
                with contextlib.suppress(ConnectionResetError):
                    assert closed.result() == b""
                idle_peer = idle.getsockname()
                assert len(listener.connections) == 1
        finally:
            listener.close()
        [(_, peer, reason)] = closures
        assert peer == idle_peer and "past the idle timeout of 0.5 s" in reason
        assert sent >= 4  # the busy one outlived the timeout several times over

    run(scenario())


_AT_THE_LIMIT = textwrap.dedent(
    """
    import asyncio, json, os, resource, sys
    import uvloop
    from gossipper.sip.transport import ListenerGuard, open_tcp_listener

    async def main():
        loop = asyncio.get_running_loop()
        inbox, refusals = [], []
        listener = await open_tcp_listener(
            "127.0.0.1", 0, lambda data, *_: inbox.append(data.decode()), lambda *_: None,
            guard=ListenerGuard(on_refused=lambda *report: refusals.append(report)),
        )
        commands = asyncio.Queue()
        loop.add_reader(0, lambda: commands.put_nowait(sys.stdin.readline().strip()))
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        filler = []
        while True:  # every descriptor taken: accept() fails with EMFILE
            try:
                filler.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                break
        print(listener.local_address[1], flush=True)
        assert await commands.get() == "free"
        for fd in filler:
            os.close(fd)
        print("freed", flush=True)
        while not inbox:
            await asyncio.sleep(0.01)
        print(json.dumps({"refused": listener.refused_connections, "refusals": refusals, "inbox": inbox}))
        listener.close()

    (uvloop.run if sys.argv[1] == "uvloop" else asyncio.run)(main())
    """
)


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_connections_refused_at_the_open_files_limit_are_counted_and_the_listener_recovers(
    loop_kind: str,
) -> None:
    """At the descriptor limit each connection is refused at once (its peer sees it closed),
    counted, and the burst reported once; freed descriptors let the next one in."""
    refused = 5
    child = subprocess.Popen(
        [sys.executable, "-c", _AT_THE_LIMIT, loop_kind],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.getcwd(),
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        port = int(child.stdout.readline())
        for _ in range(refused):
            with (
                socket.create_connection((LOOPBACK, port), timeout=WAIT_S) as peer,
                contextlib.suppress(ConnectionResetError),  # closed with the connection unread
            ):
                assert peer.recv(100) == b""  # closed by the listener, not left waiting
        child.stdin.write("free\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "freed"
        with socket.create_connection((LOOPBACK, port), timeout=WAIT_S) as peer:
            peer.sendall(_message("after"))
            report = json.loads(child.stdout.readline())
        assert child.wait(timeout=WAIT_S) == 0
    finally:
        child.kill()
        child.wait()
    assert report["refused"] == refused
    assert report["inbox"] == [_message("after").decode()]
    refusals = report["refusals"]
    assert sum(count for _, count, _, _ in refusals) == refused
    assert [first for _, _, _, first in refusals].count(True) == 1  # one report per burst
    label, _, reason, first = refusals[0]
    assert first and label == f"TCP 127.0.0.1:{port}" and "EMFILE" in reason
