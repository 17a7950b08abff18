"""The run's views of its counters and its output files, chosen by the trace flags.

The engine reports events here; this module decides which views exist (screen, the
-trace_stat CSV, the counts, error-code and RTT CSVs, the message, short-message, error,
log, call-debug and screen files, summary, JSON) and names each file as SIPp does, after
the -sf file or the -sn name.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Collection, Mapping

from gossipper.engine.settings import TraceSettings, ViewSettings
from gossipper.errors import FileProblem
from gossipper.scenario import model
from gossipper.sip.transport import Address, SipTransport
from gossipper.stats.call_records import CallRecordWriter, RecordSink
from gossipper.stats.counters import RunCounters
from gossipper.stats.health import HealthReport
from gossipper.stats.live import LiveOutputs
from gossipper.stats.report_files import CountedStep, CountsCsv, ErrorCodesCsv, RttCsv, report_path
from gossipper.stats.screen import ScreenHeader, ScreenRefresher
from gossipper.stats.stat_csv import StatCsvLayout, StatCsvWriter, default_stat_path
from gossipper.stats.summary import format_summary_text, health_report, write_summary_json
from gossipper.stats.traces import (
    ERRORS_PREAMBLE,
    LogFile,
    LogLimits,
    call_id_of,
    calldebug_entry,
    calldebug_line,
    default_log_path,
    error_entry,
    message_entry,
    shortmessage_entry,
)

_MEDIA_ACTIONS = ("rtp_stream", "rtp", "play_pcap_audio", "play_pcap_video")


def counted_steps(scenario: model.Scenario) -> list[CountedStep]:
    """The scenario as -trace_counts lists it: SIPp numbers its messages (labels are no steps)
    and writes no column for a nop."""
    counted: list[CountedStep] = []
    for number, step in enumerate(scenario.steps):
        index = number
        if isinstance(step, model.Send):
            first = step.message.first_line.split(" ")
            what = first[1] if first[0].startswith("SIP/") and len(first) > 1 else first[0]
            counted.append(CountedStep(index, number, "send", what, timeout_column=step.retrans_ms > 0))
        elif isinstance(step, model.Recv):
            what = (
                str(step.response)
                if step.response is not None
                else (step.request or step.response_regexp or "")
            )
            counted.append(CountedStep(index, number, "recv", what))
        elif isinstance(step, model.Pause):
            counted.append(CountedStep(index, number, "pause"))
        elif isinstance(step, model.RecvCmd):
            counted.append(CountedStep(index, number, "recvcmd"))
        elif isinstance(step, model.SendCmd):
            counted.append(CountedStep(index, number, "sendcmd"))
    return counted


def _has_media(scenario: model.Scenario) -> bool:
    return any(
        isinstance(action, model.Exec) and any(getattr(action, name) for name in _MEDIA_ACTIONS)
        for step in scenario.steps
        for action in step.actions
    )


class RunViews:
    def __init__(
        self,
        settings: ViewSettings,
        scenario: model.Scenario,
        counters: RunCounters,
        header_fields: Callable[[], dict[str, object]],
        live_calls: Callable[[], Collection[str]] = frozenset,
        pause_sessions: Callable[[], dict[int, int]] = dict,
        record_sink: RecordSink | None = None,
    ) -> None:
        self.settings = settings
        self.counters = counters
        self._header_fields = header_fields
        self._live_calls = live_calls
        self._limits = LogLimits(settings.ringbuffer_files, settings.ringbuffer_size, settings.max_log_size)
        self.message_trace = self._trace(settings.messages, "messages", "message_file")
        self.shortmessage_trace = self._trace(settings.shortmessages, "shortmessages", "shortmessage_file")
        self.log_trace = self._trace(settings.logs, "logs", "log_file")
        self.calldebug_trace = self._trace(settings.calldebug, "calldebug", "calldebug_file")
        # read by the compiled engine before each message, so that a run tracing none makes no call here
        traces = (self.message_trace, self.shortmessage_trace, self.calldebug_trace)
        self.traces_messages = any(trace is not None for trace in traces)
        self.screen_trace = self._trace(settings.screen, "screen", "screen_file")
        self.error_trace: LogFile | None = None  # SIPp creates it at the first error
        self._error_trace_failed = False
        self._histories: dict[str, list[str]] = {}  # -trace_calldebug: call-id -> its lines so far
        delimiter, rfc3339 = settings.stat_delimiter, settings.rfc3339
        base = settings.file_base
        self.stat_csv: StatCsvWriter | None = None
        if settings.stat_csv:
            layout = StatCsvLayout(
                delimiter=delimiter,
                rfc3339=rfc3339,
                periodic_rtd=settings.periodic_rtd,
                rtd_repartition=scenario.response_time_repartition is not None,
                call_length_repartition=scenario.call_length_repartition is not None,
                media_columns=settings.media_columns or _has_media(scenario),
            )
            self.stat_csv = StatCsvWriter(settings.stat_file or default_stat_path(base), counters, layout)
        self.counts_csv = (
            CountsCsv(
                report_path(base, "counts.csv"),
                counters,
                counted_steps(scenario),
                pause_sessions,
                delimiter,
                rfc3339,
            )
            if settings.counts_csv
            else None
        )
        self.error_codes_csv = (
            ErrorCodesCsv(report_path(base, "error_codes.csv"), counters, delimiter, rfc3339)
            if settings.error_codes_csv
            else None
        )
        self.rtt_csv: RttCsv | None = None
        if settings.rtt_csv:
            self.rtt_csv = RttCsv(
                report_path(base, "rtt.csv"), counters.started_at, delimiter, settings.rtt_freq
            )
            for name, stat in counters.rtd.items():
                stat.listener = self.rtt_csv.listener(name, time.time)
        self.call_records: RecordSink | None = record_sink
        if self.call_records is None and settings.call_records:
            self.call_records = CallRecordWriter(settings.call_records)
        interactive = not settings.quiet and sys.stdout.isatty()
        self._next_screen = 0.0  # when the screen refreshes next (-f)
        self.screen = ScreenRefresher(counters, scenario.step_labels(), self._header, sys.stdout, interactive)
        self._next_stat_row = 0.0
        self.live = LiveOutputs(settings.live, counters)

    def _trace(self, trace: TraceSettings, kind: str, setting: str) -> LogFile | None:
        if not trace.enabled and trace.path is None:
            return None
        return self._open_log(trace, kind, setting)

    def _open_log(self, trace: TraceSettings, kind: str, setting: str) -> LogFile:
        base = self.settings.file_base
        path = trace.path or default_log_path(base, kind)
        return LogFile(path, base, kind, overwrite=trace.overwrite, limits=self._limits, setting=setting)

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

    # ------------------------------------------------------------------ periodic rows
    def open_live(self) -> None:
        """The metrics endpoint listens from here on (BindError if it cannot)."""
        self.live.open()

    def start(self) -> None:
        """SIPp writes the statistics rows once as the traffic starts, so the files exist at once."""
        now = time.time()
        if self.stat_csv is not None:
            self.stat_csv.write_header()
        self.live.start(now)
        self._report(now)

    def _report(self, now: float) -> None:
        """The -fd rows: SIPp's CSVs, and -stats_jsonl's row of the same period."""
        for report in (self.stat_csv, self.counts_csv, self.error_codes_csv):
            if report is not None:
                report.write_row(now)
        self.live.period(now)
        self._next_stat_row = now + self.settings.stat_period_s

    def tick(self, now: float) -> None:
        """Once a second: sample for the HTML report, refresh the screen every -f, write the -fd
        rows when due, forget the call-debug history of calls that are gone."""
        period = self.settings.screen_period_s
        self.live.tick(now)
        if period > 0 and now >= self._next_screen:
            self.screen.refresh(now)
            self._next_screen = now + period - 0.5  # ticks come once a second: a 1 s period refreshes each
        if now >= self._next_stat_row:
            self._report(now)
        if self.call_records is not None:
            self.call_records.flush()
        if self._histories:
            live = self._live_calls()
            for call_id in [call_id for call_id in self._histories if call_id not in live]:
                del self._histories[call_id]

    # ------------------------------------------------------------------ events
    def trace_message(self, direction: str, data: bytes, peer: Address, transport: SipTransport) -> None:
        if not self.traces_messages:
            return
        now = time.time()
        kind = transport.protocol_name
        if self.message_trace is not None:
            self.message_trace.write(message_entry(direction, kind, data, now))
        if self.shortmessage_trace is not None:
            self.shortmessage_trace.write(
                shortmessage_entry(direction, data, now, self.settings.rfc3339, True)
            )
        if self.calldebug_trace is not None:
            call_id = call_id_of(data).rpartition("///")[2]
            text = data.decode("utf-8", errors="replace")
            line = (
                f"Sending {kind} message for call {call_id}:\n{text}\n\n"
                if direction == "sent"
                else f"Processing {len(data)} byte incoming message for call-ID {call_id}:\n{text}\n\n"
            )
            self._histories.setdefault(call_id, []).append(calldebug_line(line, now, self.settings.rfc3339))

    def call_ended(self, call_id: str, failure_class: str | None) -> None:
        """-trace_calldebug: SIPp writes a call's history only when an unexpected message aborted it."""
        history = self._histories.pop(call_id, None)
        if self.calldebug_trace is None or history is None or failure_class != "unexpected_sip":
            return
        history.append(calldebug_line(f"Aborting call {call_id}.\n", time.time(), self.settings.rfc3339))
        self.calldebug_trace.write(calldebug_entry(call_id, history))

    def trace_error(self, text: str) -> None:
        """SIPp's WARNING: counted, and with -trace_err written to the error file."""
        self.counters.warnings += 1
        if not self.settings.errors.enabled and self.settings.errors.path is None:
            return
        trace = self._error_file()
        if trace is not None:
            trace.write(error_entry(text, time.time(), self.settings.rfc3339))

    def _error_file(self) -> LogFile | None:
        if self.error_trace is None and not self._error_trace_failed:
            try:
                self.error_trace = self._open_log(self.settings.errors, "errors", "error_file")
            except FileProblem as error:
                self._error_trace_failed = True
                print(f"gossipper: {error.message}", file=sys.stderr)
                return None
            self.error_trace.write(ERRORS_PREAMBLE)
        return self.error_trace

    def log(self, kind: str, text: str) -> None:
        """<log> goes to the -trace_logs file as it is; <warning> and <error> are SIPp's WARNING
        and ERROR, which go to the error file."""
        if kind == "log":
            if self.log_trace is not None:
                self.log_trace.write(f"{text}\n")
        else:
            self.trace_error(f"{kind}: {text}" if kind != "warning" else text)

    def dump_screen(self) -> None:
        """-trace_screen at exit, or SIGUSR2: SIPp opens the screen file on the first dump when
        -trace_screen did not open it at start."""
        if self.screen_trace is None:
            try:
                self.screen_trace = self._open_log(self.settings.screen, "screen", "screen_file")
            except FileProblem as error:
                print(f"gossipper: {error.message}", file=sys.stderr)
                return
        self.screen_trace.write(self.screen.render(time.time()) + "\n\n")

    def finish(self, tool_version: str, summary_extra: Mapping[str, object] | None = None) -> HealthReport:
        """Close every output and print the summary; -> the health gates' verdict."""
        now = time.time()
        self._report(now)
        self.live.finish(now)
        for report in (self.stat_csv, self.counts_csv, self.error_codes_csv, self.rtt_csv, self.call_records):
            if report is not None:
                report.close()
        if self.settings.screen.enabled:
            self.dump_screen()
        for trace in (
            self.message_trace,
            self.shortmessage_trace,
            self.log_trace,
            self.calldebug_trace,
            self.error_trace,
            self.screen_trace,
        ):
            if trace is not None:
                trace.close()
        if not self.settings.quiet:
            self.screen.final(now)
        if not self.settings.headless:
            print(
                format_summary_text(self.counters),
                file=sys.stderr if self.settings.summary_json == "-" else sys.stdout,
            )
        gates = self.settings.health
        verdict = health_report(self.counters, tool_version, gates)
        for line in verdict.failure_lines():
            print(f"gossipper: {line}", file=sys.stderr)
        if self.settings.summary_json:
            write_summary_json(self.settings.summary_json, self.counters, tool_version, gates, summary_extra)
        self.live.write_report(tool_version, gates)
        return verdict
