"""SIP over WebSocket (RFC 7118): ws and wss, on the `websockets` library's sans-I/O core.

The library's protocol objects do the HTTP upgrade, framing, masking, ping/pong and
closing handshake; this module drives them from the same asyncio connection class TCP
and TLS use, so a send stays a plain synchronous call (no task per message) and wss is
simply TLS underneath. Each SIP message travels as one WebSocket message: text when it
is UTF-8, binary otherwise (RFC 7118 section 5.1); the "sip" subprotocol is required
both ways.
"""

from __future__ import annotations

import socket
import ssl

from websockets.client import ClientProtocol
from websockets.exceptions import PayloadTooBig
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Protocol, State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from gossipper.sip.message import DEFAULT_MAX_MESSAGE_BYTES
from gossipper.sip.transport import (
    INCOMPLETE_AT_CLOSE,
    TOO_LARGE,
    Address,
    ListenerGuard,
    OnMalformed,
    OnMessage,
    StreamConnection,
    StreamListener,
    TlsLayer,
    bound_socket,
    connect_stream,
    server_tls_layer,
)

SIP_SUBPROTOCOL = Subprotocol("sip")


class WsConnection(StreamConnection):
    """One WebSocket connection carrying SIP messages, client or server side."""

    def __init__(
        self,
        on_message: OnMessage,
        on_malformed: OnMalformed,
        ws: Protocol,
        registry: dict[Address, StreamConnection] | None = None,
        tls: TlsLayer | None = None,
        protocol_name: str = "WS",
    ) -> None:
        super().__init__(on_message, on_malformed, registry, tls, protocol_name)
        self._ws = ws
        self._fragments: list[bytes] = []

    def message_pending(self) -> bool:
        """Fragments of a message, or the start of a frame, are waiting for the rest."""
        return bool(self._fragments) or (self._ws.state is State.OPEN and bool(self._ws.reader.buffer))

    def opened(self) -> None:
        """A client asks for the upgrade now and is ready when it is answered; a server
        answers the upgrade when it comes."""
        if isinstance(self._ws, ClientProtocol):
            self._ws.send_request(self._ws.connect())
            self._flush()
        else:
            self.set_ready()

    def received(self, data: bytes) -> None:
        ws = self._ws
        failed_before = ws.parser_exc
        ws.receive_data(data)
        if isinstance(ws.parser_exc, PayloadTooBig) and ws.parser_exc is not failed_before:
            # the library fails the connection (close code 1009); the message is counted here
            self._fragments.clear()
            self._on_malformed(f"{TOO_LARGE}: {ws.parser_exc}", b"", self.remote_address)
        for event in ws.events_received():
            if isinstance(event, Request):
                self._answer_upgrade(event)
            elif isinstance(event, Response):
                self._upgrade_answered()
            elif isinstance(event, Frame):
                self._frame(event)
        self._flush()

    def _answer_upgrade(self, request: Request) -> None:
        assert isinstance(self._ws, ServerProtocol)
        response = self._ws.accept(request)
        self._ws.send_response(response)
        if response.status_code != 101:
            reason = self._ws.handshake_exc or response.reason_phrase
            self._on_malformed(
                f"WebSocket upgrade refused ({response.status_code}): {reason}", b"", self.remote_address
            )

    def _upgrade_answered(self) -> None:
        failure = self._ws.handshake_exc
        self.set_ready(None if failure is None else ConnectionError(f"WebSocket upgrade failed: {failure}"))

    def _frame(self, frame: Frame) -> None:
        if frame.opcode not in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
            return  # ping, pong and close are answered by the protocol object itself
        self._fragments.append(bytes(frame.data))
        if frame.fin:
            message = b"".join(self._fragments)
            self._fragments.clear()
            self._on_message(message, self.remote_address, self)

    def send(self, data: bytes, remote: Address) -> None:
        ws = self._ws
        if ws.state is not State.OPEN:
            self.send_errors += 1
            return
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            ws.send_binary(data)
        else:
            ws.send_text(data)
        self._flush()

    def _flush(self) -> None:
        for chunk in self._ws.data_to_send():
            if chunk:
                self.write(chunk)
            elif self._transport is not None:
                self._transport.close()  # the protocol's end of stream: its close is done

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._ws.receive_eof()

    def stream_ended(self) -> None:
        """Fragments of a message that never got its last frame, and the start of a frame that
        never finished, are reported as the message the closed connection cut off."""
        ws = self._ws
        left = b"".join(self._fragments)
        self._fragments.clear()
        if ws.state is State.OPEN:  # after a close frame, the parser discards what follows
            left += bytes(ws.reader.buffer)
        if left:
            self._on_malformed(INCOMPLETE_AT_CLOSE, left, self.remote_address)
        super().stream_ended()

    def close(self) -> None:
        ws = self._ws
        if ws.state is State.OPEN:
            ws.send_close()
            self._flush()
        super().close()


def bind_ws_listener(
    ip: str,
    port: int,
    on_message: OnMessage,
    on_malformed: OnMalformed,
    tls: ssl.SSLContext | None = None,
    guard: ListenerGuard | None = None,
) -> StreamListener:
    """A ws (or, given a server context, wss) listener, bound but not yet listening."""
    name = "WS" if tls is None else "WSS"
    sock = bound_socket(ip, port, socket.SOCK_STREAM, name)
    max_bytes = (guard or ListenerGuard()).limits.max_message_bytes

    def accept(registry: dict[Address, StreamConnection]) -> StreamConnection:
        ws = ServerProtocol(subprotocols=[SIP_SUBPROTOCOL], max_size=max_bytes)
        return WsConnection(on_message, on_malformed, ws, registry, server_tls_layer(tls), name)

    return StreamListener(sock, accept, name, guard)


async def open_ws_connection(
    remote: Address,
    local_ip: str,
    on_message: OnMessage,
    on_malformed: OnMalformed,
    local_port: int = 0,
    tls: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> StreamConnection:
    """Connect and upgrade to WebSocket with subprotocol "sip"; OSError if either fails."""
    host = server_hostname or (f"[{remote[0]}]" if ":" in remote[0] else remote[0])
    uri = parse_uri(f"{'wss' if tls is not None else 'ws'}://{host}:{remote[1]}/")
    name = "WS" if tls is None else "WSS"

    def connection(layer: TlsLayer | None) -> StreamConnection:
        ws = ClientProtocol(uri, subprotocols=[SIP_SUBPROTOCOL], max_size=max_message_bytes)
        return WsConnection(on_message, on_malformed, ws, tls=layer, protocol_name=name)

    return await connect_stream(remote, local_ip, local_port, connection, tls, server_hostname)
