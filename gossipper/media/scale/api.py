"""The scale engine's contract: what the SIP engine and the standalone mode may ask of it.

Two backends implement it (the native C core and the pure-Python sender); callers
only see this module, so either can run where the other cannot. Streams are named
by call id because that is how the SIP side knows them.
"""

from __future__ import annotations

import errno
import secrets
import socket
from abc import ABC, abstractmethod
from dataclasses import dataclass

from gossipper.errors import BindError
from gossipper.media.codecs import Codec
from gossipper.stats.counters import MediaCounters

SOCKET_BUFFER_BYTES = 1 << 20  # large buffers absorb scheduler jitter (SPEC section 3)
RTP_HEADER_BYTES = 12
NS_PER_MS = 1_000_000


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
    """Sends every registered stream on schedule from a fixed number of threads."""

    name: str  # backend, as the start line and JSON `media.engine` show it
    reason: str  # why this backend runs (shown in the start line)

    @abstractmethod
    def start(self) -> None:
        """Start the sender threads; streams may be registered before or after."""

    @abstractmethod
    def register(self, call_id: str, spec: StreamSpec) -> None:
        """Open the stream's socket and schedule its first packet.

        Raises BindError when the local port is taken; ValueError when call_id is live.
        """

    @abstractmethod
    def pause(self, call_id: str) -> None:
        """Stop sending until resume; unknown ids are ignored (the call may have ended)."""

    @abstractmethod
    def resume(self, call_id: str) -> None:
        """Send again from the next slot, marker bit set, timestamp advanced by the gap."""

    @abstractmethod
    def unregister(self, call_id: str) -> StreamCounts | None:
        """Stop the stream for good and close its socket; its counts stay in the totals."""

    @abstractmethod
    def stream_counts(self, call_id: str) -> StreamCounts | None:
        """A live stream's counts so far (None when unknown)."""

    @abstractmethod
    def snapshot(self) -> MediaCounters:
        """Totals of every stream ever registered, including unregistered ones."""

    @abstractmethod
    def thread_count(self) -> int:
        """Sender threads this engine runs (O(cores), never O(streams))."""

    @abstractmethod
    def close(self) -> None:
        """Unregister everything, stop the threads; snapshot() stays valid afterwards."""
