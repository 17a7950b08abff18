"""The outputs a run feeds while it runs, beside the screen and the CSV: the Prometheus
endpoint (-metrics_addr), the per-period JSONL file (-stats_jsonl), and the samples the
HTML report (-summary_html) charts at the end.

Both the SIP run (through engine.views) and the standalone RTP generator drive the same
object: `start` when traffic starts, `tick` each second, `period` at each -fd row, `finish`
at the end, then `write_report`. What each output reads is the run's one RunCounters, so the
endpoint, the files and the summary agree.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gossipper.stats.counters import MediaCounters, RunCounters
from gossipper.stats.health import HealthGates
from gossipper.stats.html_report import write_summary_html
from gossipper.stats.summary import summary_dict
from gossipper.stats.timeline import Sample, StatsJsonl, Timeline

if TYPE_CHECKING:
    from gossipper.stats.metrics import MetricsServer


@dataclass(frozen=True)
class LiveOutputSettings:
    """Which live outputs a run has (None: not asked for)."""

    metrics_address: tuple[str, int] | None = None  # -metrics_addr host, port
    stats_jsonl: str | None = None  # -stats_jsonl path
    summary_html: str | None = None  # -summary_html path


class LiveOutputs:
    """The live outputs of one run. Files open when it is made (a bad path fails before any
    socket opens); the endpoint binds in `open`, once the run knows it will go ahead."""

    def __init__(
        self,
        settings: LiveOutputSettings,
        counters: RunCounters,
        media: Callable[[], MediaCounters] | None = None,
        *,
        sip: bool = True,
    ) -> None:
        self.settings = settings
        self.counters = counters
        self._media = media
        self._sip = sip
        self.metrics: MetricsServer | None = None
        self.jsonl = StatsJsonl(settings.stats_jsonl, counters) if settings.stats_jsonl else None
        self.timeline = Timeline() if settings.summary_html else None

    def open(self) -> None:
        """Serve /metrics now (BindError when the address cannot be listened on)."""
        if self.settings.metrics_address is not None and self.metrics is None:
            # prometheus_client loads only for a run that serves metrics (-h, -v stay quick)
            from gossipper.stats.metrics import MetricsServer, RunCollector

            collector = RunCollector(self.counters, self._media, sip=self._sip)
            self.metrics = MetricsServer.open(self.settings.metrics_address, collector)

    def start(self, now: float) -> None:
        """Traffic starts: the first period begins."""
        if self.jsonl is not None:
            self.jsonl.start(now)
        self.tick(now)

    def tick(self, now: float) -> None:
        """Each second: a sample for the report's charts."""
        if self.timeline is not None:
            self.timeline.add(Sample.take(self.counters, now))

    def period(self, now: float) -> None:
        """An -fd period ended (the -trace_stat CSV writes its row now too)."""
        if self.jsonl is not None:
            self.jsonl.write_row(now)

    def finish(self, now: float) -> None:
        """The run ended: the last, partial period is written and everything closes."""
        self.period(now)
        self.tick(now)
        self.close()

    def write_report(self, tool_version: str, gates: HealthGates | None = None) -> None:
        """-summary_html, once the run's counters are final (FileProblem if it cannot be written)."""
        if self.settings.summary_html is None or self.timeline is None:
            return
        summary = summary_dict(self.counters, tool_version, gates)
        write_summary_html(self.settings.summary_html, summary, self.timeline.rows(), sip=self._sip)

    def close(self) -> None:
        """Idempotent, for error paths too: the endpoint stops, the file is closed."""
        if self.metrics is not None:
            metrics, self.metrics = self.metrics, None
            with contextlib.suppress(OSError):
                metrics.close()
        if self.jsonl is not None:
            self.jsonl.close()
