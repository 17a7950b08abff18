"""SIPp's other periodic files: -trace_counts (_counts.csv), -trace_error_codes
(_error_codes.csv) and -trace_rtt (_rtt.csv), laid out as logger.cpp and stat.cpp write them.

The counts and error-code files get a row whenever the statistics CSV would (run start,
every -fd, run end); the RTT file gets its samples in batches of -rtt_freq, and the rest
at the end of the run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from gossipper.errors import FileProblem
from gossipper.stats.counters import RunCounters
from gossipper.stats.sipp_time import format_time, hhmmss_us

DEFAULT_RTT_FREQ = 200  # SIPp's -rtt_freq default


def report_path(base: str, suffix: str) -> str:
    """<scenario file>_<pid>_<suffix>: counts.csv, error_codes.csv, rtt.csv."""
    return f"{base}_{os.getpid()}_{suffix}"


def _open(path: str, setting: str) -> TextIO:
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as error:
        raise FileProblem(f"cannot write {path}: {error.strerror or error}", setting=setting) from None


@dataclass(frozen=True)
class CountedStep:
    """A scenario step as -trace_counts sees it. `number` is SIPp's message index (labels
    are not messages); `kind` is send, recv, pause, recvcmd or sendcmd; `what` the method or
    status code; `timeout_column` whether a send has retrans= (SIPp's retrans_delay)."""

    step: int
    number: int
    kind: str
    what: str = ""
    timeout_column: bool = False

    def column_names(self) -> list[str]:
        prefix = f"{self.number}_{self.what}_"
        if self.kind == "send":
            return [f"{prefix}Sent", f"{prefix}Retrans"] + (
                [f"{prefix}Timeout"] if self.timeout_column else []
            )
        if self.kind == "recv":
            return [f"{prefix}Recv", f"{prefix}Retrans", f"{prefix}Timeout", f"{prefix}Unexp"]
        if self.kind == "pause":
            return [f"{self.number}_Pause_Sessions", f"{self.number}_Pause_Unexp"]
        if self.kind == "recvcmd":
            return [f"{self.number}_RecvCmd", f"{self.number}_RecvCmd_Timeout"]
        return [f"{self.number}_SendCmd"]


class CountsCsv:
    """Per message: sent or received, retransmissions, timeouts, unexpected; per pause, the
    calls inside it now (`sessions` maps a step index to that number)."""

    def __init__(
        self,
        path: str,
        counters: RunCounters,
        steps: list[CountedStep],
        sessions: Callable[[], dict[int, int]],
        delimiter: str,
        rfc3339: bool,
    ) -> None:
        self._file = _open(path, "counts_file")
        self._counters = counters
        self._steps = steps
        self._sessions = sessions
        self._delimiter = delimiter
        self._rfc3339 = rfc3339
        names = ["CurrentTime", "ElapsedTime"] + [name for step in steps for name in step.column_names()]
        self._file.write("".join(name + delimiter for name in names) + "\n")
        self._file.flush()

    def write_row(self, now: float) -> None:
        counters = self._counters
        sessions = self._sessions()
        values: list[object] = [format_time(now, self._rfc3339), hhmmss_us(counters.elapsed_s(now) * 1000)]
        for step in self._steps:
            counted = counters.steps[step.step]
            if step.kind == "send":
                values += [counted.messages, counted.retransmissions]
                if step.timeout_column:
                    values.append(counted.timeouts)
            elif step.kind == "recv":
                values += [counted.messages, counted.retransmissions, counted.timeouts, counted.unexpected]
            elif step.kind == "pause":
                values += [sessions.get(step.step, 0), counted.unexpected]
            elif step.kind == "recvcmd":
                values += [counted.messages, counted.timeouts]
            else:
                values.append(counted.messages)
        self._file.write("".join(f"{value}{self._delimiter}" for value in values) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class ErrorCodesCsv:
    """Time, elapsed time, then the status codes of the unexpected responses since the last
    row, each followed by a comma, the latest first (SIPp pops them off the end)."""

    def __init__(self, path: str, counters: RunCounters, delimiter: str, rfc3339: bool) -> None:
        self._file = _open(path, "error_codes_file")
        self._counters = counters
        counters.collect_error_codes = True
        self._delimiter = delimiter
        self._rfc3339 = rfc3339

    def write_row(self, now: float) -> None:
        counters, delimiter = self._counters, self._delimiter
        codes = "".join(f"{code}," for code in reversed(counters.unexpected_codes))
        counters.unexpected_codes.clear()
        elapsed = hhmmss_us(counters.elapsed_s(now) * 1000)
        self._file.write(f"{format_time(now, self._rfc3339)}{delimiter}{elapsed}{delimiter}{codes}\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _cpp_number(value: float) -> str:
    """A double as a C++ stream prints it by default: six significant digits, no trailing zeros."""
    return f"{value:.6g}"


class RttCsv:
    """Every response-time sample: when it ended (ms since the run started), its length in
    ms, and the RTD's name; written -rtt_freq samples at a time, as SIPp's dumpDataRtt."""

    def __init__(self, path: str, started_at: float, delimiter: str, batch: int) -> None:
        self._file = _open(path, "rtt_file")
        self._started_at = started_at
        self._delimiter = delimiter
        self._batch = max(1, batch)
        self._pending: list[str] = []
        self._header_written = False

    def listener(self, rtd: str, now: Callable[[], float]) -> Callable[[float], None]:
        """The hook of one RTD's DurationStat."""
        return lambda value_ms: self.add(rtd, value_ms, now())

    def add(self, rtd: str, value_ms: float, at: float) -> None:
        delimiter = self._delimiter
        date_ms = (at - self._started_at) * 1000
        self._pending.append(f"{_cpp_number(date_ms)}{delimiter}{_cpp_number(value_ms)}{delimiter}{rtd}\n")
        if len(self._pending) >= self._batch:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        if not self._header_written:
            delimiter = self._delimiter
            self._file.write(f"Date_ms{delimiter}response_time_ms{delimiter}rtd_no\n")
            self._header_written = True
        self._file.write("".join(self._pending))
        self._pending.clear()
        self._file.flush()

    def close(self) -> None:
        self.flush()
        self._file.close()
