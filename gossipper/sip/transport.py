"""SIP over UDP, TCP and TLS on asyncio protocols (uvloop when it is the running loop).

Transports only move bytes: every datagram or framed stream message goes to the
dispatcher's callback unparsed, and send failures are counted, never raised, because
one unreachable peer must not stop a run of thousands of calls. The stream kinds share
the connection and listener bookkeeping here; WebSocket framing lives in
`sip.websocket` and SCTP's message-per-send sockets in `sip.sctp`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
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
    @property
    def protocol_name(self) -> str: ...  # as SIPp's message trace names it: UDP, TCP, TLS, SCTP, WS, WSS
    def send(self, data: bytes, remote: Address) -> None: ...
    def close(self) -> None: ...


OnMessage = Callable[[bytes, Address, SipTransport], None]
OnMalformed = Callable[[str, bytes, Address], None]


def socket_address(raw: Any) -> Address:
    """(host, port) for both IP families: IPv6 socket addresses carry flow info and scope too.
    A local (AF_UNIX) socket's name has no port: (name, 0)."""
    if isinstance(raw, (str, bytes)):
        return str(raw), 0
    return str(raw[0]), int(raw[1])


def bound_socket(ip: str, port: int, kind: socket.SocketKind, label: str, proto: int = 0) -> socket.socket:
    """A non-blocking socket bound to ip:port (port 0: any); streams may share a port, as SIPp's
    -t t1 connection shares -p with its listener."""
    try:
        family, _, _, _, address = socket.getaddrinfo(ip, port, type=kind, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as error:
        raise BindError(f"cannot bind {label} {ip}:{port}: {error.strerror}") from None
    sock = socket.socket(family, kind, proto)
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
    protocol_name = "UDP"

    def __init__(self, on_message: OnMessage) -> None:
        self._on_message = on_message
        self._transport: asyncio.DatagramTransport | None = None
        self.local_address: Address = ("", 0)
        self.send_errors = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)
        self.local_address = socket_address(transport.get_extra_info("sockname"))

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._on_message(data, socket_address(addr), self)

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
    sock = bound_socket(ip, port, socket.SOCK_DGRAM, "UDP")
    protocol = UdpTransport(on_message)
    try:
        await asyncio.get_running_loop().create_datagram_endpoint(lambda: protocol, sock=sock)
    except OSError as error:
        sock.close()
        raise BindError(f"cannot bind UDP {ip}:{port}: {error.strerror or error}") from None
    return protocol


# ---------------------------------------------------------------------- streams
class SipFramer:
    """Cuts a byte stream into SIP messages by Content-Length (TCP, TLS, SCTP)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """The whole messages the stream now holds; SipParseError (buffer dropped) if it is not SIP."""
        buffer = self._buffer
        buffer += data
        messages: list[bytes] = []
        while buffer:
            if buffer[0] in (13, 10) and not buffer.strip(b"\r\n"):
                buffer.clear()  # keep-alive CRLFs only
                break
            try:
                end = find_message_end(buffer)
            except SipParseError:
                buffer.clear()
                raise
            if end is None:
                break
            message = bytes(buffer[:end])
            del buffer[:end]
            messages.append(message.lstrip(b"\r\n") if message[:1] in (b"\r", b"\n") else message)
        return messages


class StreamConnection(asyncio.Protocol):
    """One connection of a stream transport (TCP, TLS, WebSocket); replies go back on it.

    An accepted TLS connection does its handshake here rather than in the server, so a
    failed handshake is reported (asyncio's server would drop it without a word).
    Subclasses say how received bytes become SIP messages and how a message is sent.
    """

    is_reliable = True

    def __init__(
        self,
        on_message: OnMessage,
        on_malformed: OnMalformed,
        registry: dict[Address, StreamConnection] | None = None,
        server_tls: ssl.SSLContext | None = None,
        protocol_name: str = "TCP",
    ) -> None:
        self._on_message = on_message
        self._on_malformed = on_malformed
        self._registry = registry  # the accepting listener's table of open connections
        self._server_tls = server_tls
        self._transport: asyncio.Transport | None = None
        self._handshake: asyncio.Task[None] | None = None
        self._early: list[bytes] = []  # TLS may hand over data before start_tls has returned
        self.protocol_name = protocol_name
        self.local_address: Address = ("", 0)
        self.remote_address: Address = ("", 0)
        self.send_errors = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        raw = cast(asyncio.Transport, transport)
        if self._server_tls is None:
            self._established(raw)
            return
        raw.pause_reading()  # the ClientHello is start_tls's to read
        self._handshake = asyncio.get_running_loop().create_task(self._secure(raw, self._server_tls))

    async def _secure(self, raw: asyncio.Transport, context: ssl.SSLContext) -> None:
        peer = socket_address(raw.get_extra_info("peername"))
        try:
            secured = await asyncio.get_running_loop().start_tls(raw, self, context, server_side=True)
        except (OSError, ConnectionError) as error:
            self._on_malformed(f"TLS handshake failed: {error}", b"", peer)
            raw.close()
            return
        if secured is None:  # the peer went away during the handshake
            raw.close()
            return
        self._established(secured)

    def _established(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self.local_address = socket_address(transport.get_extra_info("sockname"))
        self.remote_address = socket_address(transport.get_extra_info("peername"))
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.proto in (0, socket.IPPROTO_TCP):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._registry is not None:
            self._registry[self.remote_address] = self
        self.opened()
        early, self._early = self._early, []
        for data in early:
            self.received(data)

    def opened(self) -> None:
        """The connection (and its TLS, if any) is up: a subclass may start its own handshake."""

    def data_received(self, data: bytes) -> None:
        if self._transport is None:
            self._early.append(data)
            return
        self.received(data)

    def received(self, data: bytes) -> None:
        raise NotImplementedError

    def connection_lost(self, exc: Exception | None) -> None:
        registry = self._registry
        if registry is not None and registry.get(self.remote_address) is self:
            del registry[self.remote_address]

    def write(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            self.send_errors += 1
            return
        try:
            transport.write(data)
        except (OSError, RuntimeError):
            self.send_errors += 1

    def send(self, data: bytes, remote: Address) -> None:
        """The connection has one peer, so the remote address is not needed."""
        self.write(data)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        elif self._handshake is not None:
            self._handshake.cancel()


class TcpConnection(StreamConnection):
    """SIP straight on the byte stream (TCP and TLS), framed by Content-Length."""

    def __init__(
        self,
        on_message: OnMessage,
        on_malformed: OnMalformed,
        registry: dict[Address, StreamConnection] | None = None,
        server_tls: ssl.SSLContext | None = None,
        protocol_name: str = "TCP",
    ) -> None:
        super().__init__(on_message, on_malformed, registry, server_tls, protocol_name)
        self._framer = SipFramer()

    def received(self, data: bytes) -> None:
        try:
            messages = self._framer.feed(data)
        except SipParseError as error:
            self._on_malformed(str(error), data, self.remote_address)
            self.close()
            return
        for message in messages:
            self._on_message(message, self.remote_address, self)


ConnectionMaker = Callable[[dict[Address, StreamConnection]], StreamConnection]


class StreamListener:
    """A listening socket; sends reach a peer over the connection it opened to us.

    Bound first and listening only on listen(), so that a -t t1 client can connect out
    from the same port in between, as SIPp does with -p.
    """

    is_reliable = True

    def __init__(self, sock: socket.socket, make_connection: ConnectionMaker, protocol_name: str) -> None:
        self._sock = sock
        self._make_connection = make_connection
        self._server: asyncio.AbstractServer | None = None
        self.protocol_name = protocol_name
        self.connections: dict[Address, StreamConnection] = {}
        self.local_address: Address = socket_address(sock.getsockname())
        self.send_errors = 0

    async def listen(self) -> None:
        sock = self._sock
        try:
            sock.listen(LISTEN_BACKLOG)
            self._server = await asyncio.get_running_loop().create_server(
                lambda: self._make_connection(self.connections), sock=sock
            )
        except OSError as error:
            sock.close()
            ip, port = self.local_address
            raise BindError(
                f"cannot listen on {self.protocol_name} {ip}:{port}: {error.strerror or error}"
            ) from None

    def send(self, data: bytes, remote: Address) -> None:
        connection = self.connections.get(remote)
        if connection is None:
            self.send_errors += 1
            return
        connection.send(data, remote)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        else:
            self._sock.close()
        for connection in list(self.connections.values()):
            connection.close()


def bind_tcp_listener(
    ip: str, port: int, on_message: OnMessage, on_malformed: OnMalformed, tls: ssl.SSLContext | None = None
) -> StreamListener:
    """A TCP (or, given a server context, TLS) listener, bound but not yet listening."""
    name = "TCP" if tls is None else "TLS"
    sock = bound_socket(ip, port, socket.SOCK_STREAM, name)
    return StreamListener(
        sock, lambda registry: TcpConnection(on_message, on_malformed, registry, tls, name), name
    )


async def open_tcp_listener(
    ip: str, port: int, on_message: OnMessage, on_malformed: OnMalformed, tls: ssl.SSLContext | None = None
) -> StreamListener:
    listener = bind_tcp_listener(ip, port, on_message, on_malformed, tls)
    await listener.listen()
    return listener


async def connect_stream(
    remote: Address,
    local_ip: str,
    local_port: int,
    make_connection: Callable[[], StreamConnection],
    tls: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> StreamConnection:
    """Connect out (then the TLS handshake, given a client context; SNI only for a host name).
    BindError for the local side, OSError (refused, handshake failed) for the remote side."""
    sock = bound_socket(local_ip, local_port, socket.SOCK_STREAM, "TCP" if tls is None else "TLS")
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_connect(sock, remote)
        if tls is None:
            _, connection = await loop.create_connection(make_connection, sock=sock)
        else:
            _, connection = await loop.create_connection(
                make_connection, sock=sock, ssl=tls, server_hostname=server_hostname or ""
            )
    except BaseException:
        sock.close()
        raise
    return connection


async def open_tcp_connection(
    remote: Address,
    local_ip: str,
    on_message: OnMessage,
    on_malformed: OnMalformed,
    local_port: int = 0,
    tls: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> StreamConnection:
    name = "TCP" if tls is None else "TLS"
    return await connect_stream(
        remote,
        local_ip,
        local_port,
        lambda: TcpConnection(on_message, on_malformed, protocol_name=name),
        tls,
        server_hostname,
    )
