"""The scale engine on top of the native core (`_scalecore`): Python opens the sockets and
chooses each stream's random start, the core's threads do all the sending.

Python keeps every socket: the core only borrows descriptors, so a socket is closed here,
after the core's remove() has promised never to send on it again. (In mode "send" each
worker sends through its own duplicate; remove() has the worker close it and waits for
that, so the port is free as soon as the socket here is closed.)

What comes back to a stream's port (an SBC's RTP, an echo) is counted by the core's threads
too, never read here: it shows in snapshot() only, as StreamCounts has no received fields.
With quality on, the core also keeps each stream's receive quality (a stream is added with
its codec's clock rate); this side only turns the core's raw counts into figures when asked.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
import time
from collections import Counter

from gossipper.media.rtp import RtpHeader
from gossipper.media.scale._scalecore import Core
from gossipper.media.scale.api import (
    MAX_WORKERS,
    NS_PER_MS,
    RtpStart,
    ScaleEngine,
    StreamCounts,
    StreamSpec,
    open_stream_socket,
)
from gossipper.media.scale.quality import QualityBook, RawQuality, figures_of, summarise
from gossipper.stats.counters import MediaCounters
from gossipper.stats.quality import QualitySummary, StreamQuality

DEFAULT_WORKERS_MAX = 32  # one worker per CPU by default, up to this; more only when asked for


def default_workers() -> int:
    return min(os.cpu_count() or 1, DEFAULT_WORKERS_MAX)


def start_header(spec: StreamSpec) -> bytes:
    """The first packet's header; the core sets the marker bit and advances seq/timestamp."""
    start = RtpStart.random()
    return bytes(RtpHeader(spec.pt, start.sequence, start.timestamp, start.ssrc))


def _counts(totals: tuple[int, int, int, int]) -> StreamCounts:
    packets, octets, errors, icmp_reports = totals
    return StreamCounts(packets=packets, octets=octets, send_errors=errors, icmp_reports=icmp_reports)


def _raw(figures: tuple[int | bool, ...]) -> RawQuality:
    """A core quality tuple (handle first) as RawQuality."""
    return RawQuality(*figures[1:])  # type: ignore[arg-type]


def _by_name(counts: dict[int, int]) -> Counter[str]:
    """{errno: count} as {errno name: count}."""
    return Counter({errno.errorcode.get(code, f"errno {code}"): count for code, count in counts.items()})


class NativeScaleEngine(ScaleEngine):
    """Streams sharded over a few native sender threads (send() loop or io_uring batches)."""

    def __init__(
        self,
        workers: int | None = None,
        use_iouring: bool = False,
        rt_priority: int = 0,
        quality: bool = True,
    ) -> None:
        count = default_workers() if workers is None else min(workers, MAX_WORKERS)  # the core refuses more
        self._core = Core(count, "iouring" if use_iouring else "send")
        self._rt_priority = rt_priority
        self.name = f"native-{self._core.mode}"
        self.reason = self._core.mode_reason
        self.workers = count  # the factory's start line shows it
        self._lock = threading.Lock()
        self._streams: dict[str, tuple[int, socket.socket]] = {}
        self.quality = quality
        self._specs: dict[int, StreamSpec] = {}  # by handle: what the quality figures name
        self._book = QualityBook()
        self._started = 0
        self._active_max = 0

    def start(self) -> None:
        self._core.start(rt_priority=self._rt_priority)
        self.reason = f"{self.reason}; {self.scheduling()}"

    def scheduling(self) -> str:
        """How the workers are scheduled, and what to do when real-time priority was refused."""
        if self._core.rt_priority:
            return f"workers at real-time priority SCHED_RR {self._core.rt_priority}"
        if not self._rt_priority:
            return "workers at normal priority (-media_rtprio 0)"
        return (
            f"workers at normal priority: SCHED_RR {self._rt_priority} refused ({self._core.rt_error}); "
            f"run as root, grant CAP_SYS_NICE or raise `ulimit -r` for steadier timing"
        )

    def register(self, call_id: str, spec: StreamSpec) -> None:
        with self._lock:
            if call_id in self._streams:
                raise ValueError(f"RTP stream for call {call_id!r} is already registered")
            sock = open_stream_socket(spec)
            try:
                handle = self._core.add(
                    sock.fileno(),
                    start_header(spec),
                    spec.payload_bytes,
                    spec.codec.silence_byte,
                    spec.timestamp_step,
                    spec.interval_ms * NS_PER_MS,
                    time.monotonic_ns() + round(spec.start_offset_ms * NS_PER_MS),
                    spec.packet_limit,
                    clock_rate=spec.codec.clock_rate if self.quality else 0,
                )
            except BaseException:
                sock.close()
                raise
            self._streams[call_id] = (handle, sock)
            self._specs[handle] = spec
            self._started += 1
            self._active_max = max(self._active_max, len(self._streams))

    def pause(self, call_id: str) -> None:
        with self._lock:  # held across the call so that unregister cannot remove it meanwhile
            entry = self._streams.get(call_id)
            if entry is not None:
                self._core.pause(entry[0])

    def resume(self, call_id: str) -> None:
        with self._lock:
            entry = self._streams.get(call_id)
            if entry is not None:
                self._core.resume(entry[0])

    def unregister(self, call_id: str) -> StreamCounts | None:
        with self._lock:
            entry = self._streams.pop(call_id, None)
            spec = None if entry is None else self._specs.pop(entry[0])
        if entry is None or spec is None:
            return None
        handle, sock = entry
        try:
            if not self.quality:
                return _counts(self._core.remove(handle))
            sent, raw = self._core.remove_with_quality(handle)
        finally:
            sock.close()
        counts = _counts(sent)
        counts.quality = figures_of(_raw(raw), spec)
        with self._lock:
            self._book.ended(counts.quality)
        return counts

    def stream_quality(self, call_id: str) -> StreamQuality | None:
        with self._lock:
            entry = self._streams.get(call_id)
            if entry is None or not self.quality:
                return None
            return figures_of(_raw(self._core.stream_quality(entry[0])), self._specs[entry[0]])

    def quality_summary(self) -> QualitySummary | None:
        if not self.quality:
            return None
        with self._lock:  # a stream ending meanwhile counts once: live here or ended in the book
            live = [
                (figures, spec)
                for figures in self._core.quality_list()
                if (spec := self._specs.get(int(figures[0]))) is not None
            ]
            aggregate = self._book.ended_so_far()
        return summarise(aggregate, (figures_of(_raw(figures), spec) for figures, spec in live))

    def stream_counts(self, call_id: str) -> StreamCounts | None:
        with self._lock:
            entry = self._streams.get(call_id)
            return None if entry is None else _counts(self._core.stream_stats(entry[0]))

    def snapshot(self) -> MediaCounters:
        stats = self._core.stats()
        with self._lock:
            started, active, active_max = self._started, len(self._streams), self._active_max
        return MediaCounters(
            engine=self.name,
            rtp_packets_sent=stats["packets"],
            rtp_octets_sent=stats["octets"],
            rtp_packets_received=stats["received_packets"],
            rtp_octets_received=stats["received_octets"],
            malformed_rtp=stats["received_malformed"],
            send_errors=_by_name(stats["errors"]),
            icmp_unreachable=_by_name(stats["icmp_reports"]),
            late_packets=stats["late_packets"],
            max_late_ms=stats["max_late_ns"] / NS_PER_MS,
            on_time_1ms=stats["on_time_1ms"],
            on_time_2ms=stats["on_time_2ms"],
            streams_started=started,
            streams_active=active,
            streams_active_max=active_max,
        )

    def thread_count(self) -> int:
        return self.workers

    def close(self) -> None:
        # Workers first: each closes its own descriptor table as it exits, so the removes
        # below have nothing left to queue for them.
        self._core.stop()
        with self._lock:
            call_ids = list(self._streams)
        for call_id in call_ids:
            self.unregister(call_id)
