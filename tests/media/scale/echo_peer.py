"""An echoing peer that impairs each scale stream its own known way, for the quality tests.

It stands for an SBC echoing every stream from one port: dropping, delaying, doubling or
holding back packets of each stream by its packet index, or rewriting its SSRC (a bridged
peer rather than an echo), and it counts what it did so the tests compare against that.
"""

from __future__ import annotations

import heapq
import select
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from gossipper.cli.ports import LOOPBACK
from gossipper.media.scale.quality import ANCILLARY_BYTES, SO_TIMESTAMPNS, arrival_ns, realtime_offset_ns

DELAY_S = 0.012  # the jitter stream's every other packet is held this long
HOLD_S = 0.030  # the reorder stream's every 4th packet is held this long: past the next one
NO_STAMP = -1


@dataclass
class Done:
    """What the peer did to one stream (by the stream's source port)."""

    seen: int = 0
    dropped: int = 0
    doubled: int = 0
    held: int = 0
    sent_behind: int = 0  # sent back after a later sequence number had been (reordered by us)
    highest: int | None = None  # the highest sequence number sent back so far
    # The peer's own turnaround per copy sent back: its kernel's arrival stamp to just before
    # its send (monotonic ns). It holds the intended delay and any time this thread was not
    # running, which a loaded machine can make hundreds of milliseconds.
    hold_max_ns: int = 0
    hold_sum_ns: int = 0
    # (departure monotonic ns, RTP timestamp) of each copy sent back, in order: on loopback the
    # engine's kernel stamps each arrival inside this send, so these are its arrival times.
    departures: list[tuple[int, int]] = field(default_factory=list)


# An impairment: (packet index) -> the delays in seconds of the copies to send back (none: drop).
Impairment = Callable[[int], tuple[float, ...]]


def clean(index: int) -> tuple[float, ...]:
    return (0.0,)


def drop_every_10th(index: int) -> tuple[float, ...]:
    return () if index % 10 == 9 else (0.0,)


def delay_every_other(index: int) -> tuple[float, ...]:
    return (DELAY_S,) if index % 2 else (0.0,)


def double_every_5th(index: int) -> tuple[float, ...]:
    return (0.0, 0.0) if index % 5 == 4 else (0.0,)


def hold_every_4th(index: int) -> tuple[float, ...]:
    return (HOLD_S,) if index % 4 == 1 else (0.0,)


@dataclass
class ImpairingEcho:
    """One UDP socket standing for an SBC that echoes every stream, each impaired its own way.

    A stream whose port is in `foreign` comes back with another SSRC, as from a bridged peer.
    """

    impairments: dict[int, Impairment]
    foreign: set[int] = field(default_factory=set)
    done: dict[int, Done] = field(default_factory=lambda: defaultdict(Done))

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((LOOPBACK, 0))
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._offset_ns = realtime_offset_ns()  # the kernel's stamps are on the realtime clock
        self._queue: list[tuple[float, int, int, bytes, tuple[str, int]]] = []
        self._order = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            while self._queue and self._queue[0][0] <= now:
                _, _, arrived_ns, data, source = heapq.heappop(self._queue)
                done = self.done[source[1]]
                self._note_order(done, int.from_bytes(data[2:4], "big"))
                leaving_ns = time.monotonic_ns()
                self.sock.sendto(data, source)
                done.hold_max_ns = max(done.hold_max_ns, leaving_ns - arrived_ns)
                done.hold_sum_ns += leaving_ns - arrived_ns
                done.departures.append((leaving_ns, int.from_bytes(data[4:8], "big")))
            wait = min(0.05, self._queue[0][0] - now) if self._queue else 0.05
            readable, _, _ = select.select([self.sock], [], [], max(0.0, wait))
            if readable:
                self._take()

    def _take(self) -> None:
        while True:
            try:
                data, ancillary, _, source = self.sock.recvmsg(2048, ANCILLARY_BYTES)
            except BlockingIOError:
                return
            arrived_ns = arrival_ns(ancillary, self._offset_ns, NO_STAMP)
            assert arrived_ns != NO_STAMP, "the kernel gave no arrival stamp"
            port = source[1]
            done = self.done[port]
            copies = self.impairments.get(port, clean)(done.seen)
            done.seen += 1
            done.dropped += not copies
            done.doubled += len(copies) > 1
            done.held += any(copies)
            if port in self.foreign:
                data = data[:8] + bytes(4 * [0x5A]) + data[12:]
            now = time.monotonic()
            for delay in copies:
                self._order += 1
                heapq.heappush(self._queue, (now + delay, self._order, arrived_ns, data, source))

    @staticmethod
    def _note_order(done: Done, seq: int) -> None:
        """Whether this copy leaves behind a later one: the peer's own timing decides, so count it."""
        if done.highest is None or 0 < (seq - done.highest) & 0xFFFF < 0x8000:
            done.highest = seq
        elif seq != done.highest:
            done.sent_behind += 1

    def idle(self) -> bool:
        return not self._queue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
