"""SIPp's rtpcheck: is what a file or pattern stream sends coming back, echoed, unchanged?

As in SIPp's rtpstream.cpp, each packet sent is one check: it passes when an echo has
arrived since the previous packet and that echo's payload is the one sent; a packet
with no echo before it fails. A stream fails when its failed share reaches the
tolerance (-audiotolerance / -videotolerance, default 1.0: only when every packet
failed), and any failed stream makes the run exit 253.

Two deliberate differences: SIPp compares the echo with the packet it has just sent,
which is right for a pattern but fails every packet of a file whose audio changes, so
here an echo is compared with the packet of its own sequence number (the just-sent one
when the peer renumbered); and SIPp judges only the streams still registered when the
run shuts down, here every stream is judged when its call's media ends.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TextIO

_REMEMBERED = 64  # packets whose payload an echo may still be compared with


class EchoCheck:
    """The check of one call's audio or video stream, over every stream the call plays."""

    def __init__(self, label: str, tolerance: float, debug: TextIO | None) -> None:
        self.label = label  # "call-id audio" in the debug file
        self.tolerance = tolerance
        self.sent = 0
        self.failed = 0
        self._debug = debug
        self._recent: OrderedDict[int, bytes] = OrderedDict()
        self._arrived: tuple[int, bytes] | None = None

    def echo_arrived(self, sequence: int, payload: bytes) -> None:
        """The latest echo counts, as SIPp reads the socket dry and keeps the last."""
        self._arrived = (sequence, payload)

    def packet_sent(self, sequence: int, payload: bytes) -> None:
        self.sent += 1
        self._recent[sequence] = payload
        if len(self._recent) > _REMEMBERED:
            self._recent.popitem(last=False)
        arrived, self._arrived = self._arrived, None
        if arrived is None:
            verdict = "no echo"
        else:
            echoed_sequence, echoed = arrived
            verdict = "ok" if echoed == self._recent.get(echoed_sequence, payload) else "payload differs"
        if verdict != "ok":
            self.failed += 1
        if self._debug is not None:
            tally = f"{self.failed}/{self.sent} failed"
            self._debug.write(f"{self.label} sent seq {sequence}: {verdict} ({tally})\n")

    @property
    def passed(self) -> bool:
        return self.sent == 0 or self.failed / self.sent < self.tolerance

    def finish(self) -> bool:
        """The stream's verdict, written to the debug file; True when it passed."""
        if self._debug is not None and self.sent:
            outcome = "passed" if self.passed else "FAILED"
            self._debug.write(
                f"{self.label} rtpcheck {outcome}: {self.failed} of {self.sent} packets failed "
                f"(tolerance {self.tolerance:g})\n"
            )
        return self.passed
