"""SIPp's periodic statistics CSV (-trace_stat, -stf, -fd, -stat_delimiter, -periodic_rtd,
-rfc3339), column for column as stat.cpp dumpData writes it.

Lab tooling reads this file by column name, so SIPp's names and their order are kept even
where we have no equivalent counter (written as 0); gossipper's media columns follow only in
a run that has media, so a signalling-only run's header is SIPp's exactly. "(P)" columns are
the period since the previous row, "(C)" columns are cumulative since the start. As in SIPp a
row is written when the run starts, every -fd, and when it ends.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import TextIO

from gossipper.errors import FileProblem
from gossipper.stats.counters import DurationStat, RunCounters
from gossipper.stats.sipp_time import format_time, hhmmss, hhmmss_us

DEFAULT_DELIMITER = ";"

Getter = Callable[[RunCounters], int]


def _failures(failure_class: str) -> Getter:
    return lambda counters: counters.failure_classes[failure_class]


def _recv_timeouts(counters: RunCounters) -> int:
    """Our "timeout" class holds both of SIPp's: a recv's wait and UDP retransmissions running out."""
    return counters.failure_classes["timeout"] - counters.calls_max_retrans


def _send_errors(counters: RunCounters) -> int:
    return sum(counters.media.send_errors.values())


def _icmp_unreachable(counters: RunCounters) -> int:
    return sum(counters.media.icmp_unreachable.values())


# SIPp's call-creation counters, before its TotalCallCreated/CurrentCall columns.
_CREATION_COLUMNS: tuple[tuple[str, Getter | None], ...] = (
    ("IncomingCall", attrgetter("calls_incoming")),
    ("OutgoingCall", lambda counters: counters.calls_created - counters.calls_incoming),
)

# SIPp's outcome and message counters, in its order. Our failure classes map onto the
# SIPp reason they correspond to; reasons we do not distinguish stay 0.
_OUTCOME_COLUMNS: tuple[tuple[str, Getter | None], ...] = (
    ("SuccessfulCall", attrgetter("calls_succeeded")),
    ("FailedCall", attrgetter("calls_failed")),
    ("FailedCannotSendMessage", _failures("transport_error")),
    ("FailedMaxUDPRetrans", attrgetter("calls_max_retrans")),
    ("FailedTcpConnect", None),
    ("FailedTcpClosed", None),
    ("FailedUnexpectedMessage", _failures("unexpected_sip")),
    ("FailedCallRejected", attrgetter("calls_rejected")),
    ("FailedCmdNotSent", None),
    ("FailedRegexpDoesntMatch", None),
    ("FailedRegexpShouldntMatch", None),
    ("FailedRegexpHdrNotFound", None),
    ("FailedOutboundCongestion", None),
    ("FailedTimeoutOnRecv", _recv_timeouts),
    ("FailedTimeoutOnSend", None),
    ("FailedTestDoesntMatch", None),
    ("FailedTestShouldntMatch", None),
    ("FailedStrcmpDoesntMatch", None),
    ("FailedStrcmpShouldntMatch", None),
    ("OutOfCallMsgs", attrgetter("out_of_call_messages")),
    ("DeadCallMsgs", attrgetter("dead_call_messages")),
    ("Retransmissions", attrgetter("retransmissions")),
    ("AutoAnswered", attrgetter("auto_answered")),
    ("Warnings", attrgetter("warnings")),
    ("FatalErrors", None),
    ("WatchdogMajor", None),
    ("WatchdogMinor", None),
)

# gossipper's columns, after all of SIPp's.
_MEDIA_COLUMNS: tuple[tuple[str, Getter | None], ...] = (
    ("rtp_packets_sent", attrgetter("media.rtp_packets_sent")),
    ("rtp_octets_sent", attrgetter("media.rtp_octets_sent")),
    ("rtp_packets_received", attrgetter("media.rtp_packets_received")),
    ("rtp_send_errors", _send_errors),
    ("rtp_icmp_unreachable", _icmp_unreachable),
    ("rtp_late_packets", attrgetter("media.late_packets")),
    ("rtp_malformed", attrgetter("media.malformed_rtp")),
    ("rtcp_malformed", attrgetter("media.malformed_rtcp")),
    ("rtp_kernel_drops", attrgetter("media.rtp_kernel_drops")),
)


def default_stat_path(base: str) -> str:
    """SIPp's <scenario file>_<pid>_.csv."""
    return f"{base}_{os.getpid()}_.csv"


@dataclass(frozen=True)
class StatCsvLayout:
    """What shapes the file besides the counters."""

    delimiter: str = DEFAULT_DELIMITER  # -stat_delimiter
    rfc3339: bool = False  # -rfc3339: one RFC 3339 stamp per date column instead of SIPp's three parts
    periodic_rtd: bool = False  # -periodic_rtd: repartition counts restart at every row
    rtd_repartition: bool = False  # the scenario has <ResponseTimeRepartition>
    call_length_repartition: bool = False  # the scenario has <CallLengthRepartition>
    media_columns: bool = False  # gossipper's RTP columns, after SIPp's


def _mean_and_stddev(count: int, total: float, total_sq: float) -> tuple[float, float]:
    """From sums, so a period's figures come from the difference of two snapshots. The
    standard deviation is the sample one (n - 1), as SIPp's computeStdev; SIPp divides by zero
    for a single sample and prints garbage, where this prints 0."""
    if count <= 0:
        return 0.0, 0.0
    mean = total / count
    if count < 2:
        return mean, 0.0
    variance = (count * total_sq - total * total) / (count * (count - 1))
    return mean, max(0.0, variance) ** 0.5


def _target_rate(counters: RunCounters) -> str:
    """SIPp's TargetRate: -users when given, else the rate asked for (calls per -rp period)."""
    if counters.target_users is not None:
        return str(counters.target_users)
    return f"{counters.target_rate:.3f}"


class StatCsvWriter:
    def __init__(self, path: str, counters: RunCounters, layout: StatCsvLayout = StatCsvLayout()) -> None:
        self.path = path
        self.counters = counters
        self.layout = layout
        try:
            self._file: TextIO = open(path, "w", encoding="utf-8")  # noqa: SIM115 - open for the whole run
        except OSError as error:
            raise FileProblem(
                f"cannot write {path}: {error.strerror or error}", setting="stat_file"
            ) from None
        self._rtd_names: list[str] = []
        self._counter_names: list[str] = []
        self._header_written = False
        self._last_row_at = counters.started_at
        self._previous: dict[str, float] = {}
        self._previous_buckets: dict[str, list[int]] = {}

    def write_header(self) -> None:
        """Freeze the column set: response-time and counter columns for those known now."""
        counters = self.counters
        self._rtd_names = list(counters.rtd)
        self._counter_names = list(counters.generic)
        names = ["StartTime", "LastResetTime", "CurrentTime", "ElapsedTime(P)", "ElapsedTime(C)"]
        names += ["TargetRate", "CallRate(P)", "CallRate(C)"]
        names += self._pair_names(_CREATION_COLUMNS)
        names += ["TotalCallCreated", "CurrentCall"]
        names += self._pair_names(_OUTCOME_COLUMNS)
        for rtd in self._rtd_names:
            names += [f"ResponseTime{rtd}(P)", f"ResponseTime{rtd}(C)"]
            names += [f"ResponseTime{rtd}StDev(P)", f"ResponseTime{rtd}StDev(C)"]
        names += ["CallLength(P)", "CallLength(C)", "CallLengthStDev(P)", "CallLengthStDev(C)"]
        for name in self._counter_names:
            column = f"GenericCounter{name}" if name.isdigit() else name
            names += [f"{column}(P)", f"{column}(C)"]
        if self.layout.rtd_repartition:
            for rtd in self._rtd_names:
                names += self._repartition_names(f"ResponseTimeRepartition{rtd}", counters.rtd[rtd])
        if self.layout.call_length_repartition:
            names += self._repartition_names("CallLengthRepartition", counters.call_length)
        if self.layout.media_columns:
            names += self._pair_names(_MEDIA_COLUMNS)
        self._write_line(names)
        self._header_written = True

    def write_row(self, now: float) -> None:
        if not self._header_written:
            self.write_header()
        counters, layout = self.counters, self.layout
        period_s = max(0.0, now - self._last_row_at)
        elapsed_s = counters.elapsed_s(now)
        created_in_period = counters.calls_created - self._previous.get("created", 0)
        fields = [
            format_time(counters.started_at, layout.rfc3339),
            format_time(self._last_row_at, layout.rfc3339),
            format_time(now, layout.rfc3339),
            hhmmss(period_s * 1000),
            hhmmss(elapsed_s * 1000),
            _target_rate(counters),
            f"{created_in_period / period_s if period_s > 0 else 0.0:.3f}",
            f"{counters.calls_created / elapsed_s if elapsed_s > 0 else 0.0:.3f}",
        ]
        fields += self._pair_values(_CREATION_COLUMNS)
        fields += [str(counters.calls_created), str(counters.calls_active)]
        fields += self._pair_values(_OUTCOME_COLUMNS)
        for rtd in self._rtd_names:
            fields += self._duration_values(f"rtd:{rtd}", counters.rtd[rtd])
        fields += self._duration_values("call_length", counters.call_length)
        for name in self._counter_names:
            current = counters.generic[name]
            fields += [str(current - int(self._previous.get(f"generic:{name}", 0))), str(current)]
            self._previous[f"generic:{name}"] = current
        if layout.rtd_repartition:
            for rtd in self._rtd_names:
                fields += self._repartition_values(f"rtd:{rtd}", counters.rtd[rtd])
        if layout.call_length_repartition:
            fields += self._repartition_values("call_length", counters.call_length)
        if layout.media_columns:
            fields += self._pair_values(_MEDIA_COLUMNS)
        self._previous["created"] = counters.calls_created
        self._last_row_at = now
        self._write_line(fields)
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def _write_line(self, fields: list[str]) -> None:
        delimiter = self.layout.delimiter
        self._file.write(delimiter.join(fields) + delimiter + "\n")

    @staticmethod
    def _pair_names(columns: tuple[tuple[str, Getter | None], ...]) -> list[str]:
        return [f"{name}({kind})" for name, _ in columns for kind in ("P", "C")]

    def _pair_values(self, columns: tuple[tuple[str, Getter | None], ...]) -> list[str]:
        values: list[str] = []
        for name, getter in columns:
            current = getter(self.counters) if getter is not None else 0
            values += [str(current - int(self._previous.get(name, 0))), str(current)]
            self._previous[name] = current
        return values

    def _duration_values(self, key: str, stat: DurationStat) -> list[str]:
        """Mean and stddev for the period and cumulatively, as SIPp's HH:MM:SS:uuuuuu."""
        sums = (stat.count, stat.total_ms, stat.total_sq_ms)
        before = tuple(self._previous.get(f"{key}:{part}", 0) for part in ("count", "total", "total_sq"))
        period_mean, period_stddev = _mean_and_stddev(
            int(sums[0] - before[0]), sums[1] - before[1], sums[2] - before[2]
        )
        mean, stddev = _mean_and_stddev(*sums)
        for part, value in zip(("count", "total", "total_sq"), sums, strict=True):
            self._previous[f"{key}:{part}"] = value
        return [hhmmss_us(value) for value in (period_mean, mean, period_stddev, stddev)]

    @staticmethod
    def _repartition_names(prefix: str, stat: DurationStat) -> list[str]:
        return [prefix] + [f"{prefix}_{label}" for label in stat.bucket_labels()]

    def _repartition_values(self, key: str, stat: DurationStat) -> list[str]:
        """An empty field under the repartition's own name, then its buckets: cumulative, or
        under -periodic_rtd (SIPp resets them at each row) only what this period added."""
        counts = list(stat.bucket_counts)
        if self.layout.periodic_rtd:
            before = self._previous_buckets.get(key, [0] * len(counts))
            self._previous_buckets[key] = counts
            counts = [now - then for now, then in zip(counts, before, strict=True)]
        return [""] + [str(count) for count in counts]
