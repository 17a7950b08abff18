"""SIPp's periodic statistics CSV (-trace_stat, -stf, -fd), then gossipper's own media columns.

Lab tooling reads this file by column name, so SIPp's names and their order come first
and are kept even where we have no equivalent counter (written as 0). "(P)" columns are
deltas since the previous row, "(C)" columns are cumulative since the start.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from operator import attrgetter
from typing import TextIO

from gossipper.errors import FileProblem
from gossipper.stats.counters import DurationStat, RunCounters

DELIMITER = ";"

Getter = Callable[[RunCounters], int]


def _failures(failure_class: str) -> Getter:
    return lambda counters: counters.failure_classes[failure_class]


def _send_errors(counters: RunCounters) -> int:
    return sum(counters.media.send_errors.values())


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
    ("FailedMaxUDPRetrans", None),
    ("FailedTcpConnect", None),
    ("FailedTcpClosed", None),
    ("FailedUnexpectedMessage", _failures("unexpected_sip")),
    ("FailedCallRejected", None),
    ("FailedCmdNotSent", None),
    ("FailedRegexpDoesntMatch", None),
    ("FailedRegexpShouldntMatch", None),
    ("FailedRegexpHdrNotFound", None),
    ("FailedOutboundCongestion", None),
    ("FailedTimeoutOnRecv", _failures("timeout")),
    ("FailedTimeoutOnSend", None),
    ("FailedTestDoesntMatch", None),
    ("FailedTestShouldntMatch", None),
    ("FailedStrcmpDoesntMatch", None),
    ("FailedStrcmpShouldntMatch", None),
    ("OutOfCallMsgs", attrgetter("out_of_call_messages")),
    ("DeadCallMsgs", attrgetter("dead_call_messages")),
    ("Retransmissions", attrgetter("retransmissions")),
    ("AutoAnswered", None),
    ("Warnings", None),
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
    ("rtp_late_packets", attrgetter("media.late_packets")),
)


def default_stat_path(scenario_name: str) -> str:
    return f"{scenario_name}_{os.getpid()}_.csv"


def _format_date(timestamp: float) -> str:
    """Local date, time and epoch with microseconds, tab-separated inside one field, as SIPp writes."""
    moment = datetime.fromtimestamp(timestamp)
    seconds = int(timestamp)
    micros = moment.microsecond
    return f"{moment:%Y-%m-%d}\t{moment:%H:%M:%S}.{micros:06d}\t{seconds:010d}.{micros:06d}"


def _format_elapsed(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _format_duration_ms(value_ms: float) -> str:
    micros = int(value_ms * 1000)
    whole, fraction = divmod(micros, 1_000_000)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}:{fraction:06d}"


def _mean_and_stddev(count: int, total: float, total_sq: float) -> tuple[float, float]:
    """From sums so that a period's figures come from the difference of two snapshots."""
    if count <= 0:
        return 0.0, 0.0
    mean = total / count
    variance = total_sq / count - mean * mean if count > 1 else 0.0
    return mean, max(0.0, variance) ** 0.5


class StatCsvWriter:
    def __init__(self, path: str, counters: RunCounters) -> None:
        self.path = path
        self.counters = counters
        try:
            self._file: TextIO = open(path, "w", encoding="utf-8")  # noqa: SIM115 - open for the whole run
        except OSError as error:
            raise FileProblem(
                f"cannot write {path}: {error.strerror or error}", setting="stat_file"
            ) from None
        self._rtd_names: list[str] = []
        self._header_written = False
        self._last_row_at = counters.started_at
        self._previous: dict[str, float] = {}

    def write_header(self) -> None:
        """Freeze the column set: response-time columns exist for the RTDs known at this point."""
        self._rtd_names = list(self.counters.rtd)
        names = ["StartTime", "LastResetTime", "CurrentTime", "ElapsedTime(P)", "ElapsedTime(C)"]
        names += ["TargetRate", "CallRate(P)", "CallRate(C)"]
        names += self._pair_names(_CREATION_COLUMNS)
        names += ["TotalCallCreated", "CurrentCall"]
        names += self._pair_names(_OUTCOME_COLUMNS)
        for rtd in self._rtd_names:
            names += [f"ResponseTime{rtd}(P)", f"ResponseTime{rtd}(C)"]
            names += [f"ResponseTime{rtd}StDev(P)", f"ResponseTime{rtd}StDev(C)"]
        names += ["CallLength(P)", "CallLength(C)", "CallLengthStDev(P)", "CallLengthStDev(C)"]
        for rtd in self._rtd_names:
            names += self._repartition_names(f"ResponseTimeRepartition{rtd}", self.counters.rtd[rtd])
        names += self._repartition_names("CallLengthRepartition", self.counters.call_length)
        names += self._pair_names(_MEDIA_COLUMNS)
        self._write_line(names)
        self._header_written = True

    def write_row(self, now: float) -> None:
        if not self._header_written:
            self.write_header()
        counters = self.counters
        period_s = max(0.0, now - self._last_row_at)
        elapsed_s = counters.elapsed_s(now)
        created_in_period = counters.calls_created - self._previous.get("created", 0)
        fields = [
            _format_date(counters.started_at),
            _format_date(self._last_row_at),
            _format_date(now),
            _format_elapsed(period_s),
            _format_elapsed(elapsed_s),
            f"{counters.current_rate:.3f}",
            f"{created_in_period / period_s if period_s > 0 else 0.0:.3f}",
            f"{counters.calls_created / elapsed_s if elapsed_s > 0 else 0.0:.3f}",
        ]
        fields += self._pair_values(_CREATION_COLUMNS)
        fields += [str(counters.calls_created), str(counters.calls_active)]
        fields += self._pair_values(_OUTCOME_COLUMNS)
        for rtd in self._rtd_names:
            fields += self._duration_values(f"rtd:{rtd}", counters.rtd[rtd])
        fields += self._duration_values("call_length", counters.call_length)
        for rtd in self._rtd_names:
            fields += self._repartition_values(counters.rtd[rtd])
        fields += self._repartition_values(counters.call_length)
        fields += self._pair_values(_MEDIA_COLUMNS)
        self._previous["created"] = counters.calls_created
        self._last_row_at = now
        self._write_line(fields)
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def _write_line(self, fields: list[str]) -> None:
        self._file.write(DELIMITER.join(fields) + DELIMITER + "\n")

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
        return [_format_duration_ms(value) for value in (period_mean, mean, period_stddev, stddev)]

    @staticmethod
    def _repartition_names(prefix: str, stat: DurationStat) -> list[str]:
        return [prefix] + [f"{prefix}_{label}" for label in stat.bucket_labels()]

    @staticmethod
    def _repartition_values(stat: DurationStat) -> list[str]:
        return [""] + [str(count) for count in stat.bucket_counts]
