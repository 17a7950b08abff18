"""The UDP transport read and written in batches by the native SIP core (recvmmsg, sendmmsg).

Apart from transport.py so that it is compiled with the engine: every datagram a run sends
or receives passes through it, and interpreted it was a measurable part of each call's CPU.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable
from typing import Any

from gossipper.sip.transport import Address, OnMessage, socket_address

BATCH_SIZE = 64  # datagrams per recvmmsg (the native core's most)
# Answers queued while reading leave once this many wait: loopback puts a sendmmsg's whole
# batch into the peer's socket at once, and SIPp's default buffer (-buff_size 65535) holds
# about a hundred messages; 128 answers at once overflowed it at 6000 calls/s.
FLUSH_AT = 32
RECEIVE_ROUNDS = 4  # batches read per wake-up before the loop serves anything else
NOT_NUMERIC = -1  # send_batch: the destination is a name to resolve


class BatchedUdpTransport:
    """One UDP socket read and written in batches by the native core (recvmmsg, sendmmsg).

    The receive side takes every waiting datagram in one call; sends made during one turn
    of the loop are queued and leave together at its end, so a burst of calls or answers
    costs one system call instead of one each. Same contract as UdpTransport: failures are
    counted, never raised."""

    is_reliable = False
    protocol_name = "UDP"

    def __init__(
        self,
        sock: socket.socket,
        on_message: OnMessage,
        loop: asyncio.AbstractEventLoop,
        native_io: tuple[Callable[..., Any], Callable[..., Any]],
    ) -> None:
        self._recv_batch, self._send_batch = native_io
        self.socket = sock
        self._fd = sock.fileno()
        self._on_message = on_message
        self._loop = loop
        self.local_address: Address = socket_address(sock.getsockname())
        self.send_errors = 0
        self._queue: list[tuple[bytes, Address]] = []
        self._flush_due = False
        self._waiting_writable = False
        self._reading = False
        self._closed = False
        loop.add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        receive, fd, on_message = self._recv_batch, self._fd, self._on_message
        self._reading = True  # what the answers send leaves at the end of this callback
        try:
            for _ in range(RECEIVE_ROUNDS):  # then let timers and other sockets have a turn
                try:
                    batch = receive(fd, BATCH_SIZE)
                except OSError:
                    self.send_errors += 1  # an ICMP error reported on the socket: a send failed
                    return
                for data, source in batch:
                    on_message(data, source, self)
                    if self._closed:
                        return
                    if len(self._queue) >= FLUSH_AT and not self._waiting_writable:
                        self._flush()
                if len(batch) < BATCH_SIZE:
                    return
        finally:
            self._reading = False
            if self._queue and not self._flush_due and not self._waiting_writable and not self._closed:
                self._flush()

    def send(self, data: bytes, remote: Address) -> None:
        if self._closed:
            self.send_errors += 1
            return
        self._queue.append((data, remote))
        if not self._flush_due and not self._waiting_writable and not self._reading:
            self._flush_due = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        queue = self._queue
        start = 0
        while start < len(queue):
            start, code = self._send_batch(self._fd, queue, start)
            if code == 0:
                break
            if code in (errno.EAGAIN, errno.EWOULDBLOCK) and not self._closed:
                del queue[:start]
                self._waiting_writable = True
                self._loop.add_writer(self._fd, self._writable)
                return
            if code == NOT_NUMERIC:
                self._send_resolving(*queue[start])
            else:
                self.send_errors += 1
            start += 1
        queue.clear()

    def _send_resolving(self, data: bytes, remote: Address) -> None:
        """A destination given by name: the socket module resolves it (rare: peers are addresses)."""
        try:
            self.socket.sendto(data, remote)
        except (OSError, ValueError, OverflowError):
            self.send_errors += 1

    def _writable(self) -> None:
        self._loop.remove_writer(self._fd)
        self._waiting_writable = False
        self._flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._fd)
        if self._waiting_writable:
            self._loop.remove_writer(self._fd)
            self._waiting_writable = False
        if self._queue:
            self._flush()  # what the run sent before closing still leaves; a full buffer drops it
            self.send_errors += len(self._queue)
            self._queue.clear()
        self.socket.close()
