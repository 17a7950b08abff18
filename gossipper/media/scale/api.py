"""The scale engine's contract: what the SIP engine and the standalone mode may ask of it.

Two backends implement it (the native C core and the pure-Python sender); callers
only see this module, so either can run where the other cannot. Streams are named
by call id because that is how the SIP side knows them.

The schedule both backends keep, and the counters that measure it, are written out
in ScaleEngine's docstring; the constants that bound it are below, under the same
names as in the native core's scalecore.h.
"""

from __future__ import annotations

import errno
import secrets
import socket
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from gossipper.errors import BindError
from gossipper.media import rtp
from gossipper.media.codecs import Codec
from gossipper.media.streams import SyntheticStream
from gossipper.stats.counters import MediaCounters
from gossipper.stats.quality import QualitySummary, StreamQuality

SOCKET_BUFFER_BYTES = 1 << 20  # large buffers absorb scheduler jitter (SPEC section 3)

# Shared with the native core: gossipper/media/scale/scalecore.h defines each of these by
# the same name and value, and tests/media/scale/test_native_core.py checks they agree.
NS_PER_MS = 1_000_000
RTP_HEADER_BYTES = rtp.FIXED_HEADER_BYTES  # the senders add no CSRC and no extension
RTP_VERSION = rtp.RTP_VERSION  # what comes back counts as RTP only with this version
MAX_WORKERS = 255  # native sender threads of one engine, at most: 8 bits of a stream handle
LATE_NS = NS_PER_MS  # sent more than this after its slot, a packet is late
LATE_2MS_NS = 2 * NS_PER_MS  # ... and more than this, not even on time within 2 ms
EARLY_NS = NS_PER_MS // 2  # a packet leaves at most this long before its slot...
MAX_EARLY_NS = 900_000  # ...but up to this under load on a native worker, which runs ahead
# Receive quality (scalecore.h's sc_quality): how sequence numbers are placed, and how far
# back an echo finds its send time.
MAX_DROPOUT = 3000  # a sequence number further ahead than this is a jump, believed when followed
MAX_MISORDER = 100  # ... and one further behind than this too
DUP_WINDOW = 64  # duplicates are told from reordered packets this many sequence numbers back
SEND_RING = 128  # send times kept per stream: an echo of an older packet has no round trip
# The errnos a connected UDP socket reports an ICMP error that came back for one of its
# packets with (port or host unreachable, parameter problem); scalecore.h's
# sc_is_icmp_report() takes the same, and the binding exposes them under this name.
ICMP_REPORT_ERRNOS = frozenset(
    {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.EPROTO}
)


@dataclass(frozen=True)
class StreamSpec:
    """One synthetic stream: where it sends from and to, and what it carries."""

    local_ip: str
    local_port: int
    remote_ip: str
    remote_port: int
    codec: Codec
    interval_ms: int
    duration_ms: int = 0  # 0: until paused forever, stopped or unregistered
    payload_type: int | None = None  # None: the codec's own
    channels: int = 1
    start_offset_ms: float = 0.0  # phase of the first packet after registration

    @classmethod
    def carrying(
        cls,
        stream: SyntheticStream,
        local: tuple[str, int],
        remote: tuple[str, int],
        start_offset_ms: float = 0.0,
    ) -> StreamSpec:
        """The spec that sends `stream` from local to remote."""
        return cls(
            local_ip=local[0],
            local_port=local[1],
            remote_ip=remote[0],
            remote_port=remote[1],
            codec=stream.codec,
            interval_ms=stream.interval_ms,
            duration_ms=stream.duration_ms,
            payload_type=stream.payload_type,
            channels=stream.channels,
            start_offset_ms=start_offset_ms,
        )

    @property
    def pt(self) -> int:
        return self.codec.payload_type if self.payload_type is None else self.payload_type

    @property
    def timestamp_step(self) -> int:
        return self.codec.samples_per_packet(self.interval_ms)

    @property
    def payload_bytes(self) -> int:
        return self.codec.payload_bytes(self.interval_ms, self.channels)

    @property
    def packet_limit(self) -> int:
        """Packets a stream with a duration sends in total (0 = unlimited)."""
        if self.duration_ms <= 0:
            return 0
        return max(1, self.duration_ms // self.interval_ms)


@dataclass(frozen=True)
class RtpStart:
    """A stream's random starting point, as RFC 3550 asks (SSRC, sequence, timestamp)."""

    ssrc: int
    sequence: int
    timestamp: int

    @classmethod
    def random(cls) -> RtpStart:
        return cls(secrets.randbits(32), secrets.randbits(16), secrets.randbits(32))


@dataclass
class StreamCounts:
    """Per-stream totals, kept after the stream is unregistered."""

    packets: int = 0
    octets: int = 0  # RTP payload octets, as RTCP's sender octet count
    send_errors: int = 0
    icmp_reports: int = 0  # ICMP errors the stream's socket reported (ScaleEngine's docstring)
    # from unregister, with quality on: its final figures (not what makes two counts equal)
    quality: StreamQuality | None = field(default=None, compare=False)


def open_stream_socket(spec: StreamSpec) -> socket.socket:
    """A UDP socket bound to the stream's own port and connected to its peer.

    Bound, so the SBC's return RTP finds an open port (no ICMP storm); connected, so
    each send needs no address and the kernel skips a route lookup per packet.
    """
    family = socket.AF_INET6 if ":" in spec.local_ip or ":" in spec.remote_ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
        try:
            sock.bind((spec.local_ip, spec.local_port))
        except OSError as error:
            reason = "in use" if error.errno == errno.EADDRINUSE else error.strerror
            raise BindError(f"media port {spec.local_ip}:{spec.local_port}: cannot bind ({reason})") from None
        sock.connect((spec.remote_ip, spec.remote_port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class ScaleEngine(ABC):
    """Sends every registered stream on schedule from a fixed number of threads.

    The schedule, the same in every backend:

    - Each stream has a grid of slots: packet k is due at first_due + k x interval, where
      first_due is the registration time plus the spec's start_offset_ms. A resumed or a
      late stream stays on this grid; only pause and resume move it (below).
    - No packet leaves more than EARLY_NS (0.5 ms) before its slot. The native core sends
      each 1 ms tick's packets as the tick begins, so a slot rounds to the nearest tick; a
      native worker that ends a batch less than 0.4 ms before its next tick sends that tick
      at once rather than sleep, so under load a packet may leave up to MAX_EARLY_NS
      (0.9 ms) early. The Python backend sends a packet due within EARLY_NS at once.
    - A packet's lateness is the time of its send minus its slot, 0 when early. Every
      packet sent counts in `late_packets` when later than LATE_NS (1 ms), else in
      `on_time_1ms`, and in `on_time_2ms` when not later than LATE_2MS_NS (2 ms);
      `max_late_ms` is the largest lateness. A failed send counts only in `send_errors`.
    - An ICMP error that comes back for a packet (port unreachable: nobody listens there)
      is kept by the connected socket, whose next send fails with it (ECONNREFUSED, or
      another of ICMP_REPORT_ERRNOS) without sending. That report counts in
      `icmp_unreachable` by errno, never in `send_errors`, and the same packet goes again
      at once, once: sent, it counts as any packet does; failing again, in `send_errors`.
      A report met while counting what came back (the stream no longer sends) counts in
      `icmp_unreachable` too. So a port with no listener costs each packet a second send,
      never the packet.
    - A stream one interval or more behind (a stall of the process or its CPU) skips to its
      latest due slot: the slots in between send nothing (counted as skipped), so there is
      never a burst to catch up. Nor after a late packet: the next one leaves half an
      interval after it at the soonest, late itself rather than close behind.
    - The RTP timestamp follows the schedule: it advances by the codec's step per slot,
      skipped slots included. The sequence number counts packets: it advances by one per
      attempted send, skipped slots excluded. Both move on after a failed send too (the
      receiver sees the loss); a stream's packet limit (duration_ms) counts attempted sends.
    - The first packet of a stream carries the marker bit, and so does the first after a
      resume. Resume puts the stream back on its grid at the first slot not in the past,
      the timestamp advanced over the slots it missed while paused.
    - A stream whose packet limit is reached stops sending but stays registered, its port
      open, until unregistered.

    What comes back to a stream's port is counted too (received packets and payload
    octets; datagrams shorter than RTP_HEADER_BYTES or not of RTP_VERSION as malformed),
    in the engine's totals only; unregister counts what is still queued before it closes
    the socket.

    With quality on (the default; `quality=False` to the backend's constructor turns it
    off), each stream also follows the RTP that comes back as RFC 3550's receiver does
    (scalecore.h's sc_quality: expected, lost, duplicates, reordered, interarrival jitter
    from kernel arrival stamps) and, when it is its own RTP echoed, the round trip of each
    packet. stream_quality() reads one live stream's figures, unregister returns the final
    ones in StreamCounts.quality, and quality_summary() aggregates every stream's.
    """

    name: str  # backend, as the start line and JSON `media.engine` show it
    reason: str  # why this backend runs (shown in the start line)
    quality: bool  # receive quality is measured

    @abstractmethod
    def start(self) -> None:
        """Start the sender threads; streams may be registered before or after.

        Streams registered before start whose slots have passed meanwhile skip to their
        latest slot when it begins, like any stream an interval behind.
        """

    @abstractmethod
    def register(self, call_id: str, spec: StreamSpec) -> None:
        """Open the stream's socket and schedule its first packet, with the marker bit, at
        its first slot: now plus the spec's start_offset_ms.

        Raises BindError when the local port is taken; ValueError when call_id is live.
        """

    @abstractmethod
    def pause(self, call_id: str) -> None:
        """Stop sending until resume; unknown ids are ignored (the call may have ended)."""

    @abstractmethod
    def resume(self, call_id: str) -> None:
        """Send again from the stream's first grid slot not in the past, marker bit set,
        timestamp advanced by the slots missed; a stream not paused is left alone."""

    @abstractmethod
    def unregister(self, call_id: str) -> StreamCounts | None:
        """Stop the stream for good and close its socket; its counts stay in the totals."""

    @abstractmethod
    def stream_counts(self, call_id: str) -> StreamCounts | None:
        """A live stream's counts so far (None when unknown)."""

    @abstractmethod
    def stream_quality(self, call_id: str) -> StreamQuality | None:
        """A live stream's receive quality so far (None when unknown or quality is off)."""

    @abstractmethod
    def quality_summary(self) -> QualitySummary | None:
        """Every stream's quality, ended and live, aggregated (None when quality is off).

        It reads every live stream, so it costs more than snapshot(): views refresh it
        now and then, not every second.
        """

    @abstractmethod
    def snapshot(self) -> MediaCounters:
        """Totals of every stream ever registered, including unregistered ones; the timing
        counters are those of the schedule above."""

    @abstractmethod
    def thread_count(self) -> int:
        """Sender threads this engine runs (O(cores), never O(streams))."""

    @abstractmethod
    def close(self) -> None:
        """Unregister everything, stop the threads; snapshot() stays valid afterwards."""
