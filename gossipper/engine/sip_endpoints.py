"""The run's SIP sockets: where it listens, whom it sends to, and a socket per call for -t ?n.

One place opens them all, so every socket the run opened is closed at its end, and the
failure of the run's own port is named as that setting's (a per-call socket's is not).
Every -t kind goes through here: UDP, TCP, TLS, SCTP, and gossipper's ws/wss.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from gossipper.engine.settings import Address, TransportMode, TransportSettings
from gossipper.errors import BindError, InvalidValue
from gossipper.sip.sctp import bind_sctp_listener, check_sctp_available, open_sctp_connection
from gossipper.sip.tls import TlsContexts, tls_contexts
from gossipper.sip.transport import (
    ListenerGuard,
    OnMalformed,
    OnMessage,
    OnQuietClosed,
    OnRefused,
    SipTransport,
    StreamConnection,
    StreamLimits,
    bind_tcp_listener,
    open_tcp_connection,
    open_udp,
    os_sockets,
)
from gossipper.sip.websocket import bind_ws_listener, open_ws_connection

DEFAULT_SIP_PORT = 5060


def resolve_address(setting: str, host: str, port: int) -> Address:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as error:
        raise InvalidValue(f"cannot resolve {host!r}: {error.strerror}", setting=setting) from None
    address = infos[0][4]
    return str(address[0]), int(address[1])


def local_ip_toward(remote: Address | None) -> str:
    """The address the kernel would use toward the peer (no packet is sent)."""
    if remote is None:
        return "127.0.0.1"
    family = socket.AF_INET6 if ":" in remote[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(remote)
            return str(probe.getsockname()[0])
        except OSError:
            return "::1" if family == socket.AF_INET6 else "127.0.0.1"


_Bound = TypeVar("_Bound")
_Transport = TypeVar("_Transport", bound=SipTransport)


def _connect_failure(error: OSError) -> str:
    """Why a connection failed, in words: an SSL error's errno is OpenSSL's, not the system's."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS certificate verify failed: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        return f"TLS handshake failed: {error.reason or error}"
    return os.strerror(error.errno) if error.errno else str(error)


class BoundListener(SipTransport, Protocol):
    """A stream listener bound to its port and not yet listening."""

    async def listen(self) -> None: ...


class SharedConnection:
    """-t ?1's one connection as calls hold it: SIPp reconnects its socket in place
    (-max_reconnect), so a call kept across a reconnection sends on the new connection."""

    is_reliable = True

    def __init__(self, connection: SipTransport) -> None:
        self.connection = connection

    @property
    def local_address(self) -> Address:
        return self.connection.local_address

    @property
    def protocol_name(self) -> str:
        return self.connection.protocol_name

    def send(self, data: bytes, remote: Address) -> None:
        self.connection.send(data, remote)

    def close(self) -> None:
        self.connection.close()


class SipEndpoints:
    def __init__(
        self,
        settings: TransportSettings,
        on_data: OnMessage,
        on_malformed: OnMalformed,
        on_refused: OnRefused | None = None,
        on_quiet_closed: OnQuietClosed | None = None,
    ) -> None:
        self.settings = settings
        self._on_data = on_data
        self._on_malformed = on_malformed
        limits = StreamLimits(
            max_connections=max(1, settings.max_sockets - 1),  # the listening socket counts
            max_message_bytes=settings.max_message_bytes,
            idle_timeout_s=settings.idle_timeout_s,
        )
        self._guard = ListenerGuard(limits, on_refused, on_quiet_closed)
        self.remote: Address | None = None  # where requests of new client calls go, resolved
        # -rsa: the positional host, resolved, which [remote_ip]/[remote_port] (and so the
        # Request-URI) still name while packets go to -rsa's address, as in SIPp.
        self.remote_host: Address | None = None
        self.local_ip = "127.0.0.1"
        self.local_port = 0
        self.main: SipTransport | None = None  # the UDP socket every call shares (-t u1, un's listener)
        self.shared_tcp: SharedConnection | None = None  # -t t1, l1, s1, ws1, wss1: the UAC's one connection
        self._tls: TlsContexts | None = None
        self._closers: list[Callable[[], None]] = []
        self._closing = False  # the run closes its sockets: a connection lost now is no news
        self.on_shared_lost: Callable[[], None] | None = None  # the peer closed -t ?1's connection
        # -t un/tn: each call socket and how many live calls use it; past -max_socket new
        # calls take turns on the open ones (SIPp's new_sipp_call_socket), closed with the last.
        self._call_sockets: dict[SipTransport, int] = {}
        # -t ui: the local addresses (the first -inf file's -ip_field, line by line) and their sockets
        self.per_ip_addresses: list[str] = []
        self._per_ip: dict[str, SipTransport] = {}
        self._next_shared = 0

    @property
    def bind_ip(self) -> str:
        if self.per_ip_addresses:
            return self.per_ip_addresses[0]  # -t ui: SIPp binds its main socket to the first line's
        if self.settings.local_ip or self.settings.bind_local:
            return self.local_ip  # -i, or -bind_local's own address toward the peer
        return "::" if ":" in self.local_ip else "0.0.0.0"

    def _customize(self, transport: _Transport) -> _Transport:
        """SIPp's sipp_customize_socket: -buff_size and -bind_to_device on each SIP socket."""
        settings = self.settings
        for sock in os_sockets(transport):
            if settings.buffer_bytes is not None:
                for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
                    sock.setsockopt(socket.SOL_SOCKET, option, settings.buffer_bytes)
            if settings.bind_to_device is not None:
                try:
                    device = settings.bind_to_device.encode()
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device)
                except OSError as error:
                    transport.close()
                    raise BindError(
                        f"cannot bind to device {settings.bind_to_device!r}: {error.strerror or error}"
                    ).for_setting("bind_to_device") from None
        return transport

    @property
    def _kind(self) -> str:
        """The protocol letters of -t: u, t, l, s, ws or wss."""
        return self.settings.mode.value[:-1]

    @property
    def _server_name(self) -> str | None:
        """TLS SNI: the positional host when it is a name, as SIPp sends it only then."""
        remote = self.settings.remote
        if remote is None:
            return None
        try:
            ipaddress.ip_address(remote[0])
        except ValueError:
            return remote[0]
        return None

    def resolve_remote(self) -> None:
        settings = self.settings
        if settings.remote is not None:
            self.remote = resolve_address("remote_host", *settings.remote)
        if settings.send_to is not None:
            self.remote_host = self.remote
            self.remote = resolve_address("remote_sending_address", *settings.send_to)
        self.local_ip = settings.local_ip or local_ip_toward(self.remote)

    async def open(self, is_uac: bool) -> None:
        """The run's listening socket, and for a -t ?1 UAC its one connection to the peer."""
        mode = self.settings.mode
        if self._kind == "s":
            check_sctp_available(socket.AF_INET6 if ":" in self.bind_ip else socket.AF_INET)
        if mode.secure:
            self._tls = tls_contexts(self.settings.tls)
        if not mode.reliable:
            transport = await self._with_port_search(lambda port: open_udp(self.bind_ip, port, self._on_data))
            self.main = transport
            self._closers.append(transport.close)
            self._customize(transport)
            self.local_port = int(transport.local_address[1])
            if self.per_ip_addresses:
                self._per_ip[self.bind_ip] = transport
            return
        listener = await self._with_port_search(self._bind_listener)
        self._closers.append(listener.close)
        self._customize(listener)
        self.local_port = int(listener.local_address[1])
        if not mode.per_call and is_uac and self.remote is not None:
            # SIPp binds its one connection before the listener listens: to -p when given,
            # and for SCTP always to the listener's port (socket.cpp, SIPpSocket::connect).
            from_listener_port = self.settings.local_port is not None or self._kind == "s"
            self.shared_tcp = SharedConnection(
                await self._connect_shared(self.local_port if from_listener_port else 0)
            )
            self._closers.append(self.shared_tcp.close)
        await listener.listen()

    async def _with_port_search(self, bind: Callable[[int], Awaitable[_Bound]]) -> _Bound:
        settings = self.settings
        ports = [settings.local_port] if settings.local_port is not None else [DEFAULT_SIP_PORT, 0]
        last_error: BindError | None = None
        for port in ports:
            try:
                return await bind(port)
            except BindError as error:
                last_error = error
        assert last_error is not None
        raise last_error.for_setting("local_port")

    async def _bind_listener(self, port: int) -> BoundListener:
        ip, kind, tls = self.bind_ip, self._kind, self._tls
        server_tls = tls.server if tls is not None else None
        on_data, on_malformed, guard = self._on_data, self._on_malformed, self._guard
        if kind == "s":
            return bind_sctp_listener(ip, port, on_data, on_malformed, guard)
        if kind in ("ws", "wss"):
            return bind_ws_listener(ip, port, on_data, on_malformed, server_tls, guard)
        return bind_tcp_listener(ip, port, on_data, on_malformed, server_tls, guard)

    async def _connect_shared(self, local_port: int) -> SipTransport:
        """-t ?1's connection: what arrives on it is reported as the SharedConnection's."""
        assert self.remote is not None

        def on_data(data: bytes, source: Address, _connection: SipTransport) -> None:
            assert self.shared_tcp is not None
            self._on_data(data, source, self.shared_tcp)

        try:
            connection = self._customize(await self._connect(self.remote, local_port, on_data))
        except BindError:
            raise
        except OSError as error:
            host, port = self.remote
            raise InvalidValue(
                f"cannot connect to {host}:{port} over {self.settings.mode.protocol_name}: "
                f"{_connect_failure(error)}",
                setting="remote_host",
            ) from None
        if isinstance(connection, StreamConnection):
            connection.on_lost = self._shared_lost
        return connection

    def _shared_lost(self) -> None:
        if not self._closing and self.on_shared_lost is not None:
            self.on_shared_lost()

    async def reconnect_shared(self) -> None:
        """SIPp's reset_connection: a new connection in place of -t ?1's lost one."""
        assert self.shared_tcp is not None
        self.shared_tcp.connection = await self._connect_shared(0)

    async def _connect(
        self, remote: Address, local_port: int, on_data: OnMessage | None = None
    ) -> SipTransport:
        """A connection of the run's kind; BindError for the local side, OSError for the remote."""
        ip, kind, tls = self.bind_ip, self._kind, self._tls
        on_data = on_data or self._on_data
        client_tls = tls.client if tls is not None else None
        max_bytes = self.settings.max_message_bytes
        if kind == "s":
            return await open_sctp_connection(remote, ip, on_data, self._on_malformed, local_port, max_bytes)
        if kind in ("ws", "wss"):
            return await open_ws_connection(
                remote, ip, on_data, self._on_malformed, local_port, client_tls, self._server_name, max_bytes
            )
        return await open_tcp_connection(
            remote, ip, on_data, self._on_malformed, local_port, client_tls, self._server_name, max_bytes
        )

    @property
    def shared(self) -> SipTransport:
        """The transport calls share when they have none of their own."""
        transport = self.shared_tcp or self.main
        assert transport is not None
        return transport

    async def open_for_call(self, remote: Address) -> SipTransport:
        """-t un: a UDP socket of the call's own; -t tn, ln, sn, wsn, wssn: its own connection
        (OSError if refused). Past -max_socket open ones, an open one in turn. Give each back
        with release_for_call."""
        sockets = self._call_sockets
        if len(sockets) + 1 >= self.settings.max_sockets and sockets:  # the main socket counts
            transports = list(sockets)
            transport = transports[self._next_shared % len(transports)]
            self._next_shared += 1
        elif self.settings.mode is TransportMode.UDP_PER_CALL:
            transport = self._customize(await open_udp(self.bind_ip, 0, self._on_data))
        else:
            transport = self._customize(await self._connect(remote, 0))
        sockets[transport] = sockets.get(transport, 0) + 1
        return transport

    async def open_per_ip(self, is_uac: bool) -> None:
        """-t ui: a server listens on every address of the file too, on the same port (SIPp)."""
        if not is_uac:
            for ip in self.per_ip_addresses:
                await self.socket_for_ip(ip)

    async def socket_for_ip(self, ip: str) -> SipTransport:
        """-t ui: the socket of this local address, opened on the run's port the first time."""
        transport = self._per_ip.get(ip)
        if transport is None:
            try:
                transport = self._customize(await open_udp(ip, self.local_port, self._on_data))
            except BindError as error:
                raise error.for_setting("ip_field") from None
            self._per_ip[ip] = transport
            self._closers.append(transport.close)
        return transport

    def release_for_call(self, transport: SipTransport) -> None:
        """A call that had its own socket ended: close the socket once no call uses it."""
        users = self._call_sockets.get(transport, 1) - 1
        if users > 0:
            self._call_sockets[transport] = users
            return
        self._call_sockets.pop(transport, None)
        transport.close()

    def add_closer(self, close: Callable[[], None]) -> None:
        self._closers.append(close)

    def close(self) -> None:
        self._closing = True
        for close in reversed(self._closers):
            with contextlib.suppress(OSError):
                close()
        self._closers.clear()
