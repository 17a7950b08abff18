"""The -summary_html page as text: whole by itself, the charts a run calls for, quality
distributions only when the summary has them. tests/e2e/test_summary_html.py renders it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gossipper.errors import FileProblem
from gossipper.stats.counters import MediaCounters, RunCounters
from gossipper.stats.html_report import quality_distributions, render_html, write_summary_html
from gossipper.stats.summary import summary_dict
from gossipper.stats.timeline import Sample, Timeline

# media.quality as the quality aggregates write it (count, min, mean, p1..p99, max per distribution)
QUALITY = {
    "enabled": True,
    "streams": 50,
    "loss_percent": 0.4,
    "stream_loss_percent": {"count": 50, "min": 0.0, "mean": 0.4, "p1": 0.0, "p10": 0.0, "p50": 0.2,
                            "p90": 1.0, "p99": 3.5, "max": 4.0},
    "stream_jitter_ms": {"count": 50, "min": 0.1, "mean": 0.8, "p1": 0.1, "p10": 0.3, "p50": 0.7,
                         "p90": 1.5, "p99": 2.9, "max": 3.1},
    "stream_rtt_ms": {"count": 0},
    "stream_mos": {"count": 50, "min": 3.9, "mean": 4.3, "p1": 3.9, "p10": 4.1, "p50": 4.35,
                   "p90": 4.4, "p99": 4.41, "max": 4.41},
}  # fmt: skip


def _run(rtp: bool) -> tuple[dict[str, object], list[dict[str, object]]]:
    """A summary and the rows of ten seconds of a run, with RTP or without."""
    counters = RunCounters(started_at=1000.0)
    timeline = Timeline()
    for second in range(11):
        counters.calls_created = 10 * second
        counters.calls_succeeded = 10 * second - (1 if second else 0)
        counters.offered_cps = 10.0
        counters.invite_rtt.add(0.3 + second / 10)
        if rtp:
            counters.media = MediaCounters(rtp_packets_sent=500 * second, rtp_packets_received=490 * second)
        timeline.add(Sample.take(counters, 1000.0 + second))
    counters.finished_at = 1010.0
    return summary_dict(counters, "0.test"), timeline.rows()


def _data(page: str) -> dict[str, object]:
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    assert match is not None
    data = json.loads(match[1])
    assert isinstance(data, dict)
    return data


def _chart_ids(page: str) -> list[str]:
    charts = _data(page)["charts"]
    assert isinstance(charts, list)
    return [chart["id"] for chart in charts]


def test_page_is_whole_by_itself() -> None:
    page = render_html(*_run(rtp=True))
    assert "<script src" not in page and "<link" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page and "url(" not in page
    assert "var uPlot=" in page  # the library itself, inline
    assert "Copyright (c) 2022 Leon Sorokin" in page  # and its license with it


def test_sip_run_with_rtp_has_every_chart_and_its_series() -> None:
    summary, rows = _run(rtp=True)
    page = render_html(summary, rows)
    assert _chart_ids(page) == ["call-rate", "active-calls", "response-time", "failures", "rtp-rate", "late"]
    data = _data(page)
    assert data["x"] == [float(second) for second in range(1, 11)]
    charts = {chart["id"]: chart for chart in data["charts"]}
    rate = {series["label"]: series["values"] for series in charts["call-rate"]["series"]}
    assert rate["offered"] == [10.0] * 10 and rate["achieved"] == [10.0] * 10
    rtp = {series["label"]: series["values"] for series in charts["rtp-rate"]["series"]}
    assert rtp["sent"] == [500.0] * 10 and rtp["received"] == [490.0] * 10
    assert "100 created, 99 succeeded, 0 failed" in page


def test_signalling_only_run_has_no_rtp_charts_and_standalone_no_call_charts() -> None:
    signalling = ["call-rate", "active-calls", "response-time", "failures"]
    assert _chart_ids(render_html(*_run(rtp=False))) == signalling
    assert _chart_ids(render_html(*_run(rtp=True), sip=False)) == ["rtp-rate", "late"]


def test_quality_distributions_only_when_the_summary_has_them() -> None:
    summary, rows = _run(rtp=True)
    assert quality_distributions(summary) == []
    media = summary["media"]
    assert isinstance(media, dict)
    media["quality"] = QUALITY
    charts = quality_distributions(summary)
    assert [chart["id"] for chart in charts] == [
        "quality-stream_loss_percent",
        "quality-stream_jitter_ms",
        "quality-stream_mos",  # the RTT distribution counted nothing: no chart
    ]
    assert charts[0]["points"] == [[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [50.0, 0.2], [90.0, 1.0],
                                   [99.0, 3.5], [100.0, 4.0]]  # fmt: skip
    assert len(_data(render_html(summary, rows))["distributions"]) == 3
    media["quality"] = None  # no scale engine
    assert quality_distributions(summary) == []


def test_text_from_the_run_cannot_break_out_of_the_page() -> None:
    summary, rows = _run(rtp=False)
    summary["started_at"] = "</script><script>alert(1)</script>"
    page = render_html(summary, rows)
    assert "<script>alert(1)" not in page
    assert _data(page)["x"]  # the data block still parses


def test_unwritable_report_names_its_setting(tmp_path: Path) -> None:
    with pytest.raises(FileProblem, match="cannot write") as caught:
        write_summary_html(str(tmp_path / "missing" / "report.html"), *_run(rtp=False))
    assert caught.value.setting == "summary_html"


def test_report_is_written_whole(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    write_summary_html(str(path), *_run(rtp=True))
    assert path.read_text(encoding="utf-8").rstrip().endswith("</html>")
    assert [entry.name for entry in tmp_path.iterdir()] == ["report.html"]  # no temporary file left
