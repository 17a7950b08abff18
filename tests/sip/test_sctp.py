"""SCTP's message-per-send connections: the kernel's verdict here, the socket logic on SEQPACKET.

This kernel may lack SCTP (socket(IPPROTO_SCTP) fails with EPROTONOSUPPORT): then the
run must stop with one line, which is checked; where it has SCTP, a real loopback
association is checked instead. The queueing and framing of MessageConnection do not
depend on the protocol, so they are checked on AF_UNIX SOCK_SEQPACKET pairs, which keep
message boundaries as SCTP does.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from gossipper.cli.ports import LOOPBACK
from gossipper.errors import InvalidValue
from gossipper.sip.sctp import (
    MessageConnection,
    bind_sctp_listener,
    check_sctp_available,
    open_sctp_connection,
)
from tests.sip.test_transport import RUNNERS, Inbox, Malformed, Runner, _message


def kernel_has_sctp() -> bool:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP).close()
    except OSError:
        return False
    return True


@pytest.mark.skipif(kernel_has_sctp(), reason="this kernel has SCTP: the real association is tested instead")
def test_without_kernel_sctp_the_error_is_one_line_naming_the_cause() -> None:
    with pytest.raises(InvalidValue) as caught:
        check_sctp_available()
    assert caught.value.setting == "transport"
    assert "\n" not in caught.value.message
    assert caught.value.message.startswith("SCTP is not available: this kernel has no SCTP support")
    assert "Protocol not supported" in caught.value.message


@pytest.mark.skipif(not kernel_has_sctp(), reason="this kernel has no SCTP (socket(IPPROTO_SCTP) fails)")
@RUNNERS
def test_sctp_association_on_loopback(run: Runner) -> None:
    async def scenario() -> None:
        check_sctp_available()
        server_inbox, client_inbox = Inbox(), Inbox()
        listener = bind_sctp_listener(LOOPBACK, 0, server_inbox, Malformed())
        await listener.listen()
        client = await open_sctp_connection(listener.local_address, LOOPBACK, client_inbox, Malformed())
        try:
            client.send(_message("sctp"), listener.local_address)
            items = await server_inbox.wait_for(1)
            assert items[0][0] == _message("sctp") and items[0][2].protocol_name == "SCTP"
            listener.send(_message("back"), client.local_address)
            assert (await client_inbox.wait_for(1))[0][0] == _message("back")
        finally:
            client.close()
            listener.close()

    run(scenario())


@RUNNERS
def test_each_message_is_one_send_even_when_the_socket_is_full(run: Runner) -> None:
    async def scenario() -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        connection = MessageConnection(ours, Inbox(), Malformed())
        try:
            messages = [_message(f"queued-{index}", b"b" * 700) for index in range(200)]
            for message in messages:
                connection.send(message, ("", 0))
            assert connection._pending, "the socket should have filled and messages queued"
            theirs.setblocking(False)
            received: list[bytes] = []
            while len(received) < len(messages):
                try:
                    received.append(theirs.recv(65536))
                except BlockingIOError:
                    await asyncio.sleep(0.01)
            assert received == messages  # one message per read: none split, none merged
            assert connection.send_errors == 0
        finally:
            connection.close()
            theirs.close()

    run(scenario())


@RUNNERS
def test_received_messages_are_framed_and_the_peer_closing_ends_the_connection(run: Runner) -> None:
    async def scenario() -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        inbox, malformed = Inbox(), Malformed()
        connection = MessageConnection(ours, inbox, malformed, registry := {})
        try:
            first, second = _message("one", b"1" * 10), _message("two")
            theirs.send(first[:30])  # a message delivered in two parts is whole again
            theirs.send(first[30:] + second)
            items = await inbox.wait_for(2)
            assert [data for data, _, _ in items] == [first, second]
            assert registry[connection.remote_address] is connection
            theirs.close()
            for _ in range(100):
                if not registry:
                    break
                await asyncio.sleep(0.01)
            assert registry == {}
            connection.send(_message("after"), ("", 0))
            assert connection.send_errors == 1
            assert malformed.reports == []
        finally:
            connection.close()

    run(scenario())
