"""Types of the native core's binding (_scalecore.c); the engine itself is scalecore.c.

Handles are the ints add() returns; a handle that is unknown or already removed raises
ValueError in every method that takes one.
"""

from typing import Final, Literal, TypedDict, final

from _typeshed import ReadableBuffer

# The constants api.py holds by the same names (tests check that the values agree).
NS_PER_MS: Final[int]
RTP_HEADER_BYTES: Final[int]
RTP_VERSION: Final[int]
MAX_WORKERS: Final[int]
LATE_NS: Final[int]
LATE_2MS_NS: Final[int]
EARLY_NS: Final[int]
MAX_EARLY_NS: Final[int]
# The errnos the core counts as ICMP reports (api.py's ICMP_REPORT_ERRNOS), ascending.
ICMP_REPORT_ERRNOS: Final[tuple[int, ...]]
MAX_DROPOUT: Final[int]
MAX_MISORDER: Final[int]
DUP_WINDOW: Final[int]
SEND_RING: Final[int]

# A stream's receive quality, scalecore.h's sc_quality in its order: (handle, ssrc, echo,
# received, expected, lost, duplicates, reordered, seq_jumps, ssrc_changes, jitter_ns,
# jitter_max_ns, rtt_count, rtt_sum_ns, rtt_min_ns, rtt_max_ns, rtt_unmatched).
_Quality = tuple[int, int, bool, int, int, int, int, int, int, int, int, int, int, int, int, int, int]

class _CoreStats(TypedDict):
    """Core.stats(): totals of every stream the core ever had, removed ones included.

    Only in this stub (hence private): at run time stats() returns a plain dict with these keys.
    """

    packets: int
    octets: int  # RTP payload octets
    late_packets: int  # sent more than LATE_NS after their slot
    on_time_1ms: int  # the others
    on_time_2ms: int  # sent at most LATE_2MS_NS after their slot
    max_late_ns: int
    skipped: int  # slots a stream more than an interval behind sent nothing in
    errors: dict[int, int]  # failed sends by errno
    icmp_reports: dict[int, int]  # ICMP errors the sockets reported, by errno (a send meeting one goes again)
    active: int  # streams added and not removed
    finished: int  # streams that reached their packet limit
    threads: int
    received_packets: int
    received_octets: int  # RTP payload octets
    received_malformed: int  # shorter than an RTP header, or not RTP version 2

@final
class Core:
    """Worker threads that send synthetic RTP streams on schedule and count the RTP that
    comes back to their sockets."""

    @property
    def mode(self) -> Literal["iouring", "send"]:
        """What actually runs: "iouring" falls back to "send" where io_uring cannot."""
    @property
    def mode_reason(self) -> str: ...
    @property
    def rt_priority(self) -> int:
        """SCHED_RR priority of the workers after start(); 0: normal scheduling."""
    @property
    def rt_error(self) -> str | None:
        """errno name ("EPERM") of a refused start(rt_priority=...), else None."""
    @property
    def private_tables(self) -> int:
        """Workers sending through a descriptor table of their own (mode "send", after start())."""
    def __new__(cls, workers: int, mode: Literal["iouring", "send"]) -> Core:
        """workers: 1..MAX_WORKERS threads; mode "iouring" or "send"."""
    def start(self, rt_priority: int = 0) -> None:
        """Start the workers (again while running: nothing); RuntimeError once stopped."""
    def stop(self) -> None:
        """Stop and join the workers (idempotent); add() raises RuntimeError afterwards."""
    def add(
        self,
        fd: int,
        header: ReadableBuffer,
        payload_len: int,
        silence_byte: int,
        ts_step: int,
        interval_ns: int,
        first_due_ns: int,
        packet_limit: int,
        *,
        clock_rate: int = 0,
    ) -> int:
        """Send a stream from the connected UDP socket fd -> its handle.

        header: the first packet's 12-byte RTP header (V=2, marker clear: the core sets it
        on the first packet); payload_len octets of silence_byte follow it. Packet k is due
        at first_due_ns + k * interval_ns (CLOCK_MONOTONIC); packet_limit: sends to attempt
        in all, 0 for no limit; clock_rate: the codec's RTP clock, which turns on the
        stream's receive quality (0: off). ValueError for a value out of range.
        """
    def pause(self, handle: int, /) -> None: ...
    def resume(self, handle: int, /) -> None:
        """Send again from the next slot of the stream's grid, with the marker bit."""
    def remove(self, handle: int, /) -> tuple[int, int, int, int]:
        """Stop a stream for good -> (packets, octets, errors, icmp_reports) sent; the socket is
        free on return."""
    def remove_with_quality(self, handle: int, /) -> tuple[tuple[int, int, int, int], _Quality]:
        """As remove(), with the stream's final receive quality (all zero without a clock_rate)."""
    def stream_quality(self, handle: int, /) -> _Quality:
        """A live stream's receive quality so far."""
    def quality_list(self) -> list[_Quality]:
        """The receive quality of every live stream added with a clock_rate."""
    def stream_stats(self, handle: int, /) -> tuple[int, int, int, int]:
        """(packets, octets, errors, icmp_reports) sent by a live stream."""
    def stream_received(self, handle: int, /) -> tuple[int, int]:
        """(packets, payload octets) of RTP counted so far on a live stream's socket."""
    def stats(self) -> _CoreStats: ...
