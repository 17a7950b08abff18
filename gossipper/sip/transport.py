"""SIP over UDP, TCP and TLS on asyncio protocols (uvloop when it is the running loop).

Transports only move bytes: every datagram or framed stream message goes to the
dispatcher's callback unparsed (a stream's CRLF keep-alives too, for it to count and
answer), and send failures are counted, never raised, because one unreachable peer must
not stop a run of thousands of calls. Nothing a peer sent is dropped unseen: what a
closing connection held of an unfinished message is reported as malformed, and so are
connections a listener must refuse at the open-files limit (to their own callback). The stream kinds share
the connection and listener bookkeeping here; WebSocket framing lives in
`sip.websocket` and SCTP's message-per-send sockets in `sip.sctp`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from gossipper import pure_python_sip
from gossipper.errors import BindError
from gossipper.sip.message import DEFAULT_MAX_MESSAGE_BYTES, MessageTooLarge, SipParseError, find_message_end

Address = tuple[str, int]
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024
LISTEN_BACKLOG = 1024
ACCEPT_BATCH = 128  # connections taken (or refused) per wake-up of a listener
ACCEPT_RETRY_S = 0.1  # a listener that could take nothing off its queue looks again this much later
SPARE_DESCRIPTORS = 2  # a listener's reserve for the open-files limit: one to refuse on, one to log
RECEIVE_CHUNK = 65536
CONNECT_READY_TIMEOUT_S = 10.0  # a TLS handshake or WebSocket upgrade that takes longer has failed
MAX_KEEPALIVE_BYTES = 1024  # line ends between stream messages held back while waiting for a ping
# The reason a stream's unfinished message is reported with when its connection closes; the
# receiver counts these apart (truncated_messages) from messages that failed to parse.
INCOMPLETE_AT_CLOSE = "connection closed inside a message (an incomplete message was left)"
# The reason a stream message over the receiver's limit is reported with (messages_too_large).
TOO_LARGE = "message too large"
# A listener's connection whose peer stops inside a message (or inside its TLS handshake or
# WebSocket upgrade) is closed once it has sent nothing for this long: 64 x T1, by when any
# transaction the message could belong to has timed out at its sender.
STALL_TIMEOUT_S = 32.0
SWEEP_MAX_S = 1.0  # the longest between two looks at a listener's connections for quiet ones


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
# A listener refused connections at the open-files limit: (the listener, as "TCP ip:port";
# how many were refused now; why; whether this begins a burst of refusals, to be logged).
OnRefused = Callable[[str, int, str, bool], None]
# A listener closed a connection that had gone quiet: (the listener, the peer, why).
OnQuietClosed = Callable[[str, Address, str], None]


@dataclass(frozen=True)
class StreamLimits:
    """What the peers of one listener may hold of this process, each refusal counted.

    Without them one peer could open connections until the descriptors run out, or
    announce a 16 MB body on each and have it buffered; a connection left silent would be
    kept forever.
    """

    max_connections: int = 50_000  # accepted at once; past it a new one is closed at once
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES  # a longer message is dropped unread
    idle_timeout_s: float = 0.0  # nothing sent or received this long closes it (0: never)
    stall_timeout_s: float = STALL_TIMEOUT_S  # a message begun and left unfinished this long


@dataclass(frozen=True)
class ListenerGuard:
    """A listener's limits and whom it tells of each connection they cost."""

    limits: StreamLimits = StreamLimits()
    on_refused: OnRefused | None = None
    on_quiet_closed: OnQuietClosed | None = None


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
        except ValueError:  # uvloop takes numeric addresses only: a name is resolved here
            self._send_resolving(transport, data, remote)
        except OSError:
            self.send_errors += 1

    def _send_resolving(self, transport: asyncio.DatagramTransport, data: bytes, remote: Address) -> None:
        try:
            family = transport.get_extra_info("socket").family
            numeric = socket.getaddrinfo(remote[0], remote[1], family, socket.SOCK_DGRAM)[0][4]
            transport.sendto(data, numeric)
        except (OSError, ValueError, IndexError):
            self.send_errors += 1

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def _choose_native_io() -> tuple[Callable[..., Any], Callable[..., Any]] | None:
    """The native batched datagram I/O when built, unless GOSSIPPER_SIP_BACKEND=python."""
    if pure_python_sip():
        return None
    try:
        from gossipper.sip._sipcore import recv_batch, send_batch
    except ImportError:
        return None
    return recv_batch, send_batch


_native_io = _choose_native_io()
UDP_BACKEND = "native" if _native_io is not None else "python"


async def open_udp(ip: str, port: int, on_message: OnMessage) -> SipTransport:
    sock = bound_socket(ip, port, socket.SOCK_DGRAM, "UDP")
    loop = asyncio.get_running_loop()
    if _native_io is not None:
        from gossipper.sip.udp_batched import BatchedUdpTransport  # it imports this module's types

        return BatchedUdpTransport(sock, on_message, loop, _native_io)
    protocol = UdpTransport(on_message)
    try:
        await loop.create_datagram_endpoint(lambda: protocol, sock=sock)
    except OSError as error:
        sock.close()
        raise BindError(f"cannot bind UDP {ip}:{port}: {error.strerror or error}") from None
    return protocol


# ---------------------------------------------------------------------- streams
@dataclass(frozen=True)
class Oversized:
    """A stream message over the receiver's limit, dropped unread: why, and its first bytes."""

    reason: str
    head: bytes


class SipFramer:
    """Cuts a byte stream into SIP messages by Content-Length (TCP, TLS, SCTP).

    CR/LF bytes between messages are RFC 5626 keep-alives and are handed on as what they
    are (only CR/LF bytes) for the receiver to count: a double CRLF "ping" as soon as it is
    whole, a lone CRLF ("pong", or a stray line end) once the next message starts or the
    stream ends, since until then it may be the first half of a ping. A message longer
    than max_message_bytes is handed on as Oversized once its header section is whole, and
    the rest of it is dropped as it arrives, so the stream goes on and nothing piles up.
    """

    def __init__(self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self._buffer = bytearray()
        self._gap = bytearray()  # line ends since the last message, not yet known as ping or pong
        self._max = max_message_bytes
        self._skip = 0  # bytes of an oversized message still to come, dropped as they arrive

    @property
    def holds_partial(self) -> bool:
        """A message has begun and not ended (so its peer owes the rest)."""
        return bool(self._buffer) or self._skip > 0

    def feed(self, data: bytes) -> list[bytes | Oversized]:
        """The whole messages, keep-alives and oversized messages the stream now holds;
        SipParseError (buffer dropped) if it is not SIP."""
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
        buffer = self._buffer
        buffer += data
        messages: list[bytes | Oversized] = []
        while buffer:
            if buffer[0] in (13, 10):
                self._take_line_ends(messages)
                if not buffer:
                    break
            if self._gap:  # a lone CRLF before this message: a pong
                messages.append(bytes(self._gap))
                self._gap.clear()
            try:
                end = find_message_end(buffer, self._max)
            except MessageTooLarge as error:
                messages.append(Oversized(str(error), bytes(buffer[: min(error.end, 512)])))
                self._skip = max(0, error.end - len(buffer))
                del buffer[: error.end]
                continue
            except SipParseError:
                buffer.clear()
                raise
            if end is None:
                break
            messages.append(bytes(buffer[:end]))
            del buffer[:end]
        return messages

    def _take_line_ends(self, out: list[bytes | Oversized]) -> None:
        """Move the buffer's leading CR/LF bytes to the gap; each ping in it goes out now."""
        buffer, gap = self._buffer, self._gap
        count = 0
        while count < len(buffer) and buffer[count] in (13, 10):
            count += 1
        gap += buffer[:count]
        del buffer[:count]
        while True:
            end = _ping_end(gap)
            if end < 0:
                break
            out.append(bytes(gap[:end]))
            del gap[:end]
        if len(gap) > MAX_KEEPALIVE_BYTES:  # CRs without end: not a ping, but not kept forever
            out.append(bytes(gap))
            gap.clear()

    def deliver(
        self,
        data: bytes,
        remote: Address,
        sender: SipTransport,
        on_message: OnMessage,
        on_malformed: OnMalformed,
    ) -> bool:
        """Hand on each whole message; False when the stream is not SIP: that is reported, and
        the caller closes the connection, whose framing is lost."""
        try:
            messages = self.feed(data)
        except SipParseError as error:
            on_malformed(str(error), data, remote)
            return False
        for message in messages:
            if isinstance(message, Oversized):
                on_malformed(f"{TOO_LARGE}: {message.reason}", message.head, remote)
            else:
                on_message(message, remote, sender)
        return True

    def end(
        self, remote: Address, sender: SipTransport, on_message: OnMessage, on_malformed: OnMalformed
    ) -> None:
        """The stream is over: a keep-alive still waiting is handed on, and the bytes of a
        message it cut off are reported, so that nothing the peer sent goes uncounted (the
        rest of an oversized message was counted with it)."""
        if self._gap:
            on_message(bytes(self._gap), remote, sender)
            self._gap.clear()
        self._skip = 0
        if self._buffer:
            left = bytes(self._buffer)
            self._buffer.clear()
            on_malformed(INCOMPLETE_AT_CLOSE, left, remote)


def _ping_end(gap: bytes | bytearray) -> int:
    """Where the first double line end (CRLF CRLF, or bare LF LF) in the gap ends; -1: none yet."""
    crlf = gap.find(b"\n\r\n")
    lf = gap.find(b"\n\n")
    if crlf < 0 and lf < 0:
        return -1
    if lf < 0 or 0 <= crlf < lf:
        return crlf + 3
    return lf + 2


class TlsLayer:
    """TLS over whatever carries the bytes, on memory BIOs: the same code for both sides and
    both event loops, and every handshake failure is seen here (asyncio's TLS server would
    drop a failed handshake without a word)."""

    def __init__(self, context: ssl.SSLContext, server_side: bool, server_hostname: str | None) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(
            self._incoming, self._outgoing, server_side=server_side, server_hostname=server_hostname
        )
        self.handshaken = False

    def advance(self) -> bool:
        """Go on with the handshake; True once it is done. ssl.SSLError if it failed."""
        if not self.handshaken:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                return False
            self.handshaken = True
        return True

    def receive(self, data: bytes) -> tuple[bytes, bool]:
        """The plaintext this data completes, and whether the peer ended TLS (close_notify)."""
        self._incoming.write(data)
        if not self.advance():
            return b"", False
        chunks: list[bytes] = []
        while True:
            try:
                chunk = self._tls.read(RECEIVE_CHUNK)
            except ssl.SSLWantReadError:
                return b"".join(chunks), False
            except ssl.SSLZeroReturnError:
                return b"".join(chunks), True
            if not chunk:
                return b"".join(chunks), True
            chunks.append(chunk)

    def encrypt(self, data: bytes) -> None:
        self._tls.write(data)

    def end(self) -> None:
        """Our close_notify, if the session is up."""
        if self.handshaken:
            with contextlib.suppress(ssl.SSLError):
                self._tls.unwrap()

    def version(self) -> str | None:
        return self._tls.version()

    def output(self) -> bytes:
        return self._outgoing.read()


class StreamConnection(asyncio.Protocol):
    """One connection of a stream transport (TCP, TLS, WebSocket); replies go back on it.

    `ready` is done when the connection can carry SIP: at once for TCP, after the TLS
    handshake for TLS, after the upgrade for WebSocket; a client waits for it. Subclasses
    say how received bytes become SIP messages and how a message is sent.
    """

    is_reliable = True

    def __init__(
        self,
        on_message: OnMessage,
        on_malformed: OnMalformed,
        registry: dict[Address, StreamConnection] | None = None,
        tls: TlsLayer | None = None,
        protocol_name: str = "TCP",
    ) -> None:
        self._on_message = on_message
        self._on_malformed = on_malformed
        self._registry = registry  # the accepting listener's table of open connections
        self._tls = tls
        self._transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.protocol_name = protocol_name
        self.local_address: Address = ("", 0)
        self.remote_address: Address = ("", 0)
        self.send_errors = 0
        self.on_lost: Callable[[], None] | None = None  # told when the connection is gone
        self.last_received = self.last_sent = time.monotonic()  # for a listener's quiet sweep

    @property
    def accepted(self) -> bool:
        """A server side: accepted connections live in their listener's table."""
        return self._registry is not None

    @property
    def tls_version(self) -> str | None:
        return self._tls.version() if self._tls is not None else None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self.local_address = socket_address(transport.get_extra_info("sockname"))
        self.remote_address = socket_address(transport.get_extra_info("peername"))
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._registry is not None:
            self._registry[self.remote_address] = self
        if self._tls is None:
            self.opened()
            return
        self._tls_step(b"")  # a client's ClientHello goes out now

    def opened(self) -> None:
        """The connection (and its TLS, if any) is up: by default it can carry SIP now; a
        subclass with a handshake of its own calls set_ready once that is done."""
        self.set_ready()

    def set_ready(self, failure: Exception | None = None) -> None:
        if self.ready.done():
            return
        if failure is None:
            self.ready.set_result(None)
        else:
            self.ready.set_exception(failure)
            self.ready.exception()  # a server side has nobody awaiting it: mark it seen

    @property
    def holds_partial(self) -> bool:
        """Its peer is inside something it has to finish: a TLS handshake, a WebSocket
        upgrade, or a message."""
        return not self.ready.done() or self.message_pending()

    def message_pending(self) -> bool:
        """A subclass says whether its framing holds part of a message."""
        return False

    def data_received(self, data: bytes) -> None:
        self.last_received = time.monotonic()
        if self._tls is None:
            self.received(data)
            return
        self._tls_step(data)

    def _tls_step(self, data: bytes) -> None:
        tls = self._tls
        assert tls is not None
        was_up = tls.handshaken
        try:
            if data:
                plaintext, ended = tls.receive(data)
            else:
                tls.advance()
                plaintext, ended = b"", False
        except ssl.SSLError as error:
            self._flush_tls()  # the alert, so the peer learns why
            self._tls_failed(error, was_up)
            return
        self._flush_tls()
        if tls.handshaken and not was_up:
            self.opened()
        if plaintext:
            self.received(plaintext)
        if ended and self._transport is not None:
            self._transport.close()

    def _tls_failed(self, error: ssl.SSLError, was_up: bool) -> None:
        what = "TLS error" if was_up else "TLS handshake failed"
        if not self.ready.done() and not self.accepted:
            self.set_ready(error)  # a client: the one awaiting the connection hears why
        else:
            self._on_malformed(f"{what}: {error}", b"", self.remote_address)
        if self._transport is not None:
            self._transport.close()

    def _flush_tls(self) -> None:
        assert self._tls is not None
        output = self._tls.output()
        if output and self._transport is not None and not self._transport.is_closing():
            self._transport.write(output)

    def received(self, data: bytes) -> None:
        raise NotImplementedError

    def connection_lost(self, exc: Exception | None) -> None:
        registry = self._registry
        if registry is not None and registry.get(self.remote_address) is self:
            del registry[self.remote_address]
        self.set_ready(ConnectionError("connection closed before it was ready"))
        self.stream_ended()
        if self.on_lost is not None:
            self.on_lost()

    def stream_ended(self) -> None:
        """The connection is gone: a subclass reports here what its framing held of a message
        the peer never finished."""

    def write(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            self.send_errors += 1
            return
        self.last_sent = time.monotonic()
        try:
            if self._tls is None:
                transport.write(data)
                return
            self._tls.encrypt(data)
            self._flush_tls()
        except (OSError, RuntimeError, ssl.SSLError):
            self.send_errors += 1

    def send(self, data: bytes, remote: Address) -> None:
        """The connection has one peer, so the remote address is not needed."""
        self.write(data)

    def close(self) -> None:
        if self._transport is None:
            return
        if self._tls is not None and not self._transport.is_closing():
            self._tls.end()
            self._flush_tls()
        self._transport.close()

    def abort(self) -> None:
        """Close now, dropping what waits to be sent: a quiet peer may not be reading either."""
        if self._transport is not None:
            self._transport.abort()


class TcpConnection(StreamConnection):
    """SIP straight on the byte stream (TCP and TLS), framed by Content-Length."""

    def __init__(
        self,
        on_message: OnMessage,
        on_malformed: OnMalformed,
        registry: dict[Address, StreamConnection] | None = None,
        tls: TlsLayer | None = None,
        protocol_name: str = "TCP",
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        super().__init__(on_message, on_malformed, registry, tls, protocol_name)
        self._framer = SipFramer(max_message_bytes)

    def message_pending(self) -> bool:
        return self._framer.holds_partial

    def received(self, data: bytes) -> None:
        if not self._framer.deliver(data, self.remote_address, self, self._on_message, self._on_malformed):
            self.close()

    def stream_ended(self) -> None:
        self._framer.end(self.remote_address, self, self._on_message, self._on_malformed)
        super().stream_ended()


ConnectionMaker = Callable[[dict[Address, StreamConnection]], StreamConnection]


class Acceptor:
    """Takes a listening socket's connections on the event loop, and refuses them out loud
    past its cap on open connections and at the open-files limit.

    Past the cap (open_count() reaching max_open) a new connection is taken and closed at
    once, so its peer learns at once, counted and reported like those below.

    When accept() fails with EMFILE or ENFILE the connection cannot be taken: asyncio's
    server logs a traceback and stops accepting for a second, leaving it queued, and
    uvloop's (libuv) takes it on a spare descriptor and closes it; neither tells its caller.
    Here each such connection is taken on a spare descriptor of ours and closed at once (its
    peer learns at once), counted, and reported (on_refused; the first of a burst says it
    begins one, and a second spare is given up for it, since logging it may have a file to
    open), and the listener accepts again as soon as descriptors are free. Any other
    accept() failure is reported the same way and retried ACCEPT_RETRY_S later.
    """

    def __init__(
        self,
        sock: socket.socket,
        label: str,
        on_accepted: Callable[[socket.socket], None],
        on_refused: OnRefused | None,
        open_count: Callable[[], int],
        max_open: int,
    ) -> None:
        self.socket = sock
        self.refused = 0  # connections refused since the start
        self._label = label
        self._on_accepted = on_accepted
        self._on_refused = on_refused
        self._open_count = open_count
        self._max_open = max_open
        self._loop = asyncio.get_running_loop()
        self._spares: list[int] = []  # descriptors held in reserve, given up at the limit
        self._reserve_spares()
        self._in_burst = False  # failing since the last connection taken: reported already
        self._retry: asyncio.TimerHandle | None = None
        self._closed = False
        self._loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                connection, _ = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the peer gave up while queued
            except OSError as error:
                self._cannot_accept(error)
                return
            if self._open_count() >= self._max_open:
                self._refuse_over_cap(connection)
                continue
            if self._in_burst:
                self._in_burst = False
                self._reserve_spares()  # what the burst gave up and could not take back
            self._on_accepted(connection)

    def _refuse_over_cap(self, connection: socket.socket) -> None:
        connection.close()
        first = not self._in_burst
        self._in_burst = True
        self.refused += 1
        self._report(1, f"{self._max_open} connections are open, the most it takes", first)

    def _cannot_accept(self, error: OSError) -> None:
        at_limit = error.errno in (errno.EMFILE, errno.ENFILE)
        first = not self._in_burst
        self._in_burst = True
        if at_limit:  # a descriptor to refuse on, and at a burst's start one for its log line
            self._release_spares(2 if first else 1)
        reason = f"{error.strerror or error} ({errno.errorcode.get(error.errno or 0, error.errno)})"
        if first:
            self._report(0, reason, first_of_burst=True)
        refused = self._refuse_queued() if at_limit else 0
        if refused:
            self.refused += refused
            self._report(refused, reason, first_of_burst=False)
        self._reserve_spares()
        if not refused:  # nothing left the queue: try again later, not in a busy loop
            self._loop.remove_reader(self.socket.fileno())
            self._retry = self._loop.call_later(ACCEPT_RETRY_S, self._resume)

    def _report(self, refused: int, reason: str, first_of_burst: bool) -> None:
        if self._on_refused is not None:
            self._on_refused(self._label, refused, reason, first_of_burst)

    def _refuse_queued(self) -> int:
        """Take each queued connection on a descriptor a spare left free and close it at once;
        -> how many (none if no descriptor is free)."""
        refused = 0
        while refused < ACCEPT_BATCH:
            try:
                connection, _ = self.socket.accept()
            except ConnectionAbortedError:
                continue
            except OSError:  # none queued, or no descriptor to take one on
                break
            connection.close()
            refused += 1
        return refused

    def _reserve_spares(self) -> None:
        while len(self._spares) < SPARE_DESCRIPTORS:
            try:
                self._spares.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
            except OSError:
                return

    def _release_spares(self, count: int) -> None:
        for _ in range(min(count, len(self._spares))):
            os.close(self._spares.pop())

    def _resume(self) -> None:
        self._retry = None
        if not self._closed:
            self._reserve_spares()
            self._loop.add_reader(self.socket.fileno(), self._readable)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._retry is not None:
            self._retry.cancel()
        else:
            self._loop.remove_reader(self.socket.fileno())
        self._release_spares(len(self._spares))


class QuietPeer(Protocol):
    """What the quiet sweep reads of a connection."""

    @property
    def remote_address(self) -> Address: ...
    @property
    def last_received(self) -> float: ...
    @property
    def last_sent(self) -> float: ...
    @property
    def holds_partial(self) -> bool: ...
    def abort(self) -> None: ...


def quiet_reason(connection: QuietPeer, now: float, limits: StreamLimits) -> str | None:
    """Why a connection has been quiet too long to keep, or None to keep it."""
    silent = now - max(connection.last_received, connection.last_sent)
    if 0 < limits.idle_timeout_s <= silent:
        limit = limits.idle_timeout_s
        return f"nothing sent or received for {silent:.1f} s, past the idle timeout of {limit:g} s"
    stalled = now - connection.last_received
    if 0 < limits.stall_timeout_s <= stalled and connection.holds_partial:
        return f"its peer stopped inside a message or handshake {stalled:.1f} s ago"
    return None


class QuietSweeper:
    """Looks over a listener's connections a few times per timeout and closes those that
    have gone quiet (see quiet_reason), each reported: one timer per listener, not one per
    connection."""

    def __init__(
        self,
        label: str,
        connections: dict[Address, Any],
        limits: StreamLimits,
        on_quiet_closed: OnQuietClosed | None,
    ) -> None:
        self._label = label
        self._connections = connections
        self._limits = limits
        self._on_quiet_closed = on_quiet_closed
        self.closed = 0  # connections closed since the start
        timeouts = [timeout for timeout in (limits.idle_timeout_s, limits.stall_timeout_s) if timeout > 0]
        self._interval = min(SWEEP_MAX_S, min(timeouts) / 4) if timeouts else 0.0
        self._loop = asyncio.get_running_loop()
        self._handle: asyncio.TimerHandle | None = None
        if self._interval:
            self._handle = self._loop.call_later(self._interval, self._sweep)

    def _sweep(self) -> None:
        now = time.monotonic()
        for connection in list(self._connections.values()):
            reason = quiet_reason(connection, now, self._limits)
            if reason is None:
                continue
            self.closed += 1
            if self._on_quiet_closed is not None:
                self._on_quiet_closed(self._label, connection.remote_address, reason)
            connection.abort()
        self._handle = self._loop.call_later(self._interval, self._sweep)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class StreamListener:
    """A listening socket; sends reach a peer over the connection it opened to us.

    Bound first and listening only on listen(), so that a -t t1 client can connect out
    from the same port in between, as SIPp does with -p.
    """

    is_reliable = True

    def __init__(
        self,
        sock: socket.socket,
        make_connection: ConnectionMaker,
        protocol_name: str,
        guard: ListenerGuard | None = None,
    ) -> None:
        self.socket = sock
        self._make_connection = make_connection
        self._guard = guard or ListenerGuard()
        self._acceptor: Acceptor | None = None
        self._sweeper: QuietSweeper | None = None
        self._starting: set[asyncio.Task[None]] = set()  # accepted, being set up
        self._opening = 0  # accepted, its protocol not yet made (so not yet in `connections`)
        self._closed = False
        self.protocol_name = protocol_name
        self.connections: dict[Address, StreamConnection] = {}
        self.local_address: Address = socket_address(sock.getsockname())
        self.send_errors = 0

    @property
    def refused_connections(self) -> int:
        return self._acceptor.refused if self._acceptor is not None else 0

    @property
    def quiet_closed_connections(self) -> int:
        return self._sweeper.closed if self._sweeper is not None else 0

    async def listen(self) -> None:
        sock = self.socket
        try:
            sock.listen(LISTEN_BACKLOG)
        except OSError as error:
            sock.close()
            ip, port = self.local_address
            raise BindError(
                f"cannot listen on {self.protocol_name} {ip}:{port}: {error.strerror or error}"
            ) from None
        ip, port = self.local_address
        label = f"{self.protocol_name} {ip}:{port}"
        guard = self._guard
        self._acceptor = Acceptor(
            sock,
            label,
            self._accepted,
            guard.on_refused,
            lambda: len(self.connections) + self._opening,
            guard.limits.max_connections,
        )
        self._sweeper = QuietSweeper(label, self.connections, guard.limits, guard.on_quiet_closed)

    def _accepted(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._opening += 1
        task = asyncio.get_running_loop().create_task(self._serve(sock))
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    async def _serve(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        made = False

        def make() -> StreamConnection:
            nonlocal made
            made = True
            self._opening -= 1
            return self._make_connection(self.connections)

        try:
            _, connection = await loop.connect_accepted_socket(make, sock)
        except OSError:  # the peer left before the connection was set up
            if not made:
                self._opening -= 1
            sock.close()
            return
        if self._closed:
            connection.close()

    def send(self, data: bytes, remote: Address) -> None:
        connection = self.connections.get(remote)
        if connection is None:
            self.send_errors += 1
            return
        connection.send(data, remote)

    def close(self) -> None:
        self._closed = True
        if self._acceptor is not None:
            self._acceptor.close()
        if self._sweeper is not None:
            self._sweeper.close()
        self.socket.close()
        for connection in list(self.connections.values()):
            connection.close()


def bind_tcp_listener(
    ip: str,
    port: int,
    on_message: OnMessage,
    on_malformed: OnMalformed,
    tls: ssl.SSLContext | None = None,
    guard: ListenerGuard | None = None,
) -> StreamListener:
    """A TCP (or, given a server context, TLS) listener, bound but not yet listening."""
    name = "TCP" if tls is None else "TLS"
    sock = bound_socket(ip, port, socket.SOCK_STREAM, name)
    max_bytes = (guard or ListenerGuard()).limits.max_message_bytes

    def accept(registry: dict[Address, StreamConnection]) -> StreamConnection:
        return TcpConnection(on_message, on_malformed, registry, server_tls_layer(tls), name, max_bytes)

    return StreamListener(sock, accept, name, guard)


def server_tls_layer(context: ssl.SSLContext | None) -> TlsLayer | None:
    return TlsLayer(context, server_side=True, server_hostname=None) if context is not None else None


async def open_tcp_listener(
    ip: str,
    port: int,
    on_message: OnMessage,
    on_malformed: OnMalformed,
    tls: ssl.SSLContext | None = None,
    guard: ListenerGuard | None = None,
) -> StreamListener:
    listener = bind_tcp_listener(ip, port, on_message, on_malformed, tls, guard)
    await listener.listen()
    return listener


async def connect_stream(
    remote: Address,
    local_ip: str,
    local_port: int,
    make_connection: Callable[[TlsLayer | None], StreamConnection],
    tls: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> StreamConnection:
    """Connect out and wait until the connection is ready (TLS handshake, WebSocket upgrade);
    SNI only for a host name. BindError for the local side, OSError (refused, handshake
    failed, too slow) for the remote side."""
    sock = bound_socket(local_ip, local_port, socket.SOCK_STREAM, "TCP" if tls is None else "TLS")
    loop = asyncio.get_running_loop()
    layer = TlsLayer(tls, server_side=False, server_hostname=server_hostname) if tls is not None else None
    try:
        await loop.sock_connect(sock, remote)
        _, connection = await loop.create_connection(lambda: make_connection(layer), sock=sock)
    except BaseException:
        sock.close()
        raise
    try:
        await asyncio.wait_for(asyncio.shield(connection.ready), CONNECT_READY_TIMEOUT_S)
    except BaseException:
        connection.close()
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
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> StreamConnection:
    name = "TCP" if tls is None else "TLS"
    return await connect_stream(
        remote,
        local_ip,
        local_port,
        lambda layer: TcpConnection(
            on_message, on_malformed, tls=layer, protocol_name=name, max_message_bytes=max_message_bytes
        ),
        tls,
        server_hostname,
    )


def os_sockets(transport: object) -> list[socket.socket]:
    """The kernel sockets under a transport, for options set after opening (-buff_size,
    -bind_to_device): a UDP socket, TCP connection or listener has one."""
    own = getattr(transport, "socket", None)
    if isinstance(own, socket.socket):
        return [own]
    inner = getattr(transport, "_transport", None)
    sock = inner.get_extra_info("socket") if inner is not None else None
    return [sock] if sock is not None else []
