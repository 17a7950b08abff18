"""-summary_html as a person sees it: the report of a real run (SIP calls each driving a scale
stream, echoed by gossipper's uas) opened in headless Chromium, every chart checked for ink
in the screenshot and in its canvas, and the quality distributions drawn when the summary
has them."""

from __future__ import annotations

from pathlib import Path

from gossipper.cli.ports import LOOPBACK, free_port, free_ports_below_ephemeral
from gossipper.stats.counters import MediaCounters, RunCounters
from gossipper.stats.html_report import write_summary_html
from gossipper.stats.summary import summary_dict
from gossipper.stats.timeline import Sample, Timeline
from tests.e2e.browser import Probed, needs_chromium, probe, screenshot
from tests.e2e.processes import GossipperUas, read_json, run_gossipper
from tests.stats.test_html_report import QUALITY

CALLS = 30
# A chart's canvas is about 530 x 260 pixels; axes, grid and labels alone ink some thousands,
# a blank or failed canvas none.
MIN_INK = 2000
MIN_SERIES_PIXELS = 40  # pixels of a series' colour: a line was drawn, not only the axes


def _check_drawn(page: Path, work: Path, expected: list[str]) -> Probed:
    probed = probe(page, work)
    assert probed.charts_drawn == len(expected)
    assert [chart.chart_id for chart in probed.charts] == expected
    shot = screenshot(page, work / f"{page.stem}.png")
    for chart in probed.charts:
        assert chart.ink >= MIN_INK, chart
        _, top, width, height = chart.rect
        assert width > 300 and height > 150 and top + height <= shot.image.height, chart
        assert shot.count(chart.rect) >= MIN_INK, chart
        assert shot.count(chart.rect, colored=True) >= MIN_SERIES_PIXELS, chart
    return probed


@needs_chromium
def test_report_of_a_real_run_draws_every_chart(tmp_path: Path, gossipper_uas: GossipperUas) -> None:
    uas = gossipper_uas(
        "-sn", "uas", "-i", LOOPBACK, "-rtp_echo", "-mp", str(free_ports_below_ephemeral(2 * CALLS)),
        "-m", str(CALLS),
    )  # fmt: skip
    report, summary_path = tmp_path / "report.html", tmp_path / "summary.json"
    result = run_gossipper(
        "-sn", "invite_media_scale", uas.address, "-i", LOOPBACK, "-p", str(free_port()),
        "-mp", str(free_ports_below_ephemeral(2 * CALLS, start=30000)), "-m", str(CALLS), "-r", "10",
        "-d", "2000", "-summary_html", str(report), "-summary_json", str(summary_path), timeout=90,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert uas.wait(timeout=30) == 0
    summary = read_json(summary_path)
    assert summary["success_calls"] == CALLS
    page = report.read_text(encoding="utf-8")
    assert f"{CALLS} created, {CALLS} succeeded, 0 failed" in page
    expected = ["call-rate", "active-calls", "response-time", "failures", "rtp-rate", "late"]
    # the UAS echoes every stream, so the scale streams' quality is charted too
    quality = ["loss_percent", "jitter_ms", "rtt_ms", "mos"]
    _check_drawn(report, tmp_path, [*expected, *(f"quality-stream_{name}" for name in quality)])


@needs_chromium
def test_quality_distributions_are_drawn_when_the_summary_has_them(tmp_path: Path) -> None:
    counters = RunCounters(started_at=1000.0)
    timeline = Timeline()
    late = 0
    for second in range(31):
        late += second % 4  # a few late packets in three seconds of four
        counters.media = MediaCounters(rtp_packets_sent=2500 * second, rtp_packets_received=2490 * second)
        counters.media.late_packets = late
        timeline.add(Sample.take(counters, 1000.0 + second))
    counters.finished_at = 1030.0
    summary = summary_dict(counters, "0.test")
    media = summary["media"]
    assert isinstance(media, dict)
    media["quality"] = QUALITY
    report = tmp_path / "streams.html"
    write_summary_html(str(report), summary, timeline.rows(), sip=False)
    quality = ["quality-stream_loss_percent", "quality-stream_jitter_ms", "quality-stream_mos"]
    expected = ["rtp-rate", "late", *quality]
    _check_drawn(report, tmp_path, expected)
