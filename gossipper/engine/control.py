"""Run control from outside: SIPp's keyboard keys and its UDP control socket.

Keys: + / - change the rate by 1, * and / by 10 (times -rate_scale), p pauses traffic,
q quits softly, Q hard. The control socket takes the same keys, or 'c' followed by a
command such as 'cset rate 100' or 'cset limit 50'. As SIPp's, it is UDP on 8888, or the
first free of the 60 ports from there, on every address unless -ci names one; unlike
SIPp's, when -ci does not, it takes commands only from this host's own addresses, so a
run cannot be steered from elsewhere by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import socket
import sys
from typing import Protocol

from gossipper.engine.settings import MAX_CALLS_PER_SECOND, ControlSettings
from gossipper.errors import BindError

CONTROL_PORT_DEFAULT = 8888
CONTROL_PORT_TRIES = 60  # SIPp's setup_ctrl_socket: room for 60 instances on one host


class Controllable(Protocol):
    def soft_stop(self) -> None: ...
    def hard_stop(self) -> None: ...
    def set_rate(self, rate: float) -> None: ...
    def set_limit(self, limit: int) -> None: ...
    def pause_traffic(self) -> None: ...
    def trace_error(self, text: str) -> None: ...

    @property
    def rate(self) -> float: ...

    @property
    def rate_ceiling(self) -> float:
        """The most calls per rate period a command may ask for (settings.rate_ceiling)."""
        ...

    @property
    def users(self) -> int | None:
        """-users' population, None for a rate-driven run."""
        ...


def apply_key(run: Controllable, key: str, rate_scale: float = 1.0) -> bool:
    """One keyboard key; False when the key means nothing."""
    steps = {"+": 1.0, "-": -1.0, "*": 10.0, "/": -10.0}
    if key in steps:
        users = run.users
        if users is not None:  # SIPp: in -users mode the keys change the population
            run.set_limit(max(0, int(users + steps[key] * rate_scale)))
        else:
            run.set_rate(min(run.rate_ceiling, max(0.0, run.rate + steps[key] * rate_scale)))
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
        if not math.isfinite(value) or value < 0:
            return f"control: {words[1]} needs a finite number of at least 0, got {words[2]!r}"
        if words[1] == "rate":
            if value > run.rate_ceiling:
                return (
                    f"control: rate {value:g} is above gossipper's ceiling of {run.rate_ceiling:g} "
                    f"calls per rate period ({MAX_CALLS_PER_SECOND:g} calls per second); rate unchanged"
                )
            run.set_rate(value)
        else:
            run.set_limit(int(value))
        return None
    if words in (["halt"], ["stop"]):
        run.hard_stop()
        return None
    return f"control: unknown command {command!r} (expected 'set rate N', 'set limit N' or 'halt')"


@functools.lru_cache(maxsize=256)
def is_own_address(ip: str) -> bool:
    """Whether ip is one of this host's addresses: the kernel lets a socket bind only to those."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((ip, 0))
        except OSError:
            return False
    return True


class _ControlProtocol(asyncio.DatagramProtocol):
    def __init__(self, run: Controllable, settings: ControlSettings) -> None:
        self.run = run
        self.settings = settings

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.settings.ip is None and not is_own_address(addr[0]):
            self.run.trace_error(f"control: command from {addr[0]} refused (not this host; -ci opens it)")
            return
        text = data.decode("utf-8", errors="replace").strip()
        if not text:
            return
        if text.startswith("c") and len(text) > 1:
            error = apply_command(self.run, text[1:].strip())
            if error:
                self.run.trace_error(error)
        elif not apply_key(self.run, text[0], self.settings.rate_scale):
            self.run.trace_error(f"control: unknown key {text[0]!r}")


class RunControl:
    """Owns the keyboard reader and the control socket of a run."""

    def __init__(self, run: Controllable, settings: ControlSettings) -> None:
        self.run = run
        self.settings = settings
        self._transport: asyncio.DatagramTransport | None = None
        self._terminal_state: list[object] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.port: int | None = None  # the control port bound

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind the control socket now (BindError if -cp's port is taken, as SIPp exits), then
        serve it from the loop; without -cp a full range is only a warning."""
        self._loop = loop
        sock = self._bind() if self.settings.socket else None
        if sock is not None:
            loop.create_task(self._serve(sock))
        if self.settings.keyboard and sys.stdin is not None and sys.stdin.isatty():
            self._start_keyboard(loop)

    def _bind(self) -> socket.socket | None:
        ip, port = self.settings.ip, self.settings.port
        host = ip if ip is not None else "0.0.0.0"
        first = port if port is not None else CONTROL_PORT_DEFAULT
        candidates = [port] if port is not None else range(first, first + CONTROL_PORT_TRIES)
        try:
            family = socket.getaddrinfo(host, first, type=socket.SOCK_DGRAM)[0][0]
        except socket.gaierror as error:
            raise BindError(f"-ci: unknown control address {host!r}: {error.strerror}") from None
        sock = socket.socket(family, socket.SOCK_DGRAM)
        reason = ""
        for candidate in candidates:
            try:
                sock.bind((host, candidate))
            except OSError as error:
                reason = error.strerror or str(error)
                continue
            sock.setblocking(False)
            self.port = candidate
            return sock
        sock.close()
        if port is not None:
            raise BindError(f"-cp: cannot bind the control socket to UDP {host}:{port}: {reason}")
        warning = f"control socket: no free UDP port in {first}-{first + CONTROL_PORT_TRIES - 1} on {host}"
        self.run.trace_error(warning)
        print(f"gossipper: warning: {warning}", file=sys.stderr)
        return None

    async def _serve(self, sock: socket.socket) -> None:
        assert self._loop is not None
        self._transport, _ = await self._loop.create_datagram_endpoint(
            lambda: _ControlProtocol(self.run, self.settings), sock=sock
        )

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
            apply_key(self.run, key, self.settings.rate_scale)

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
