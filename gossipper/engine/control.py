"""Run control from outside: SIPp's keyboard keys and its UDP control socket.

Keys: + / - change the rate by 1, * and / by 10, p pauses traffic, q quits softly,
Q hard. The control socket (-ci/-cp, SIPp's default port 8888 and up) takes the same
keys, or 'c' followed by a command such as 'cset rate 100' or 'cset limit 50'.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from typing import Protocol

from gossipper.engine.settings import ControlSettings

CONTROL_PORT_DEFAULT = 8888
CONTROL_PORT_TRIES = 10


class Controllable(Protocol):
    def soft_stop(self) -> None: ...
    def hard_stop(self) -> None: ...
    def set_rate(self, rate: float) -> None: ...
    def set_limit(self, limit: int) -> None: ...
    def pause_traffic(self) -> None: ...
    def trace_error(self, text: str) -> None: ...

    @property
    def rate(self) -> float: ...


def apply_key(run: Controllable, key: str) -> bool:
    """One keyboard key; False when the key means nothing."""
    steps = {"+": 1.0, "-": -1.0, "*": 10.0, "/": -10.0}
    if key in steps:
        run.set_rate(max(0.0, run.rate + steps[key]))
    elif key == "p":
        run.pause_traffic()
    elif key == "q":
        run.soft_stop()
    elif key == "Q":
        run.hard_stop()
    else:
        return False
    return True


def apply_command(run: Controllable, command: str) -> str | None:
    """A 'c' command of the control socket; returns an error text for bad ones."""
    words = command.split()
    if len(words) == 3 and words[0] == "set" and words[1] in ("rate", "limit"):
        try:
            value = float(words[2])
        except ValueError:
            return f"control: {words[1]} needs a number, got {words[2]!r}"
        if words[1] == "rate":
            run.set_rate(value)
        else:
            run.set_limit(int(value))
        return None
    if words in (["halt"], ["stop"]):
        run.hard_stop()
        return None
    return f"control: unknown command {command!r} (expected 'set rate N', 'set limit N' or 'halt')"


class _ControlProtocol(asyncio.DatagramProtocol):
    def __init__(self, run: Controllable) -> None:
        self.run = run

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        text = data.decode("utf-8", errors="replace").strip()
        if not text:
            return
        if text.startswith("c") and len(text) > 1:
            error = apply_command(self.run, text[1:].strip())
            if error:
                self.run.trace_error(error)
        elif not apply_key(self.run, text[0]):
            self.run.trace_error(f"control: unknown key {text[0]!r}")


class RunControl:
    """Owns the keyboard reader and the control socket of a run."""

    def __init__(self, run: Controllable, settings: ControlSettings) -> None:
        self.run = run
        self.settings = settings
        self._transport: asyncio.DatagramTransport | None = None
        self._terminal_state: list[object] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.create_task(self._open_socket(self.settings.ip, self.settings.port))
        if self.settings.keyboard and sys.stdin is not None and sys.stdin.isatty():
            self._start_keyboard(loop)

    async def _open_socket(self, ip: str, port: int | None) -> None:
        assert self._loop is not None
        candidates = (
            [port]
            if port is not None
            else range(CONTROL_PORT_DEFAULT, CONTROL_PORT_DEFAULT + CONTROL_PORT_TRIES)
        )
        for candidate in candidates:
            try:
                transport, _ = await self._loop.create_datagram_endpoint(
                    lambda: _ControlProtocol(self.run), local_addr=(ip, candidate)
                )
            except OSError:
                continue
            self._transport = transport
            return
        if port is not None:
            self.run.trace_error(f"control socket: cannot bind {ip}:{port}")

    def _start_keyboard(self, loop: asyncio.AbstractEventLoop) -> None:
        import termios
        import tty

        fd = sys.stdin.fileno()
        try:
            self._terminal_state = termios.tcgetattr(fd)
            tty.setcbreak(fd)
        except termios.error:
            return
        loop.add_reader(fd, self._key_ready, fd)

    def _key_ready(self, fd: int) -> None:
        data = os.read(fd, 32).decode("utf-8", errors="replace")
        for key in data:
            apply_key(self.run, key)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._terminal_state is not None:
            import termios

            fd = sys.stdin.fileno()
            if self._loop is not None:
                with contextlib.suppress(ValueError, OSError):
                    self._loop.remove_reader(fd)
            termios.tcsetattr(fd, termios.TCSADRAIN, self._terminal_state)  # type: ignore[arg-type]
            self._terminal_state = None
