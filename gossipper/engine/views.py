"""The run's views of its counters and its trace files, chosen by the trace flags.

The engine reports events here; this module decides which views exist (screen,
-trace_stat CSV, -trace_msg/-trace_err/-trace_logs files, summary, JSON).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from gossipper.engine.settings import ViewSettings
from gossipper.scenario import model
from gossipper.sip.transport import Address, SipTransport
from gossipper.stats.counters import RunCounters
from gossipper.stats.screen import ScreenHeader, ScreenRefresher
from gossipper.stats.stat_csv import StatCsvWriter, default_stat_path
from gossipper.stats.summary import format_summary_text, write_summary_json
from gossipper.stats.traces import TraceFile, default_trace_path


class RunViews:
    def __init__(
        self,
        settings: ViewSettings,
        scenario: model.Scenario,
        counters: RunCounters,
        header_fields: Callable[[], dict[str, object]],
    ) -> None:
        self.settings = settings
        self.counters = counters
        self._header_fields = header_fields
        name = scenario.name
        self.message_trace = self._trace(settings.message_trace, settings.message_file, name, "messages")
        self.error_trace = self._trace(settings.error_trace, settings.error_file, name, "errors")
        self.log_trace = self._trace(settings.log_trace, settings.log_file, name, "logs")
        self.stat_csv: StatCsvWriter | None = None
        if settings.stat_csv:
            self.stat_csv = StatCsvWriter(settings.stat_file or default_stat_path(name), counters)
        interactive = not settings.quiet and sys.stdout.isatty()
        self._next_screen = 0.0  # when the screen refreshes next (-f)
        self.screen = ScreenRefresher(counters, scenario.step_labels(), self._header, sys.stdout, interactive)
        self._next_stat_row = 0.0

    @staticmethod
    def _trace(enabled: bool, path: str | None, scenario_name: str, kind: str) -> TraceFile | None:
        if not enabled and path is None:
            return None
        return TraceFile(path or default_trace_path(scenario_name, kind))

    def _header(self) -> ScreenHeader:
        fields = self._header_fields()
        return ScreenHeader(
            scenario=str(fields["scenario"]),
            local_address=str(fields["local"]),
            remote_address=str(fields["remote"]),
            transport=str(fields["transport"]),
            rate=float(fields["rate"]),  # type: ignore[arg-type]
            rate_period_ms=int(fields["rate_period_ms"]),  # type: ignore[call-overload]
            max_calls=int(fields["max_calls"]),  # type: ignore[call-overload]
            max_concurrent=int(fields["max_concurrent"]),  # type: ignore[call-overload]
            elapsed_s=self.counters.elapsed_s(),
        )

    def start(self) -> None:
        if self.stat_csv is not None:
            self.stat_csv.write_header()
            self._next_stat_row = time.time() + self.settings.stat_period_s

    def tick(self, now: float) -> None:
        """Once a second: refresh the screen every -f, write a CSV row when its period is due, flush."""
        period = self.settings.screen_period_s
        if period > 0 and now >= self._next_screen:
            self.screen.refresh(now)
            self._next_screen = now + period - 0.5  # ticks come once a second: a 1 s period refreshes each
        if self.stat_csv is not None and now >= self._next_stat_row:
            self.stat_csv.write_row(now)
            self._next_stat_row = now + self.settings.stat_period_s
        for trace in (self.message_trace, self.error_trace, self.log_trace):
            if trace is not None:
                trace.flush()

    def trace_message(self, direction: str, data: bytes, peer: Address, transport: SipTransport) -> None:
        if self.message_trace is not None:
            kind = "TCP" if transport.is_reliable else "UDP"
            preposition = "to" if direction == "sent" else "from"
            self.message_trace.write(
                f"{kind} message {direction} ({len(data)} bytes) {preposition} {peer[0]}:{peer[1]}:\n\n"
                + data.decode("utf-8", errors="replace")
            )

    def trace_error(self, text: str) -> None:
        if self.error_trace is not None:
            self.error_trace.write(text)

    def log(self, kind: str, text: str) -> None:
        if self.log_trace is not None:
            self.log_trace.write(text if kind == "log" else f"{kind}: {text}")
        if kind in ("warning", "error") and self.error_trace is not None:
            self.error_trace.write(f"{kind}: {text}")

    def dump_screen(self) -> None:
        self.screen.dump(self.settings.screen_file or default_trace_path(self._header().scenario, "screen"))

    def finish(self, tool_version: str) -> None:
        now = time.time()
        if self.stat_csv is not None:
            self.stat_csv.write_row(now)
            self.stat_csv.close()
        for trace in (self.message_trace, self.error_trace, self.log_trace):
            if trace is not None:
                trace.close()
        if self.settings.screen_at_exit:
            self.dump_screen()
        if not self.settings.quiet:
            self.screen.final(now)
        print(
            format_summary_text(self.counters),
            file=sys.stderr if self.settings.summary_json == "-" else sys.stdout,
        )
        if self.settings.summary_json:
            write_summary_json(self.settings.summary_json, self.counters, tool_version)
