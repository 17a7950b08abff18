"""The live terminal screen, SIPp-style: run header, period/cumulative counters, scenario table.

Period values are deltas since the previous refresh, so only refresh() moves the period
forward; render() for a dump or the final screen shows the period in progress.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from gossipper.stats.counters import RunCounters, StepCounters

CLEAR_AND_HOME = "\x1b[2J\x1b[H"
RULE_WIDTH = 79


@dataclass
class ScreenHeader:
    scenario: str
    local_address: str
    remote_address: str
    transport: str
    rate: float
    rate_period_ms: int
    max_calls: int
    max_concurrent: int
    elapsed_s: float


@dataclass(frozen=True)
class _Snapshot:
    """The counters the period columns are computed from, as they were at the last refresh."""

    at: float
    created: int = 0
    succeeded: int = 0
    failed: int = 0
    retransmissions: int = 0
    timeouts: int = 0
    rtp_sent: int = 0
    send_errors: int = 0
    icmp_unreachable: int = 0
    late_packets: int = 0
    malformed_rtp: int = 0
    malformed_rtcp: int = 0
    kernel_drops: int = 0

    @classmethod
    def take(cls, counters: RunCounters, at: float) -> _Snapshot:
        media = counters.media
        return cls(
            at=at,
            created=counters.calls_created,
            succeeded=counters.calls_succeeded,
            failed=counters.calls_failed,
            retransmissions=counters.retransmissions,
            timeouts=counters.timeouts,
            rtp_sent=media.rtp_packets_sent,
            send_errors=sum(media.send_errors.values()),
            icmp_unreachable=sum(media.icmp_unreachable.values()),
            late_packets=media.late_packets,
            malformed_rtp=media.malformed_rtp,
            malformed_rtcp=media.malformed_rtcp,
            kernel_drops=media.rtp_kernel_drops,
        )


def _limit(value: int) -> str:
    return str(value) if value > 0 else "unlimited"


class ScreenRefresher:
    def __init__(
        self,
        counters: RunCounters,
        step_labels: list[str],
        header: Callable[[], ScreenHeader],
        out: TextIO,
        interactive: bool,
    ) -> None:
        self.counters = counters
        self.step_labels = step_labels
        self.header = header
        self.out = out
        self.interactive = interactive
        self._previous = _Snapshot(at=counters.started_at)

    def refresh(self, now: float) -> None:
        if self.interactive:
            self._draw(now)
        self._previous = _Snapshot.take(self.counters, now)

    def final(self, now: float) -> None:
        if self.interactive:
            self._draw(now)

    def _draw(self, now: float) -> None:
        self.out.write(CLEAR_AND_HOME + self.render(now) + "\n")
        self.out.flush()

    def render(self, now: float) -> str:
        return "\n".join([*self._header_lines(now), "", *self._counter_lines(now), "", *self._step_lines()])

    def _period_s(self, now: float) -> float:
        return max(0.0, now - self._previous.at)

    def _header_lines(self, now: float) -> list[str]:
        header = self.header()
        period_s = self._period_s(now)
        target_cps = header.rate * 1000 / header.rate_period_ms if header.rate_period_ms > 0 else 0.0
        created = self.counters.calls_created - self._previous.created
        measured_cps = created / period_s if period_s > 0 else 0.0
        title = f" Scenario Screen: {header.scenario} "
        return [
            f"{'-' * 30}{title}".ljust(RULE_WIDTH, "-"),
            f"  Transport: {header.transport}   Local: {header.local_address}   "
            f"Remote: {header.remote_address}",
            f"  Call rate: {header.rate:g} calls / {header.rate_period_ms} ms ({target_cps:.3f} cps), "
            f"measured {measured_cps:.3f} cps",
            f"  Elapsed: {header.elapsed_s:.2f} s   Max calls: {_limit(header.max_calls)}   "
            f"Max concurrent: {_limit(header.max_concurrent)}",
            *self._throttle_lines(),
        ]

    def _throttle_lines(self) -> list[str]:
        counters = self.counters
        if counters.rate_cap_cps is None:
            return []
        if counters.throttle_reason is None:  # the governor's slow start, before any overload
            cap = counters.rate_cap_cps
            return [
                f"  Ramping up: creating {cap:.0f} calls/s, doubling while the loop keeps up (slow start)"
            ]
        return [f"  Throttled: {counters.throttle_reason}"]

    def _counter_lines(self, now: float) -> list[str]:
        counters = self.counters
        media = counters.media
        previous = self._previous
        period_s = self._period_s(now)
        rtp_pps = (media.rtp_packets_sent - previous.rtp_sent) / period_s if period_s > 0 else 0.0
        send_errors = sum(media.send_errors.values())
        icmp_unreachable = sum(media.icmp_unreachable.values())
        rows = [
            ("Calls created", counters.calls_created - previous.created, counters.calls_created),
            ("Calls succeeded", counters.calls_succeeded - previous.succeeded, counters.calls_succeeded),
            ("Calls failed", counters.calls_failed - previous.failed, counters.calls_failed),
            (
                "Retransmissions",
                counters.retransmissions - previous.retransmissions,
                counters.retransmissions,
            ),
            ("Timeouts", counters.timeouts - previous.timeouts, counters.timeouts),
            ("RTP packets sent", media.rtp_packets_sent - previous.rtp_sent, media.rtp_packets_sent),
            ("RTP send errors", send_errors - previous.send_errors, send_errors),
            ("RTP ICMP unreachable", icmp_unreachable - previous.icmp_unreachable, icmp_unreachable),
            ("RTP late packets", media.late_packets - previous.late_packets, media.late_packets),
            ("RTP malformed", media.malformed_rtp - previous.malformed_rtp, media.malformed_rtp),
            ("RTCP malformed", media.malformed_rtcp - previous.malformed_rtcp, media.malformed_rtcp),
            ("RTP kernel drops", media.rtp_kernel_drops - previous.kernel_drops, media.rtp_kernel_drops),
        ]
        lines = [f"  {'':<20}{'Period':>12}{'Cumulative':>14}"]
        lines.extend(f"  {label:<20}{period:>12}{total:>14}" for label, period, total in rows)
        lines.append(f"  {'Calls ongoing':<20}{'':>12}{counters.calls_active:>14}")
        lines.append(
            f"  RTP: {rtp_pps:.0f} pps over the last {period_s:.1f} s, engine {media.engine}, "
            f"max lateness {media.max_late_ms:.3f} ms"
        )
        if media.quality is not None:
            lines.append(f"  RTP quality: {media.quality.line()}")
        elif media.quality_enabled is False:
            lines.append("  RTP quality: not measured (-rtp_quality off)")
        return lines

    def _step_lines(self) -> list[str]:
        width = max((len(label) for label in self.step_labels), default=0) + 2
        lines = [f"  {'':<{width}}{'Messages':>10}{'Retrans':>10}{'Timeout':>10}{'Unexpected-Msg':>16}"]
        steps = self.counters.steps
        for index, label in enumerate(self.step_labels):
            step = steps[index] if index < len(steps) else StepCounters()
            lines.append(
                f"  {label:<{width}}{step.messages:>10}{step.retransmissions:>10}"
                f"{step.timeouts:>10}{step.unexpected:>16}"
            )
        return lines
