"""SIP over WebSocket (RFC 7118) on real loopback connections, ws and wss, asyncio and uvloop."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import pytest

from gossipper.cli.ports import LOOPBACK
from gossipper.sip.tls import TlsSettings, tls_contexts
from gossipper.sip.transport import INCOMPLETE_AT_CLOSE, StreamListener
from gossipper.sip.websocket import WsConnection, bind_ws_listener, open_ws_connection
from tests.sip.test_transport import RUNNERS, Inbox, Malformed, Runner, _echo, _message
from tests.sip.tls_material import OPENSSL, make_tls_material


def _tls(tmp_path: Path, secure: bool) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    if not secure:
        return None, None
    if OPENSSL is None:
        pytest.skip("the openssl CLI (Debian openssl) is not installed")
    material = make_tls_material(tmp_path)
    contexts = tls_contexts(TlsSettings(str(material.good.cert), str(material.good.key)))
    return contexts.server, contexts.client


async def _listening(
    tls: ssl.SSLContext | None, inbox: Inbox | None = None, malformed: Malformed | None = None
) -> StreamListener:
    listener = bind_ws_listener(LOOPBACK, 0, inbox or _echo, malformed or Malformed(), tls)
    await listener.listen()
    return listener


@RUNNERS
@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
def test_messages_cross_both_ways_as_whole_websocket_messages(
    run: Runner, secure: bool, tmp_path: Path
) -> None:
    server_tls, client_tls = _tls(tmp_path, secure)

    async def scenario() -> None:
        server_inbox, client_inbox = Inbox(), Inbox()
        listener = await _listening(server_tls, server_inbox)
        client = await open_ws_connection(
            listener.local_address, LOOPBACK, client_inbox, Malformed(), tls=client_tls
        )
        try:
            name = "WSS" if secure else "WS"
            assert client.protocol_name == name and listener.protocol_name == name
            text = _message("text", b"v=0\r\n" * 100)
            binary = _message("binary", bytes(range(256)))  # not UTF-8: a binary frame
            client.send(text, listener.local_address)
            client.send(binary, listener.local_address)
            items = await server_inbox.wait_for(2)
            assert [data for data, _, _ in items] == [text, binary]
            assert items[0][1] == client.local_address and items[0][2].protocol_name == name
            listener.send(_message("reply"), client.local_address)
            replies = await client_inbox.wait_for(1)
            assert replies[0][0] == _message("reply") and replies[0][2] is client
            assert client.send_errors == 0 and listener.send_errors == 0
        finally:
            client.close()
            listener.close()

    run(scenario())


@RUNNERS
def test_a_fragmented_message_is_delivered_whole(run: Runner) -> None:
    async def scenario() -> None:
        inbox = Inbox()
        listener = await _listening(None, inbox)
        client = await open_ws_connection(listener.local_address, LOOPBACK, Inbox(), Malformed())
        try:
            assert isinstance(client, WsConnection)
            whole = _message("fragments", b"x" * 300)
            client._ws.send_text(whole[:100], fin=False)
            client._ws.send_continuation(whole[100:200], fin=False)
            client._ws.send_continuation(whole[200:], fin=True)
            client._flush()
            items = await inbox.wait_for(1)
            assert items[0][0] == whole
        finally:
            client.close()
            listener.close()

    run(scenario())


@RUNNERS
def test_an_upgrade_without_the_sip_subprotocol_is_refused_and_reported(run: Runner) -> None:
    async def scenario() -> None:
        malformed = Malformed()
        listener = await _listening(None, Inbox(), malformed)
        loop = asyncio.get_running_loop()
        raw = socket.socket()
        raw.setblocking(False)
        try:
            await loop.sock_connect(raw, listener.local_address)
            await loop.sock_sendall(
                raw,
                b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            )
            answer = await asyncio.wait_for(loop.sock_recv(raw, 4096), 5)
            assert answer.startswith(b"HTTP/1.1 400")
            await asyncio.wait_for(malformed.reported.wait(), 5)
            assert "WebSocket upgrade refused (400)" in malformed.reports[0][0]
            assert "missing subprotocol" in malformed.reports[0][0]
        finally:
            raw.close()
            listener.close()

    run(scenario())


@RUNNERS
def test_refused_connection_and_plain_http_server_are_oserrors(run: Runner) -> None:
    async def scenario() -> None:
        with socket.socket() as idle:
            idle.bind((LOOPBACK, 0))
            port = idle.getsockname()[1]
        with pytest.raises(OSError):
            await open_ws_connection((LOOPBACK, port), LOOPBACK, Inbox(), Malformed())

        async def not_websocket(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()

        server = await asyncio.start_server(not_websocket, LOOPBACK, 0)
        try:
            address = server.sockets[0].getsockname()
            with pytest.raises(ConnectionError, match="WebSocket upgrade failed"):
                await open_ws_connection(address, LOOPBACK, Inbox(), Malformed())
        finally:
            server.close()

    run(scenario())


@RUNNERS
@pytest.mark.parametrize("how", ["close", "abort"])
def test_a_message_whose_last_fragment_never_came_is_reported_at_close(run: Runner, how: str) -> None:
    async def scenario() -> None:
        inbox, malformed = Inbox(), Malformed()
        listener = await _listening(None, inbox, malformed)
        client = await open_ws_connection(listener.local_address, LOOPBACK, Inbox(), Malformed())
        assert isinstance(client, WsConnection)
        try:
            whole = _message("cut", b"x" * 300)
            client._ws.send_text(whole[:100], fin=False)
            client._ws.send_continuation(whole[100:200], fin=False)
            client._flush()
            await asyncio.sleep(0.05)
            if how == "close":
                client.close()  # with a close frame
            else:
                assert client._transport is not None
                client._transport.abort()
            await asyncio.wait_for(malformed.reported.wait(), 5)
            [(reason, data, source)] = malformed.reports
            assert reason == INCOMPLETE_AT_CLOSE and data == whole[:200] and source == client.local_address
            assert inbox.items == []
        finally:
            client.close()
            listener.close()

    run(scenario())
