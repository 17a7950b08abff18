"""The 3PCC twin sockets: sendCmd/recvCmd between gossipper or SIPp instances over TCP.

Framed as SIPp frames them (call.cpp sendCmdBuffer, socket.cpp check_for_message): a command
is the rendered text followed by one ESC byte (0x1b), and is routed to its call by the
Call-ID line it carries. `internal-cmd: abort_call`, which SIPp sends when it aborts a
3PCC call, fails the twin call here too.

-3pcc host:port: the instance whose scenario's first twin command is sendCmd connects there,
the one whose first is recvCmd listens there, and both talk over that one connection.

Extended 3PCC (-master NAME or -slave NAME with -slave_cfg FILE, lines `name;host:port`):
every instance listens on its own name's address and reads the commands sent to it there;
it sends to each peer its scenario names in <sendCmd dest=...> over a connection of its
own, opened at start by the master and, by a slave, when a first peer connects to it (so
the master is started last, as in SIPp). A command carries `From: <sender name>`, and a
<recvCmd src=...> takes only its named sender's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

from gossipper.engine.call import Call
from gossipper.engine.settings import Address, TwinSettings
from gossipper.errors import BindError, FileProblem, InvalidValue
from gossipper.scenario import model
from gossipper.sip.message import SipMessage

COMMAND_END = b"\x1b"
_Adopt = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None] | None]
ABORT_CALL = "abort_call"


class TwinHost(Protocol):
    def call_for_twin(self, message: SipMessage) -> Call | None: ...
    def trace_error(self, text: str) -> None: ...


def abort_command(call_id: str) -> bytes:
    """SIPp's 3pcc_abort text, as its twin expects it: LF lines, no start line."""
    return f"call-id: {call_id}\ninternal-cmd: {ABORT_CALL}\n\n".encode()


def parse_command(data: bytes) -> SipMessage:
    """A twin command is a header block and an optional body, without a start line."""
    head, _, body = data.partition(b"\r\n\r\n")
    headers: list[tuple[str, str]] = []
    for line in head.decode("utf-8", errors="replace").replace("\r\n", "\n").split("\n"):
        name, colon, value = line.partition(":")
        if colon and name.strip():
            headers.append((name.strip(), value.strip()))
    return SipMessage(first_line="", headers=headers, body=body)


def read_peers(path: str) -> dict[str, Address]:
    """-slave_cfg: `name;host:port` a line, as SIPp reads it (lines without both are skipped)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise FileProblem(f"{path}: cannot read: {error.strerror}", setting="twin_peers_file") from None
    peers: dict[str, Address] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        name, _, rest = line.strip().partition(";")
        address = rest.split(";", 1)[0].strip()
        if not name or not address:
            continue
        host, colon, port = address.rpartition(":")
        if not colon or not port.isdigit() or not 0 < int(port) < 65536:
            raise FileProblem(f"{path}:{number}: expected name;host:port, got {line.strip()!r}")
        peers[name] = (host.strip("[]"), int(port))
    return peers


class TwinChannel:
    def __init__(self, host: TwinHost, settings: TwinSettings) -> None:
        self._host = host
        self._settings = settings
        self._writers: list[asyncio.StreamWriter] = []  # the -3pcc connection (both ways)
        self._peer_writers: dict[str, asyncio.StreamWriter] = {}  # extended: one per dest
        self._peers: dict[str, Address] = {}
        self._destinations: list[str] = []
        self._server: asyncio.AbstractServer | None = None

    @classmethod
    async def open(cls, host: TwinHost, settings: TwinSettings, scenario: model.Scenario) -> TwinChannel:
        channel = cls(host, settings)
        if settings.name is not None:
            await channel._open_extended(scenario)
            return channel
        address = settings.address
        if address is None:
            raise InvalidValue(
                f"scenario {scenario.name!r} uses sendCmd/recvCmd and needs a twin host:port",
                setting="twin_address",
            )
        first = next(s for s in scenario.steps if isinstance(s, model.SendCmd | model.RecvCmd))
        if isinstance(first, model.SendCmd):
            channel._writers.append(await channel._connect(address, "twin_address"))
        else:
            channel._server = await channel._listen(address, "twin_address", channel._adopt_twin)
        return channel

    async def _open_extended(self, scenario: model.Scenario) -> None:
        settings = self._settings
        assert settings.name is not None and settings.peers_file is not None
        self._peers = read_peers(settings.peers_file)
        commands = [s for s in scenario.steps if isinstance(s, model.SendCmd | model.RecvCmd)]
        master_scenario = isinstance(commands[0], model.SendCmd)
        if master_scenario != settings.master:
            wanted = "-master" if master_scenario else "-slave"
            raise InvalidValue(
                f"scenario {scenario.name!r} starts its 3PCC exchange with "
                f"{'sendCmd' if master_scenario else 'recvCmd'}, which needs {wanted} (as in SIPp)",
                setting="twin_name",
            )
        for step in commands:
            if isinstance(step, model.SendCmd) and step.dest is None:
                raise InvalidValue("extended 3PCC: every <sendCmd> needs dest=", setting="twin_name")
            if isinstance(step, model.RecvCmd) and step.src is None:
                raise InvalidValue("extended 3PCC: every <recvCmd> needs src=", setting="twin_name")
            if isinstance(step, model.SendCmd) and step.dest is not None:
                self._peer_address(step.dest)
                if step.dest not in self._destinations:
                    self._destinations.append(step.dest)
        own = self._peer_address(settings.name)
        self._server = await self._listen(own, "twin_peers_file", self._adopt_peer)
        if settings.master:
            await self._connect_to_peers()

    def _peer_address(self, name: str) -> Address:
        address = self._peers.get(name)
        if address is None:
            raise FileProblem(
                f"{self._settings.peers_file}: no line for 3PCC instance {name!r}", setting="twin_peers_file"
            )
        return address

    async def _connect_to_peers(self) -> None:
        for name in self._destinations:
            if name not in self._peer_writers:
                self._peer_writers[name] = await self._connect(self._peers[name], "twin_peers_file")

    async def _connect(self, address: Address, setting: str) -> asyncio.StreamWriter:
        try:
            reader, writer = await asyncio.open_connection(*address)
        except OSError as error:
            raise InvalidValue(
                f"cannot connect to twin {address[0]}:{address[1]}: {error}", setting=setting
            ) from None
        asyncio.get_running_loop().create_task(self._read(reader, writer))
        return writer

    async def _listen(self, address: Address, setting: str, adopt: _Adopt) -> asyncio.AbstractServer:
        try:
            return await asyncio.start_server(adopt, *address)
        except OSError as error:
            raise BindError(
                f"cannot listen on {address[0]}:{address[1]}: {error.strerror}", setting=setting
            ) from None

    def _adopt_twin(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        asyncio.get_running_loop().create_task(self._read(reader, writer))

    async def _adopt_peer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Extended mode: a peer's connection carries its commands to us; we answer on our own."""
        task = asyncio.get_running_loop().create_task(self._read(reader, writer))
        try:
            await self._connect_to_peers()
        except InvalidValue as error:
            self._host.trace_error(f"3PCC: {error.message}")
        await task

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = bytearray()
        while True:
            try:
                chunk = await reader.read(65536)
            except OSError:
                break
            if not chunk:
                break
            buffer += chunk
            while (end := buffer.find(COMMAND_END)) >= 0:
                data = bytes(buffer[:end]).lstrip(b"\r\n")
                del buffer[: end + 1]
                if data.strip():
                    self._deliver(data)
        if writer in self._writers:
            self._writers.remove(writer)

    def _deliver(self, data: bytes) -> None:
        message = parse_command(data)
        call = self._host.call_for_twin(message)
        if call is None:
            self._host.trace_error(f"3PCC twin: command for unknown call {message.call_id!r}")
            return
        if (message.header("internal-cmd") or "").split(" ", 1)[0] == ABORT_CALL:
            call.abort_now("unexpected_sip", "the 3PCC twin aborted this call")
            return
        expected = self._expected_source(call)
        sender = (message.header("From") or "").split(" ", 1)[0]
        if expected is not None and sender != expected:
            call.abort_now("unexpected_sip", f"3PCC command from {sender!r}, expected from {expected!r}")
            return
        call.on_twin_command(message)

    def _expected_source(self, call: Call) -> str | None:
        """Extended mode: the src= of the recvCmd the call waits at (SIPp's check_peer_src)."""
        if self._settings.name is None or not 0 <= call.index < len(call.scenario.steps):
            return None
        step = call.scenario.steps[call.index]
        return step.src if isinstance(step, model.RecvCmd) else None

    def send(self, data: bytes, call: Call) -> None:
        """The command of the sendCmd the call is at, to its dest= in extended mode."""
        framed = data + COMMAND_END
        if self._settings.name is None:
            for writer in self._writers:
                writer.write(framed)
            return
        step = call.scenario.steps[call.index]
        dest = step.dest if isinstance(step, model.SendCmd) else None
        peer = self._peer_writers.get(dest or "")
        if peer is None:
            call.abort_now("scenario_error", f"sendCmd to 3PCC instance {dest!r}, which is not connected")
            return
        peer.write(framed)

    def abort_call(self, call: Call) -> None:
        """SIPp's 3pcc_abort, sent over the -3pcc connection only: extended 3PCC has no single
        twin to reset (SIPp's twinSippSocket is unset there)."""
        if self._settings.name is None:
            for writer in self._writers:
                writer.write(abort_command(call.call_id) + COMMAND_END)

    def close(self) -> None:
        for writer in (*self._writers, *self._peer_writers.values()):
            writer.close()
        if self._server is not None:
            self._server.close()
