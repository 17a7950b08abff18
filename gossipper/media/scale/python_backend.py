"""The pure-Python scale backend: one sender thread, one heap of due times, one send() per packet.

It runs wherever the native core cannot be built and is the reference the native core is
tested against, so it keeps the same schedule, the one ScaleEngine's docstring (api.py)
spells out, bounded by the same constants (LATE_NS, LATE_2MS_NS, EARLY_NS).

Only the sender thread touches stream state and sockets. Other threads hand it commands
through a locked list and wake it; pause, resume and unregister wait until the sender has
applied them, so once unregister returns the socket is closed and no packet follows.
Heap keys are plain ints (due_ns << 24 | entry) because one int comparison is the
cheapest ordering Python offers; an entry number names one heap entry, so pausing or
rescheduling a stream just makes its old entry stale instead of searching the heap.

What comes back to a stream's port (an SBC's RTP, an echo) is counted by the same thread:
every socket sits in one edge-triggered epoll that the sender polls, without waiting, each
time before it sleeps, so a packet sent costs nothing more when nothing comes back and the
streams need no reader threads. Like the native core, it counts totals only (StreamCounts
has no received fields), and unregister drains the socket once more before closing it.
With quality on, each stream has a ReceiveTracker (gossipper/media/scale/quality.py): the
sender notes each send's time in it, and the receive path reads each packet's header and
kernel arrival stamp into it, by the native core's rules.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable

from gossipper.media.rtp import MARKER_BIT, MARKER_PT_OFFSET, SEQ_TS, SEQ_TS_OFFSET, RtpHeader, build_packet
from gossipper.media.scale.api import (
    EARLY_NS,
    ICMP_REPORT_ERRNOS,
    LATE_2MS_NS,
    LATE_NS,
    NS_PER_MS,
    RTP_HEADER_BYTES,
    RTP_VERSION,
    RtpStart,
    ScaleEngine,
    StreamCounts,
    StreamSpec,
    open_stream_socket,
)
from gossipper.media.scale.quality import (
    ANCILLARY_BYTES,
    NO_SEND,
    SO_TIMESTAMPNS,
    QualityBook,
    ReceiveTracker,
    arrival_ns,
    figures_of,
    realtime_offset_ns,
    summarise,
)
from gossipper.stats.counters import MediaCounters
from gossipper.stats.quality import QualitySummary, StreamQuality

_ENTRY_BITS = 24
_ENTRY_MASK = (1 << _ENTRY_BITS) - 1
_IDLE_WAIT_S = 1.0  # sleep while no stream is scheduled; commands wake the thread anyway
_UNLIMITED = 1 << 62
_NO_ENTRY = -1
_EPOLL_EVENTS = 1024  # ready sockets taken per epoll.poll(); a full batch means poll again


class _Stream:
    """Per-stream state; __slots__ keeps attribute access cheap on the per-packet path."""

    __slots__ = (
        "attempts",
        "due",
        "entry",
        "finished",
        "icmp_reports",
        "interval_ns",
        "limit",
        "marker",
        "packet",
        "payload_bytes",
        "pt_byte",
        "send",
        "send_errors",
        "sequence",
        "sock",
        "spec",
        "step",
        "timestamp",
        "tracker",
    )

    def __init__(self, spec: StreamSpec, first_due: int, quality: bool = False) -> None:
        start = RtpStart.random()
        header = RtpHeader(spec.pt, start.sequence, start.timestamp, start.ssrc)
        self.sock = open_stream_socket(spec)
        self.spec = spec
        self.tracker: ReceiveTracker | None = None
        if quality:
            self.tracker = ReceiveTracker(spec.codec.clock_rate, start.ssrc)
            self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.send: Callable[[bytearray], int] = self.sock.send
        self.packet = build_packet(header, bytes((spec.codec.silence_byte,)) * spec.payload_bytes)
        self.pt_byte = spec.pt
        self.payload_bytes = spec.payload_bytes
        self.interval_ns = spec.interval_ms * NS_PER_MS
        self.step = spec.timestamp_step
        self.sequence = start.sequence
        self.timestamp = start.timestamp
        self.due = first_due
        self.entry = _NO_ENTRY  # the heap entry that may send this stream; none while paused
        self.limit = spec.packet_limit or _UNLIMITED  # sends to attempt; skipped slots are free
        self.marker = True
        self.finished = False
        self.attempts = 0  # sends attempted: one per packet, sent or failed (a retry is not one)
        self.send_errors = 0
        self.icmp_reports = 0

    @property
    def packets(self) -> int:
        """Packets sent. Counting attempts alone spares the per-packet path one update."""
        return self.attempts - self.send_errors

    def counts(self) -> StreamCounts:
        packets = self.packets
        return StreamCounts(packets, packets * self.payload_bytes, self.send_errors, self.icmp_reports)

    def quality(self) -> StreamQuality | None:
        return None if self.tracker is None else figures_of(self.tracker.raw(), self.spec)


class _Timing:
    """Totals the sender updates and snapshot() reads from other threads. Only late packets
    are counted: the on-time counts are the packets sent less these, so a packet on time
    costs the per-packet path no update here."""

    __slots__ = ("late", "late_2ms", "max_late_ns", "skipped")

    def __init__(self) -> None:
        self.late = self.late_2ms = self.max_late_ns = self.skipped = 0


class _Received:
    """What came back to the streams' sockets; the sender adds, snapshot() reads."""

    __slots__ = ("malformed", "octets", "packets")

    def __init__(self) -> None:
        self.packets = 0
        self.octets = 0  # RTP payload octets: datagram length minus the fixed header
        self.malformed = 0  # shorter than an RTP header, or not RTP version 2


class _Command:
    __slots__ = ("action", "done", "stream")

    def __init__(self, action: str, stream: _Stream | None, done: threading.Event | None) -> None:
        self.action = action
        self.stream = stream
        self.done = done


class PythonScaleEngine(ScaleEngine):
    """ScaleEngine in pure Python: one sender thread, whatever the number of streams."""

    name = "python"

    def __init__(self, quality: bool = True) -> None:
        self.reason = "pure Python"
        self.quality = quality
        self._book = QualityBook()
        self._header = bytearray(RTP_HEADER_BYTES)  # recvmsg target of a quality stream
        self._lock = threading.Lock()
        self._wake = threading.Lock()
        self._wake.acquire()  # held while nobody asks the sender to wake; see _wake_sender
        self._pending: list[_Command] = []
        self._streams: dict[str, _Stream] = {}
        self._heap: list[int] = []
        self._entries: list[_Stream | None] = []
        self._free_entries: list[int] = []
        self._timing = _Timing()
        self._received = _Received()
        self._epoll = select.epoll()
        self._by_fd: dict[int, _Stream] = {}  # the streams in the epoll, as it names them
        self._first_byte = bytearray(1)  # recv target: MSG_TRUNC still reports the whole length
        self._send_errors: Counter[str] = Counter()
        self._icmp_reports: Counter[str] = Counter()
        self._thread: threading.Thread | None = None
        self._sender_running = False  # True from start() until the sender has taken "close"
        self._closed = False
        self._closed_totals = StreamCounts()
        self._streams_started = 0
        self._streams_active_max = 0

    # --- the ScaleEngine contract -------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="gossipper-rtp-sender", daemon=True)
            self._sender_running = True
            self._thread.start()

    def register(self, call_id: str, spec: StreamSpec) -> None:
        with self._lock:
            self._refuse_unless_free(call_id)
        stream = _Stream(spec, time.monotonic_ns() + round(spec.start_offset_ms * NS_PER_MS), self.quality)
        with self._lock:
            try:
                self._refuse_unless_free(call_id)  # again: the socket took time to open
            except BaseException:
                stream.sock.close()
                raise
            self._streams[call_id] = stream
            self._streams_started += 1
            self._streams_active_max = max(self._streams_active_max, len(self._streams))
        self._submit(_Command("register", stream, None))

    def pause(self, call_id: str) -> None:
        self._command_for(call_id, "pause")

    def resume(self, call_id: str) -> None:
        self._command_for(call_id, "resume")

    def unregister(self, call_id: str) -> StreamCounts | None:
        stream = self._command_for(call_id, "unregister")
        if stream is None:
            return None
        counts = stream.counts()
        counts.quality = stream.quality()  # the socket is drained and closed: final figures
        with self._lock:
            if self._streams.get(call_id) is stream:
                del self._streams[call_id]
                self._add_to_closed(stream)
                if counts.quality is not None:
                    self._book.ended(counts.quality)
        return counts

    def stream_counts(self, call_id: str) -> StreamCounts | None:
        stream = self._streams.get(call_id)
        return stream.counts() if stream is not None else None

    def stream_quality(self, call_id: str) -> StreamQuality | None:
        stream = self._streams.get(call_id)
        return stream.quality() if stream is not None else None

    def quality_summary(self) -> QualitySummary | None:
        if not self.quality:
            return None
        with self._lock:  # a stream ending meanwhile counts once: live here or ended in the book
            live = list(self._streams.values())
            aggregate = self._book.ended_so_far()
        return summarise(aggregate, (figures for stream in live if (figures := stream.quality()) is not None))

    def snapshot(self) -> MediaCounters:
        with self._lock:
            totals = StreamCounts(
                self._closed_totals.packets, self._closed_totals.octets, self._closed_totals.send_errors
            )
            for stream in self._streams.values():
                totals.packets += stream.packets
                totals.octets += stream.packets * stream.payload_bytes
            started, active, active_max = (
                self._streams_started,
                len(self._streams),
                self._streams_active_max,
            )
        timing = self._timing
        received = self._received
        return MediaCounters(
            engine=self.name,
            rtp_packets_sent=totals.packets,
            rtp_octets_sent=totals.octets,
            rtp_packets_received=received.packets,
            rtp_octets_received=received.octets,
            malformed_rtp=received.malformed,
            streams_started=started,
            streams_active=active,
            streams_active_max=active_max,
            send_errors=Counter(dict(self._send_errors)),
            icmp_unreachable=Counter(dict(self._icmp_reports)),
            late_packets=timing.late,
            max_late_ms=timing.max_late_ns / NS_PER_MS,
            # read after the packets, the late counts may include a packet or two more
            on_time_1ms=max(0, totals.packets - timing.late),
            on_time_2ms=max(0, totals.packets - timing.late_2ms),
        )

    def thread_count(self) -> int:
        thread = self._thread
        return 1 if thread is not None and thread.is_alive() else 0

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._submit(_Command("close", None, threading.Event()))
        thread = self._thread
        if thread is not None:
            thread.join()
        with self._lock:
            for stream in self._streams.values():
                self._add_to_closed(stream)
                if (figures := stream.quality()) is not None:
                    self._book.ended(figures)
            self._streams.clear()
            self._epoll.close()

    @property
    def slots_skipped(self) -> int:
        """Slots no packet went out in because the stream was over one interval behind."""
        return self._timing.skipped

    # --- commands -------------------------------------------------------------------------

    def _refuse_unless_free(self, call_id: str) -> None:
        """Raise unless call_id may register now (caller holds the lock); a closed engine sends no more."""
        if self._closed:
            raise RuntimeError("scale engine is closed")
        if call_id in self._streams:
            raise ValueError(f"call {call_id!r} already has a registered stream")

    def _command_for(self, call_id: str, action: str) -> _Stream | None:
        stream = self._streams.get(call_id)
        if stream is not None:
            self._submit(_Command(action, stream, threading.Event()))
        return stream

    def _submit(self, command: _Command) -> None:
        """Hand a command to the sender and wait for it; apply it here if no sender runs."""
        with self._lock:
            running = self._sender_running
            if running:
                self._pending.append(command)
            else:
                self._apply(command)
        if running:
            self._wake_sender()
            if command.done is not None:
                command.done.wait()

    def _wake_sender(self) -> None:
        # RuntimeError: another waker released it already and the sender has not slept since.
        with contextlib.suppress(RuntimeError):
            self._wake.release()

    def _drain_commands(self) -> bool:
        """Apply queued commands in the sender; False once asked to stop."""
        with self._lock:
            commands = self._pending[:]
            self._pending.clear()
            for command in commands:
                if not self._apply(command):
                    self._sender_running = False
            return self._sender_running

    def _apply(self, command: _Command) -> bool:
        """Carry out one command (in the sender, or under the lock when no sender runs)."""
        stream = command.stream
        if command.action == "close":
            for live in self._streams.values():
                self._stop_stream(live)
            self._heap.clear()
        elif stream is not None and command.action == "register" and not stream.finished:
            # finished already: a close overtook this register and has closed the socket
            self._epoll.register(stream.sock, select.EPOLLIN | select.EPOLLET)
            self._by_fd[stream.sock.fileno()] = stream
            self._schedule(stream)
        elif stream is not None and command.action == "pause":
            stream.entry = _NO_ENTRY
        elif stream is not None and command.action == "resume":
            if stream.entry == _NO_ENTRY and not stream.finished:
                self._realign(stream, time.monotonic_ns())
                stream.marker = True
                self._schedule(stream)
        elif stream is not None and command.action == "unregister":
            self._stop_stream(stream)
        if command.done is not None:
            command.done.set()
        return command.action != "close"

    def _schedule(self, stream: _Stream) -> None:
        if self._free_entries:
            entry = self._free_entries.pop()
            self._entries[entry] = stream
        else:
            entry = len(self._entries)
            if entry > _ENTRY_MASK:
                raise RuntimeError("scale engine: too many scheduled streams")
            self._entries.append(stream)
        stream.entry = entry
        heapq.heappush(self._heap, (stream.due << _ENTRY_BITS) | entry)

    def _stop_stream(self, stream: _Stream) -> None:
        """Stop sending; count what arrived since the last poll, then close the socket."""
        stream.finished = True
        stream.entry = _NO_ENTRY
        if self._by_fd.pop(stream.sock.fileno(), None) is stream:  # not stopped before
            self._epoll.unregister(stream.sock)
            self._receive(stream)
        stream.sock.close()

    def _add_to_closed(self, stream: _Stream) -> None:
        counts = stream.counts()
        self._closed_totals.packets += counts.packets
        self._closed_totals.octets += counts.octets
        self._closed_totals.send_errors += counts.send_errors
        self._closed_totals.icmp_reports += counts.icmp_reports

    @staticmethod
    def _realign(stream: _Stream, now: int) -> None:
        """Move a resumed stream to its first grid slot not in the past; time moves the timestamp."""
        if now > stream.due:
            slots = -((stream.due - now) // stream.interval_ns)  # ceiling division
            stream.due += slots * stream.interval_ns
            stream.timestamp = (stream.timestamp + slots * stream.step) & 0xFFFFFFFF

    # --- receiving (in the sender) ------------------------------------------------------

    def _poll_received(self) -> None:
        """Drain every stream socket that became readable; never waits."""
        poll = self._epoll.poll
        by_fd = self._by_fd
        while True:
            ready = poll(0, _EPOLL_EVENTS)
            for fd, events in ready:
                stream = by_fd[fd]
                # An error (ICMP to an earlier send) on a stream that still sends is the next
                # send's to report and count; recv() would swallow it. Its data waits for the
                # next arrival or the unregister drain, as in the native core.
                if not (events & select.EPOLLERR and stream.entry != _NO_ENTRY):
                    self._receive(stream)
            if len(ready) < _EPOLL_EVENTS:
                return

    def _receive(self, stream: _Stream) -> None:
        """Count every datagram queued on a stream's socket, reading only its first byte.

        A recv() error is a pending error of an earlier send, consumed by the call (an ICMP
        report counts as one); the drain goes on after one, and a second in a row (a socket
        that can only fail) ends it.
        """
        if stream.tracker is not None:
            self._receive_measured(stream, stream.tracker)
            return
        sock = stream.sock
        first = self._first_byte
        received = self._received
        failed = False
        while True:
            try:
                length = sock.recv_into(first, 1, socket.MSG_TRUNC)
            except BlockingIOError:
                return
            except OSError as error:
                if self._receive_failed(stream, error, failed):
                    return
                failed = True
                continue
            failed = False
            if length < RTP_HEADER_BYTES or first[0] >> 6 != RTP_VERSION:
                received.malformed += 1
            else:
                received.packets += 1
                received.octets += length - RTP_HEADER_BYTES

    def _receive_failed(self, stream: _Stream, error: OSError, failed_before: bool) -> bool:
        """A recv() error: an ICMP report is an earlier packet's, which no send will meet now,
        so it is counted here; -> whether the drain ends (a second error in a row)."""
        if error.errno in ICMP_REPORT_ERRNOS:
            self._count_icmp_report(stream, error)
        return failed_before

    def _receive_measured(self, stream: _Stream, tracker: ReceiveTracker) -> None:
        """_receive for a quality stream: each packet's header and arrival stamp go to its tracker."""
        sock = stream.sock
        header = self._header
        buffers = [header]
        received = self._received
        offset = realtime_offset_ns()
        failed = False
        while True:
            try:
                length, ancillary, _, _ = sock.recvmsg_into(buffers, ANCILLARY_BYTES, socket.MSG_TRUNC)
            except BlockingIOError:
                return
            except OSError as error:
                if self._receive_failed(stream, error, failed):
                    return
                failed = True
                continue
            failed = False
            if length < RTP_HEADER_BYTES or header[0] >> 6 != RTP_VERSION:
                received.malformed += 1
                continue
            received.packets += 1
            received.octets += length - RTP_HEADER_BYTES
            tracker.note_arrival(header, arrival_ns(ancillary, offset, time.monotonic_ns()))

    # --- the sender thread ----------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._send_loop()
        finally:
            # Whatever stopped the sender, no caller may wait forever on a queued command.
            with self._lock:
                self._sender_running = False
                for command in self._pending:
                    self._apply(command)
                self._pending.clear()

    def _send_loop(self) -> None:
        """Send every due packet, then sleep until the next one is due (or a command comes)."""
        heap = self._heap
        entries = self._entries
        pending = self._pending
        timing = self._timing
        send_failed = self._send_failed
        monotonic_ns = time.monotonic_ns
        heappop = heapq.heappop
        heapreplace = heapq.heapreplace
        patch = SEQ_TS.pack_into
        sleep_until_woken = self._wake.acquire
        poll_received = self._poll_received
        late_ns = LATE_NS
        max_late = timing.max_late_ns
        while True:
            if pending:
                if not self._drain_commands():
                    return
                continue
            if not heap:
                poll_received()
                sleep_until_woken(True, _IDLE_WAIT_S)
                continue
            key = heap[0]
            send_at = key >> _ENTRY_BITS
            now = monotonic_ns()
            # Due within EARLY_NS: sent at once rather than slept for, as the native core's
            # 1 ms tick sends what is due within half a millisecond of it. Each wake-up (a
            # timed lock wait and an epoll poll) costs as much as a few packets, so the window
            # sets how many packets share one: a narrower one costs more CPU per packet
            # (bench/rtp_scale.py measures it). A thread asked to sleep also wakes a little
            # late (timer slack plus the GIL).
            if send_at - now > EARLY_NS:
                poll_received()
                wait = send_at - monotonic_ns()  # the drain may have taken part of the gap
                if wait > EARLY_NS:
                    sleep_until_woken(True, wait / 1e9)
                continue
            entry = key & _ENTRY_MASK
            stream = entries[entry]
            if stream is None or stream.entry != entry:  # paused, stopped or rescheduled since
                heappop(heap)
                entries[entry] = None
                self._free_entries.append(entry)
                continue
            interval = stream.interval_ns
            due = stream.due
            late = now - due
            if late >= interval:  # a whole slot behind: jump to the latest slot, never burst
                slots = late // interval
                timing.skipped += slots
                due += slots * interval
                late -= slots * interval
                stream.timestamp = (stream.timestamp + slots * stream.step) & 0xFFFFFFFF
            packet = stream.packet
            patch(packet, SEQ_TS_OFFSET, stream.sequence, stream.timestamp)
            marker = stream.marker
            if marker:
                packet[MARKER_PT_OFFSET] = MARKER_BIT | stream.pt_byte
            # Counted before the send: a snapshot meanwhile may count a failing packet as sent
            # for a moment, but never one that went out as missing.
            attempts = stream.attempts + 1
            stream.attempts = attempts
            went = True
            tracker = stream.tracker
            # The echo's round trip starts as the packet is handed over: a stamp taken after
            # the send could come after the echo's own arrival stamp if this thread is
            # descheduled as the send returns, as a busy machine does.
            handed = monotonic_ns() if tracker is not None else 0
            try:
                stream.send(packet)
            except OSError as error:
                went = send_failed(stream, packet, error)
                if not went:
                    late = -1  # not sent: no lateness to count
            if tracker is not None:
                tracker.note_sent(stream.sequence, handed if went else NO_SEND)
            if late > late_ns:
                timing.late += 1
                if late > LATE_2MS_NS:
                    timing.late_2ms += 1
            if late > max_late:  # rarely true: the shared total is written only then
                max_late = timing.max_late_ns = late
            if marker:
                packet[MARKER_PT_OFFSET] = stream.pt_byte
                stream.marker = False
            # Sequence and timestamp move on even after a failed send, as the native core does:
            # the packet is lost at the sender, and the receiver sees the gap as loss.
            stream.sequence = (stream.sequence + 1) & 0xFFFF
            stream.timestamp = (stream.timestamp + stream.step) & 0xFFFFFFFF
            if attempts >= stream.limit:
                self._finish(stream, entry)
                continue
            due += interval
            stream.due = due
            # A late packet is followed half an interval later at the soonest, never at once.
            earliest = now + (interval >> 1)
            heapreplace(heap, ((due if due > earliest else earliest) << _ENTRY_BITS) | entry)

    def _send_failed(self, stream: _Stream, packet: bytearray, error: OSError) -> bool:
        """Count a failed send; returns whether the packet went out after all.

        An ICMP report (ECONNREFUSED from a port with no listener...) is the socket's news of
        an earlier packet, handed to this send instead of sending it: counted apart, and the
        packet goes again at once, once, a failure of that counting as a send error.
        """
        if error.errno in ICMP_REPORT_ERRNOS:
            self._count_icmp_report(stream, error)
            try:
                stream.send(packet)
            except OSError as again:
                error = again
            else:
                return True
        self._send_errors[errno.errorcode.get(error.errno or 0, f"errno {error.errno}")] += 1
        stream.send_errors += 1
        return False

    def _count_icmp_report(self, stream: _Stream, error: OSError) -> None:
        self._icmp_reports[errno.errorcode.get(error.errno or 0, f"errno {error.errno}")] += 1
        stream.icmp_reports += 1

    def _finish(self, stream: _Stream, entry: int) -> None:
        """A stream whose duration is over stays registered (its port open) until unregistered."""
        heapq.heappop(self._heap)
        self._entries[entry] = None
        self._free_entries.append(entry)
        stream.entry = _NO_ENTRY
        stream.finished = True
