"""-summary_html: the run as one HTML file a person opens in a browser, charts over time included.

The file is whole by itself: uPlot (vendored under stats/vendor/uplot, MIT), its stylesheet,
the chart code and the data are inline, so it opens from a mail attachment or a CI artifact
store with no network. The charts plot the same period rows as -stats_jsonl (stats.timeline),
one a second, and the headline numbers come from the -summary_json dict, so the three agree.

Media quality distributions (loss, jitter, MOS across streams) are charted when the summary
has `media.quality` with their quantiles; a run without them has no such charts.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from importlib import resources

from gossipper.stats.atomic_file import write_atomically
from gossipper.stats.counters import FAILURE_CLASSES

UPLOT_VERSION = "1.6.32"
_VENDOR = ("vendor", "uplot")

# id, title, unit, series (row key, label): the charts of every SIP run...
SIP_CHARTS: tuple[tuple[str, str, str, tuple[tuple[str, str], ...]], ...] = (
    ("call-rate", "Call rate: offered and achieved", "calls/s",
     (("offered_cps", "offered"), ("achieved_cps", "achieved"))),
    ("active-calls", "Active calls", "calls", (("calls_active", "active"),)),
    ("response-time", "INVITE response time", "ms",
     (("invite_rtt_p50_ms", "p50"), ("invite_rtt_p99_ms", "p99"))),
    ("failures", "Failed calls by class", "calls per period",
     tuple((f"failure_classes.{name}", name) for name in FAILURE_CLASSES)),
)  # fmt: skip
# ... and of every run with RTP.
MEDIA_CHARTS: tuple[tuple[str, str, str, tuple[tuple[str, str], ...]], ...] = (
    ("rtp-rate", "RTP packets per second", "packets/s",
     (("rtp_sent_pps", "sent"), ("rtp_received_pps", "received"))),
    ("late", "Late RTP packets (sent > 1 ms after their slot)", "% of sent", (("rtp_late_percent", "late"),)),
)  # fmt: skip
# media.quality keys charted as distributions across streams: key, title, unit
QUALITY_DISTRIBUTIONS = (
    ("stream_loss_percent", "Packet loss across streams", "% lost"),
    ("stream_jitter_ms", "Jitter across streams", "ms"),
    ("stream_rtt_ms", "Echo round trip across streams", "ms"),
    ("stream_mos", "MOS across streams", "MOS"),
)
# the quantile keys of a distribution, at the share of streams (%) each stands for
_QUANTILE_POINTS = (("min", 0.0), ("p1", 1.0), ("p10", 10.0), ("p50", 50.0), ("p90", 90.0), ("p99", 99.0),
                    ("max", 100.0))  # fmt: skip


def _vendored(name: str) -> str:
    return resources.files("gossipper.stats").joinpath(*_VENDOR, name).read_text(encoding="utf-8")


def _column(rows: Sequence[Mapping[str, object]], key: str) -> list[object]:
    """One series: a row's value by key, "a.b" reading into a nested dict; None where absent."""
    values: list[object] = []
    for row in rows:
        value: object = row
        for part in key.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        finite = isinstance(value, int | float) and math.isfinite(value)
        values.append(value if finite else None)
    return values


def _charts(summary: Mapping[str, object], rows: Sequence[Mapping[str, object]], sip: bool) -> list[object]:
    specs = list(SIP_CHARTS) if sip else []
    media = _mapping(summary, "media")
    if _number(media, "rtp_packets_sent") or _number(media, "rtp_packets_received"):
        specs += MEDIA_CHARTS
    return [
        {
            "id": chart_id,
            "title": title,
            "unit": unit,
            "series": [{"label": label, "values": _column(rows, key)} for key, label in series],
        }
        for chart_id, title, unit, series in specs
    ]


def quality_distributions(summary: Mapping[str, object]) -> list[dict[str, object]]:
    """The quality charts the summary has data for: each distribution with a count, as
    (share of streams %, value) points from its min, quantiles and max."""
    media = summary.get("media")
    quality = media.get("quality") if isinstance(media, Mapping) else None
    if not isinstance(quality, Mapping):
        return []
    charts: list[dict[str, object]] = []
    for key, title, unit in QUALITY_DISTRIBUTIONS:
        distribution = quality.get(key)
        if not isinstance(distribution, Mapping) or not distribution.get("count"):
            continue
        points = [
            [share, float(value)]
            for name, share in _QUANTILE_POINTS
            if isinstance(value := distribution.get(name), int | float) and math.isfinite(value)
        ]
        if len(points) >= 2:
            count = distribution["count"]
            charts.append({"id": f"quality-{key}", "title": f"{title} ({count} streams)", "unit": unit,
                           "points": points})  # fmt: skip
    return charts


def _number(mapping: Mapping[str, object], key: str) -> float:
    value = mapping.get(key)
    return float(value) if isinstance(value, int | float) else 0.0


def _mapping(mapping: Mapping[str, object], key: str) -> Mapping[str, object]:
    value = mapping.get(key)
    return value if isinstance(value, Mapping) else {}


def _headline(summary: Mapping[str, object], sip: bool) -> list[tuple[str, str]]:
    """The numbers at the top: what a person reads before the charts."""
    media = _mapping(summary, "media")
    items = [
        ("Started", str(summary.get("started_at", ""))),
        ("Duration", f"{_number(summary, 'duration_ms') / 1000:.1f} s"),
    ]
    if sip:
        failures = _mapping(summary, "failure_classes")
        failed = ", ".join(f"{name} {count}" for name, count in failures.items() if count) or "none"
        created, succeeded = _number(summary, "total_calls"), _number(summary, "success_calls")
        achieved, offered = _number(summary, "calls_per_second"), _number(summary, "offered_rate_cps")
        items += [
            ("Calls", f"{created:.0f} created, {succeeded:.0f} succeeded, "
                      f"{_number(summary, 'failed_calls'):.0f} failed"),
            ("Success ratio", f"{_number(summary, 'success_ratio') * 100:.2f} %"),
            ("Failures by class", failed),
            ("Call rate", f"{achieved:.2f} calls/s achieved, {offered:.2f} offered"),
            ("Retransmissions", f"{_number(summary, 'retransmits'):.0f}"),
        ]  # fmt: skip
    sent, received = _number(media, "rtp_packets_sent"), _number(media, "rtp_packets_received")
    if sent or received:
        errors = _mapping(media, "send_errors")
        error_count = sum(_number(errors, name) for name in errors)
        late, max_late = _number(media, "late_packets"), _number(media, "max_late_ms")
        items += [
            ("RTP", f"{sent:.0f} packets sent, {received:.0f} received, engine {media.get('engine', '')}"),
            ("Late RTP packets", f"{late:.0f} (max {max_late:.3f} ms)"),
            ("RTP send errors", f"{error_count:.0f}"),
        ]  # fmt: skip
    return items


def render_html(
    summary: Mapping[str, object], rows: Sequence[Mapping[str, object]], *, sip: bool = True
) -> str:
    """The whole report. `rows` are timeline period rows (stats.timeline.period_row);
    `sip` False (the standalone generator) leaves out the call charts and numbers."""
    data = {
        "x": _column(rows, "elapsed_s"),
        "charts": _charts(summary, rows, sip),
        "distributions": quality_distributions(summary),
    }
    # "</" cannot close the script element the JSON sits in
    payload = json.dumps(data, allow_nan=False).replace("</", "<\\/")
    headline = "\n".join(
        f"<tr><th>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
        for label, value in _headline(summary, sip)
    )
    title = f"gossipper {'run' if sip else 'RTP streams'} report: {summary.get('started_at', '')}"
    return _PAGE.format(
        title=html.escape(title),
        version=html.escape(str(summary.get("tool_version", ""))),
        uplot_version=UPLOT_VERSION,
        uplot_license=_vendored("LICENSE").replace("--", "- -"),
        uplot_css=_vendored("uPlot.min.css"),
        uplot_js=_vendored("uPlot.iife.min.js"),
        headline=headline,
        payload=payload,
        script=_SCRIPT,
        summary_json=html.escape(json.dumps(summary, indent=2, default=str)),
    )


def write_summary_html(
    path: str, summary: Mapping[str, object], rows: Sequence[Mapping[str, object]], *, sip: bool = True
) -> None:
    """Written through a temporary file and a rename, as -summary_json, so no one opens half a report."""
    text = render_html(summary, rows, sip=sip)
    write_atomically(path, text, "summary_html")


# Each chart is drawn with uPlot once the page is laid out; body[data-charts-drawn] then says
# how many were, so a reader (or a headless browser's test) knows the page is complete.
_SCRIPT = """
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"];
  var grid = document.getElementById("charts");
  function section(id, title) {
    var box = document.createElement("section");
    box.className = "chart";
    box.id = id;
    var heading = document.createElement("h2");
    heading.textContent = title;
    box.appendChild(heading);
    grid.appendChild(box);
    return box;
  }
  function width(box) { return Math.max(300, box.clientWidth - 24); }
  function draw(box, xLabel, unit, xs, series, points) {
    var opts = {
      width: width(box), height: 260,
      scales: {x: {time: false}, y: {range: function (u, low, high) {
        return [Math.min(0, low), high > 0 ? high * 1.1 : 1];  // from 0: a flat rate is not noise
      }}},
      axes: [{label: xLabel}, {label: unit, size: 60}],
      series: [{label: xLabel}].concat(series.map(function (s, i) {
        return {label: s.label, stroke: palette[i % palette.length], width: 2,
                points: {show: points || xs.length < 3}, spanGaps: false};
      })),
    };
    return new uPlot(opts, [xs].concat(series.map(function (s) { return s.values; })), box);
  }
  var drawn = 0;
  data.charts.forEach(function (chart) {
    draw(section(chart.id, chart.title + " (" + chart.unit + ")"), "elapsed (s)", chart.unit,
         data.x, chart.series, false);
    drawn += 1;
  });
  data.distributions.forEach(function (chart) {
    var xs = chart.points.map(function (p) { return p[0]; });
    var ys = chart.points.map(function (p) { return p[1]; });
    draw(section(chart.id, chart.title), "share of streams at or below (%)", chart.unit, xs,
         [{label: chart.unit, values: ys}], true);
    drawn += 1;
  });
  if (data.x.length < 2 && data.charts.length) {
    var note = document.createElement("p");
    note.textContent = "The run was shorter than one sample period: the charts have a single point.";
    grid.insertBefore(note, grid.firstChild);
  }
  document.body.setAttribute("data-charts-drawn", String(drawn));
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<!-- Charts by uPlot {uplot_version} (https://github.com/leeoniya/uPlot), embedded under its license:
{uplot_license}-->
<style>{uplot_css}</style>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }}
h1 {{ font-size: 20px; margin: 0 0 12px; }}
h2 {{ font-size: 15px; margin: 0 0 6px; }}
table.headline {{ border-collapse: collapse; margin-bottom: 20px; }}
table.headline th {{ text-align: left; padding: 2px 16px 2px 0; font-weight: 600; }}
table.headline td {{ padding: 2px 0; }}
#charts {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 20px; }}
section.chart {{ border: 1px solid #ddd; border-radius: 4px; padding: 10px 12px; }}
details {{ margin-top: 24px; }}
pre {{ font-size: 12px; overflow-x: auto; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>gossipper {version}</p>
<table class="headline">
{headline}
</table>
<div id="charts"></div>
<details><summary>The summary as JSON (-summary_json)</summary><pre>{summary_json}</pre></details>
<script type="application/json" id="report-data">{payload}</script>
<script>{uplot_js}</script>
<script>{script}</script>
</body>
</html>
"""
