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
    OnMalformed,
    OnMessage,
    SipTransport,
    bind_tcp_listener,
    open_tcp_connection,
    open_udp,
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


class SipEndpoints:
    def __init__(self, settings: TransportSettings, on_data: OnMessage, on_malformed: OnMalformed) -> None:
        self.settings = settings
        self._on_data = on_data
        self._on_malformed = on_malformed
        self.remote: Address | None = None  # where requests of new client calls go, resolved
        # -rsa: the positional host, resolved, which [remote_ip]/[remote_port] (and so the
        # Request-URI) still name while packets go to -rsa's address, as in SIPp.
        self.remote_host: Address | None = None
        self.local_ip = "127.0.0.1"
        self.local_port = 0
        self.main: SipTransport | None = None  # the UDP socket every call shares (-t u1, un's listener)
        self.shared_tcp: SipTransport | None = None  # -t t1, l1, s1, ws1, wss1: the UAC's one connection
        self._tls: TlsContexts | None = None
        self._closers: list[Callable[[], None]] = []

    @property
    def bind_ip(self) -> str:
        return self.settings.local_ip or ("::" if ":" in self.local_ip else "0.0.0.0")

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
            self.local_port = int(transport.local_address[1])
            return
        listener = await self._with_port_search(self._bind_listener)
        self._closers.append(listener.close)
        self.local_port = int(listener.local_address[1])
        if not mode.per_call and is_uac and self.remote is not None:
            # SIPp binds its one connection before the listener listens: to -p when given,
            # and for SCTP always to the listener's port (socket.cpp, SIPpSocket::connect).
            from_listener_port = self.settings.local_port is not None or self._kind == "s"
            self.shared_tcp = await self._connect_shared(self.local_port if from_listener_port else 0)
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
        if kind == "s":
            return bind_sctp_listener(ip, port, self._on_data, self._on_malformed)
        if kind in ("ws", "wss"):
            return bind_ws_listener(ip, port, self._on_data, self._on_malformed, server_tls)
        return bind_tcp_listener(ip, port, self._on_data, self._on_malformed, server_tls)

    async def _connect_shared(self, local_port: int) -> SipTransport:
        assert self.remote is not None
        try:
            return await self._connect(self.remote, local_port)
        except BindError:
            raise
        except OSError as error:
            host, port = self.remote
            raise InvalidValue(
                f"cannot connect to {host}:{port} over {self.settings.mode.protocol_name}: "
                f"{_connect_failure(error)}",
                setting="remote_host",
            ) from None

    async def _connect(self, remote: Address, local_port: int) -> SipTransport:
        """A connection of the run's kind; BindError for the local side, OSError for the remote."""
        ip, kind, tls = self.bind_ip, self._kind, self._tls
        client_tls = tls.client if tls is not None else None
        if kind == "s":
            return await open_sctp_connection(remote, ip, self._on_data, self._on_malformed, local_port)
        if kind in ("ws", "wss"):
            return await open_ws_connection(
                remote, ip, self._on_data, self._on_malformed, local_port, client_tls, self._server_name
            )
        return await open_tcp_connection(
            remote, ip, self._on_data, self._on_malformed, local_port, client_tls, self._server_name
        )

    @property
    def shared(self) -> SipTransport:
        """The transport calls share when they have none of their own."""
        transport = self.shared_tcp or self.main
        assert transport is not None
        return transport

    async def open_for_call(self, remote: Address) -> SipTransport:
        """-t un: a UDP socket of the call's own; -t tn, ln, sn, wsn, wssn: its own connection
        (OSError if refused)."""
        if self.settings.mode is TransportMode.UDP_PER_CALL:
            return await open_udp(self.bind_ip, 0, self._on_data)
        return await self._connect(remote, 0)

    def add_closer(self, close: Callable[[], None]) -> None:
        self._closers.append(close)

    def close(self) -> None:
        for close in reversed(self._closers):
            with contextlib.suppress(OSError):
                close()
        self._closers.clear()
