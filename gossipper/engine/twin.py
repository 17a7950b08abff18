"""The 3PCC twin socket: sendCmd/recvCmd between gossipper instances over TCP.

As in SIPp, -3pcc host:port is the twin to connect to when the scenario's first
twin command is sendCmd, and the address to listen on when it is recvCmd. Commands
are framed like SIP (headers, blank line, Content-Length) and routed by Call-ID.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from gossipper.engine.call import Call
from gossipper.engine.settings import Address
from gossipper.errors import BindError, InvalidValue
from gossipper.scenario import model
from gossipper.sip.message import SipMessage, SipParseError, find_message_end


class TwinHost(Protocol):
    def call_for_twin(self, message: SipMessage) -> Call | None: ...
    def trace_error(self, text: str) -> None: ...


def parse_command(data: bytes) -> SipMessage:
    """A twin command is a header block and an optional body, without a start line."""
    head, _, body = data.partition(b"\r\n\r\n")
    headers: list[tuple[str, str]] = []
    for line in head.decode("utf-8", errors="replace").split("\r\n"):
        name, colon, value = line.partition(":")
        if colon and name.strip():
            headers.append((name.strip(), value.strip()))
    return SipMessage(first_line="", headers=headers, body=body)


class TwinChannel:
    def __init__(self, host: TwinHost) -> None:
        self._host = host
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.AbstractServer | None = None
        self._buffers: dict[asyncio.StreamWriter, bytearray] = {}

    @classmethod
    async def open(cls, host: TwinHost, address: Address | None, scenario: model.Scenario) -> TwinChannel:
        if address is None:
            raise InvalidValue(
                f"scenario {scenario.name!r} uses sendCmd/recvCmd and needs a twin host:port",
                setting="twin_address",
            )
        channel = cls(host)
        first = next(s for s in scenario.steps if isinstance(s, model.SendCmd | model.RecvCmd))
        if isinstance(first, model.SendCmd):
            try:
                reader, writer = await asyncio.open_connection(*address)
            except OSError as error:
                raise InvalidValue(
                    f"cannot connect to twin {address[0]}:{address[1]}: {error}", setting="twin_address"
                ) from None
            channel._adopt(reader, writer)
        else:
            try:
                channel._server = await asyncio.start_server(channel._adopt, *address)
            except OSError as error:
                raise BindError(
                    f"cannot listen on {address[0]}:{address[1]}: {error.strerror}", setting="twin_address"
                ) from None
        return channel

    def _adopt(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        asyncio.get_running_loop().create_task(self._read(reader, writer))

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = bytearray()
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            buffer += chunk
            while True:
                try:
                    end = find_message_end(buffer)
                except SipParseError as error:
                    self._host.trace_error(f"3PCC twin: bad command stream: {error}")
                    buffer.clear()
                    break
                if end is None:
                    break
                data = bytes(buffer[:end]).lstrip(b"\r\n")
                del buffer[:end]
                self._deliver(data)
        if writer in self._writers:
            self._writers.remove(writer)

    def _deliver(self, data: bytes) -> None:
        message = parse_command(data)
        call = self._host.call_for_twin(message)
        if call is None:
            self._host.trace_error(f"3PCC twin: command for unknown call {message.call_id!r}")
            return
        call.on_twin_command(message)

    def send(self, data: bytes) -> None:
        for writer in self._writers:
            writer.write(data)

    def close(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
