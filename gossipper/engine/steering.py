"""A run steered from another thread: a cluster node's share of a run (gossipper/cluster).

The node's run keeps its own event loop, like any run; the Ray actor that hosts it answers
the driver on other threads. Those threads never touch the run's objects: a command crosses
into the loop with call_soon_threadsafe, and what the driver reads (a copy of the counters,
the call records and unexpected status codes since its last read) is handed over in
thread-safe containers the loop fills once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from gossipper.stats.counters import RunCounters
from gossipper.stats.merge import snapshot

# What the driver may ask of a node's run, by the run's method names.
COMMANDS = frozenset({"soft_stop", "hard_stop", "quit_now", "set_rate", "set_limit", "pause_traffic"})


class Steerable(Protocol):
    """The run's side: what a command calls, on the run's loop."""

    def soft_stop(self) -> None: ...
    def hard_stop(self) -> None: ...
    def quit_now(self, tidy: bool = False) -> None: ...
    def set_rate(self, rate: float) -> None: ...
    def set_limit(self, limit: int) -> None: ...
    def pause_traffic(self) -> None: ...


class RecordBuffer:
    """-call_records on a node: the ended calls' records wait here for the driver, which
    writes the run's one file. The driver drains it each second, so it holds about a
    second of calls, not the run's."""

    def __init__(self) -> None:
        self._records: deque[dict[str, object]] = deque()

    def write(self, record: dict[str, object]) -> None:
        self._records.append(record)

    def flush(self) -> None:
        """Nothing to flush: the driver takes the records."""

    def close(self) -> None:
        """Nothing to close: records left here go with the run's result."""

    def drain(self) -> list[dict[str, object]]:
        taken: list[dict[str, object]] = []
        while self._records:
            taken.append(self._records.popleft())
        return taken


@dataclass
class Progress:
    """What a node tells the driver: its counters now (None before the run's first report),
    and what ended since the last read."""

    counters: RunCounters | None
    records: list[dict[str, object]] = field(default_factory=list)
    unexpected_codes: list[int] = field(default_factory=list)


class RunSteering:
    def __init__(self, keep_records: bool = False) -> None:
        self.records = RecordBuffer() if keep_records else None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._run: Steerable | None = None
        self._pending: list[tuple[str, tuple[object, ...]]] = []  # commands before the run started
        self._latest: RunCounters | None = None
        self._codes: deque[int] = deque()

    def attach(self, run: Steerable, loop: asyncio.AbstractEventLoop) -> None:
        """The run has started on `loop`: commands go to it from now on, and those that
        came first (a stop asked while the node was still setting up) are applied now."""
        with self._lock:
            self._run, self._loop = run, loop
            pending, self._pending = self._pending, []
        for name, args in pending:
            self._apply(name, args)

    def command(self, name: str, *args: object) -> None:
        """From any thread: one of COMMANDS, run on the run's loop."""
        if name not in COMMANDS:
            raise ValueError(f"unknown command {name!r}")
        with self._lock:
            if self._run is None:
                self._pending.append((name, args))
                return
        self._apply(name, args)

    def _apply(self, name: str, args: tuple[object, ...]) -> None:
        assert self._loop is not None and self._run is not None
        method: Callable[..., None] = getattr(self._run, name)
        with contextlib.suppress(RuntimeError):  # the loop is closed: the run has ended
            self._loop.call_soon_threadsafe(method, *args)

    def publish(self, counters: RunCounters) -> None:
        """On the run's loop, once a second: a copy the driver can read while the run goes on.
        Unexpected status codes (-trace_error_codes) are handed over, not kept, as the
        CSV that would have emptied them is the driver's."""
        codes, counters.unexpected_codes = counters.unexpected_codes, []
        self._codes.extend(codes)
        self._latest = snapshot(counters)

    def progress(self) -> Progress:
        """From any thread: the latest copy, and the records and codes since the last call."""
        codes: list[int] = []
        while self._codes:
            codes.append(self._codes.popleft())
        return Progress(self._latest, self.records.drain() if self.records else [], codes)

    def final(self, counters: RunCounters) -> tuple[RunCounters, Progress]:
        """The run's end: its last counters, with what the driver has not read yet."""
        self.publish(counters)
        progress = self.progress()
        assert progress.counters is not None
        return progress.counters, progress
