"""SIP over UDP and TCP on asyncio protocols (uvloop when it is the running loop).

Transports only move bytes: every datagram or framed TCP message goes to the
dispatcher's callback unparsed, and send failures are counted, never raised, because
one unreachable peer must not stop a run of thousands of calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import Any, Protocol, cast

from gossipper.errors import BindError
from gossipper.sip.message import SipParseError, find_message_end

Address = tuple[str, int]
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024
LISTEN_BACKLOG = 1024


class SipTransport(Protocol):
    @property
    def local_address(self) -> Address: ...
    @property
    def is_reliable(self) -> bool: ...
    def send(self, data: bytes, remote: Address) -> None: ...
    def close(self) -> None: ...


OnMessage = Callable[[bytes, Address, SipTransport], None]
OnMalformed = Callable[[str, bytes, Address], None]


def _address(raw: Any) -> Address:
    """(host, port) for both families: IPv6 socket addresses carry flow info and scope too."""
    return str(raw[0]), int(raw[1])


def _bound_socket(ip: str, port: int, kind: socket.SocketKind, label: str) -> socket.socket:
    try:
        family, _, _, _, address = socket.getaddrinfo(ip, port, type=kind, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as error:
        raise BindError(f"cannot bind {label} {ip}:{port}: {error.strerror}") from None
    sock = socket.socket(family, kind)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart despite TIME_WAIT
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            with contextlib.suppress(OSError):  # capped by the kernel; smaller still works
                sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise BindError(f"cannot bind {label} {ip}:{port}: {error.strerror or error}") from None
    sock.setblocking(False)
    return sock


# ---------------------------------------------------------------------- UDP
class UdpTransport(asyncio.DatagramProtocol):
    """One UDP socket: asyncio protocol and SipTransport in one object, to save a hop per packet."""

    is_reliable = False

    def __init__(self, on_message: OnMessage) -> None:
        self._on_message = on_message
        self._transport: asyncio.DatagramTransport | None = None
        self.local_address: Address = ("", 0)
        self.send_errors = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)
        self.local_address = _address(transport.get_extra_info("sockname"))

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._on_message(data, _address(addr), self)

    def error_received(self, exc: Exception) -> None:
        """Asynchronous send failures (ICMP unreachable, ENOBUFS) land here, not in send()."""
        self.send_errors += 1

    def send(self, data: bytes, remote: Address) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            self.send_errors += 1
            return
        try:
            transport.sendto(data, remote)
        except (OSError, ValueError):
            self.send_errors += 1

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def open_udp(ip: str, port: int, on_message: OnMessage) -> UdpTransport:
    sock = _bound_socket(ip, port, socket.SOCK_DGRAM, "UDP")
    protocol = UdpTransport(on_message)
    try:
        await asyncio.get_running_loop().create_datagram_endpoint(lambda: protocol, sock=sock)
    except OSError as error:
        sock.close()
        raise BindError(f"cannot bind UDP {ip}:{port}: {error.strerror or error}") from None
    return protocol


# ---------------------------------------------------------------------- TCP
class TcpConnection(asyncio.Protocol):
    """One TCP connection, framed into SIP messages; replies go back on the same connection."""

    is_reliable = True

    def __init__(
        self,
        on_message: OnMessage,
        on_malformed: OnMalformed,
        registry: dict[Address, TcpConnection] | None = None,
    ) -> None:
        self._on_message = on_message
        self._on_malformed = on_malformed
        self._registry = registry  # the accepting listener's table of open connections
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self.local_address: Address = ("", 0)
        self.remote_address: Address = ("", 0)
        self.send_errors = 0
        self.on_lost: Callable[[], None] | None = None  # told when the connection is gone

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self.local_address = _address(transport.get_extra_info("sockname"))
        self.remote_address = _address(transport.get_extra_info("peername"))
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._registry is not None:
            self._registry[self.remote_address] = self

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while buffer:
            if buffer[0] in (13, 10) and not buffer.strip(b"\r\n"):
                buffer.clear()  # keep-alive CRLFs only
                return
            try:
                end = find_message_end(buffer)
            except SipParseError as error:
                self._on_malformed(str(error), bytes(buffer), self.remote_address)
                buffer.clear()
                self.close()
                return
            if end is None:
                return
            message = bytes(buffer[:end])
            del buffer[:end]
            if message[:1] in (b"\r", b"\n"):
                message = message.lstrip(b"\r\n")
            self._on_message(message, self.remote_address, self)

    def connection_lost(self, exc: Exception | None) -> None:
        registry = self._registry
        if registry is not None and registry.get(self.remote_address) is self:
            del registry[self.remote_address]
        if self.on_lost is not None:
            self.on_lost()

    def send(self, data: bytes, remote: Address) -> None:
        """The connection has one peer, so the remote address is not needed."""
        transport = self._transport
        if transport is None or transport.is_closing():
            self.send_errors += 1
            return
        try:
            transport.write(data)
        except (OSError, RuntimeError):
            self.send_errors += 1

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class TcpListener:
    """A listening socket; sends reach a peer over the connection it opened to us."""

    is_reliable = True

    def __init__(self, on_message: OnMessage, on_malformed: OnMalformed) -> None:
        self._on_message = on_message
        self._on_malformed = on_malformed
        self._server: asyncio.AbstractServer | None = None
        self.connections: dict[Address, TcpConnection] = {}
        self.local_address: Address = ("", 0)
        self.send_errors = 0

    def _accept(self) -> TcpConnection:
        return TcpConnection(self._on_message, self._on_malformed, self.connections)

    def send(self, data: bytes, remote: Address) -> None:
        connection = self.connections.get(remote)
        if connection is None:
            self.send_errors += 1
            return
        connection.send(data, remote)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections.values()):
            connection.close()


async def open_tcp_listener(
    ip: str, port: int, on_message: OnMessage, on_malformed: OnMalformed
) -> TcpListener:
    sock = _bound_socket(ip, port, socket.SOCK_STREAM, "TCP")
    listener = TcpListener(on_message, on_malformed)
    try:
        sock.listen(LISTEN_BACKLOG)
        listener._server = await asyncio.get_running_loop().create_server(listener._accept, sock=sock)
    except OSError as error:
        sock.close()
        raise BindError(f"cannot listen on TCP {ip}:{port}: {error.strerror or error}") from None
    listener.local_address = _address(sock.getsockname())
    return listener


async def open_tcp_connection(
    remote: Address,
    local_ip: str,
    on_message: OnMessage,
    on_malformed: OnMalformed,
    local_port: int = 0,
) -> TcpConnection:
    """Connect out; BindError for the local side, OSError (e.g. refused) for the remote side."""
    sock = _bound_socket(local_ip, local_port, socket.SOCK_STREAM, "TCP")
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_connect(sock, remote)
        _, connection = await loop.create_connection(
            lambda: TcpConnection(on_message, on_malformed), sock=sock
        )
    except BaseException:
        sock.close()
        raise
    return connection


def os_sockets(transport: object) -> list[socket.socket]:
    """The kernel sockets under a transport, for options set after opening (-buff_size,
    -bind_to_device): a UDP socket or TCP connection has one, a listener its listening ones."""
    server = getattr(transport, "_server", None)
    if server is not None:
        return list(server.sockets)
    inner = getattr(transport, "_transport", None)
    sock = inner.get_extra_info("socket") if inner is not None else None
    return [sock] if sock is not None else []
