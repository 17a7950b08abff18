"""SIP over SCTP (-t s1/sn): one-to-one SOCK_STREAM IPPROTO_SCTP sockets, as SIPp's.

SCTP keeps message boundaries and SIPp takes each SCTP message as one SIP message, so
every SIP message here leaves in a send() of its own, and messages held back by a full
socket are queued whole; asyncio's stream transports would merge queued writes into
one send, which a SIPp peer would read as a single message. Received data still goes
through the Content-Length framer, so a message delivered in parts is whole again.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import time
from collections import deque

from gossipper.errors import BindError, InvalidValue
from gossipper.sip.message import DEFAULT_MAX_MESSAGE_BYTES
from gossipper.sip.transport import (
    LISTEN_BACKLOG,
    Acceptor,
    Address,
    ListenerGuard,
    OnMalformed,
    OnMessage,
    QuietSweeper,
    SipFramer,
    bound_socket,
    socket_address,
)

SCTP_NODELAY = 3  # <linux/sctp.h>: Python's socket module does not name it
RECV_BYTES = 65536  # SIPp's largest message


def check_sctp_available(family: int = socket.AF_INET) -> None:
    """A one-line error when this kernel has no SCTP, before any socket of the run opens."""
    try:
        probe = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
    except OSError as error:
        if error.errno in (errno.EPROTONOSUPPORT, errno.ESOCKTNOSUPPORT, errno.EAFNOSUPPORT):
            raise InvalidValue(
                "SCTP is not available: this kernel has no SCTP support "
                f"(socket(IPPROTO_SCTP): {error.strerror}); load the sctp module or use -t t1",
                setting="transport",
            ) from None
        raise
    probe.close()


class MessageConnection:
    """One connected socket whose every send is one message (SCTP one-to-one)."""

    is_reliable = True

    def __init__(
        self,
        sock: socket.socket,
        on_message: OnMessage,
        on_malformed: OnMalformed,
        registry: dict[Address, MessageConnection] | None = None,
        protocol_name: str = "SCTP",
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._on_message = on_message
        self._on_malformed = on_malformed
        self._registry = registry
        self._framer = SipFramer(max_message_bytes)
        self.last_received = self.last_sent = time.monotonic()  # for a listener's quiet sweep
        self._pending: deque[bytes] = deque()  # whole messages waiting for room in the socket
        self._closed = False
        self.protocol_name = protocol_name
        self.local_address: Address = socket_address(sock.getsockname())
        self.remote_address: Address = socket_address(sock.getpeername())
        self.send_errors = 0
        sock.setblocking(False)
        if sock.proto == socket.IPPROTO_SCTP:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_SCTP, SCTP_NODELAY, 1)
        if registry is not None:
            registry[self.remote_address] = self
        self._loop.add_reader(sock.fileno(), self._readable)

    @property
    def holds_partial(self) -> bool:
        return self._framer.holds_partial

    def abort(self) -> None:
        self.close()

    def _readable(self) -> None:
        try:
            data = self._sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        if not data:
            self.close()
            return
        self.last_received = time.monotonic()
        if not self._framer.deliver(data, self.remote_address, self, self._on_message, self._on_malformed):
            self.close()

    def send(self, data: bytes, remote: Address) -> None:
        if self._closed:
            self.send_errors += 1
            return
        if self._pending:
            self._pending.append(data)
            return
        if not self._send_one(data):
            self._pending.append(data)
            self._loop.add_writer(self._sock.fileno(), self._writable)

    def _send_one(self, data: bytes) -> bool:
        """False when the socket is full (the message is still to send)."""
        self.last_sent = time.monotonic()
        try:
            self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            self.send_errors += 1
            self.close()
        return True

    def _writable(self) -> None:
        while self._pending and not self._closed:
            if not self._send_one(self._pending[0]):
                return
            self._pending.popleft()
        if not self._closed:
            self._loop.remove_writer(self._sock.fileno())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # what the peer sent of a message it never finished is reported, not dropped unseen
        self._framer.end(self.remote_address, self, self._on_message, self._on_malformed)
        self.send_errors += len(self._pending)
        self._pending.clear()
        fd = self._sock.fileno()
        self._loop.remove_reader(fd)
        self._loop.remove_writer(fd)
        self._sock.close()
        registry = self._registry
        if registry is not None and registry.get(self.remote_address) is self:
            del registry[self.remote_address]


class MessageListener:
    """A listening message socket: accepts connections, sends reach a peer over its own."""

    is_reliable = True

    def __init__(
        self,
        sock: socket.socket,
        on_message: OnMessage,
        on_malformed: OnMalformed,
        protocol_name: str,
        guard: ListenerGuard | None = None,
    ) -> None:
        self.socket = sock
        self._on_message = on_message
        self._on_malformed = on_malformed
        self._guard = guard or ListenerGuard()
        self._acceptor: Acceptor | None = None
        self._sweeper: QuietSweeper | None = None
        self.protocol_name = protocol_name
        self.connections: dict[Address, MessageConnection] = {}
        self.local_address: Address = socket_address(sock.getsockname())
        self.send_errors = 0

    async def listen(self) -> None:
        try:
            self.socket.listen(LISTEN_BACKLOG)
        except OSError as error:
            self.socket.close()
            ip, port = self.local_address
            raise BindError(
                f"cannot listen on {self.protocol_name} {ip}:{port}: {error.strerror or error}"
            ) from None
        ip, port = self.local_address
        label, guard = f"{self.protocol_name} {ip}:{port}", self._guard
        limits = guard.limits
        self._acceptor = Acceptor(
            self.socket,
            label,
            self._accepted,
            guard.on_refused,
            lambda: len(self.connections),
            limits.max_connections,
        )
        self._sweeper = QuietSweeper(label, self.connections, limits, guard.on_quiet_closed)

    def _accepted(self, sock: socket.socket) -> None:
        MessageConnection(
            sock,
            self._on_message,
            self._on_malformed,
            self.connections,
            self.protocol_name,
            self._guard.limits.max_message_bytes,
        )

    def send(self, data: bytes, remote: Address) -> None:
        connection = self.connections.get(remote)
        if connection is None:
            self.send_errors += 1
            return
        connection.send(data, remote)

    def close(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            self._acceptor = None
        if self._sweeper is not None:
            self._sweeper.close()
            self._sweeper = None
        self.socket.close()
        for connection in list(self.connections.values()):
            connection.close()


def bind_sctp_listener(
    ip: str, port: int, on_message: OnMessage, on_malformed: OnMalformed, guard: ListenerGuard | None = None
) -> MessageListener:
    sock = bound_socket(ip, port, socket.SOCK_STREAM, "SCTP", socket.IPPROTO_SCTP)
    return MessageListener(sock, on_message, on_malformed, "SCTP", guard)


async def connect_message_socket(
    sock: socket.socket,
    remote: Address,
    on_message: OnMessage,
    on_malformed: OnMalformed,
    name: str,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> MessageConnection:
    """Connect a bound socket out; OSError (e.g. refused) for the remote side."""
    try:
        await asyncio.get_running_loop().sock_connect(sock, remote)
    except BaseException:
        sock.close()
        raise
    return MessageConnection(
        sock, on_message, on_malformed, protocol_name=name, max_message_bytes=max_message_bytes
    )


async def open_sctp_connection(
    remote: Address,
    local_ip: str,
    on_message: OnMessage,
    on_malformed: OnMalformed,
    local_port: int = 0,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> MessageConnection:
    sock = bound_socket(local_ip, local_port, socket.SOCK_STREAM, "SCTP", socket.IPPROTO_SCTP)
    return await connect_message_socket(sock, remote, on_message, on_malformed, "SCTP", max_message_bytes)
