import io

from gossipper.stats.counters import RunCounters
from gossipper.stats.quality import QualityAggregate, StreamQuality
from gossipper.stats.screen import CLEAR_AND_HOME, ScreenHeader, ScreenRefresher

STARTED = 1_700_000_000.0
LABELS = ["INVITE ---------->", "<---------- 100", "<---------- 200", "ACK ---------->", "[  30000 ms]"]


def header() -> ScreenHeader:
    return ScreenHeader(
        scenario="uac",
        local_address="127.0.0.1:5061",
        remote_address="127.0.0.1:5060",
        transport="UDP",
        rate=10.0,
        rate_period_ms=1000,
        max_calls=100,
        max_concurrent=0,
        elapsed_s=12.5,
    )


def make_counters() -> RunCounters:
    counters = RunCounters(started_at=STARTED)
    counters.ensure_steps(len(LABELS))
    counters.steps[0].messages = 40
    counters.steps[0].retransmissions = 3
    counters.steps[0].timeouts = 1
    counters.steps[1].messages = 38
    counters.steps[1].unexpected = 2
    return counters


def numbers_after(text: str, label: str) -> list[int]:
    """The integers that follow a row's label on its line."""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(label):
            return [int(token) for token in stripped[len(label) :].split()]
    raise AssertionError(f"no row {label!r} in:\n{text}")


def test_render_shows_header_counters_and_step_rows() -> None:
    counters = make_counters()
    counters.calls_created = 40
    counters.calls_succeeded = 30
    counters.calls_failed = 2
    counters.calls_active = 8
    counters.media.send_errors["EAGAIN"] = 4
    counters.media.icmp_unreachable["ECONNREFUSED"] = 9
    counters.media.late_packets = 6
    counters.media.malformed_rtp = 1
    counters.media.malformed_rtcp = 2
    counters.media.rtp_kernel_drops = 840
    screen = ScreenRefresher(counters, LABELS, header, io.StringIO(), interactive=False)
    text = screen.render(STARTED + 4)
    assert "uac" in text
    assert "UDP" in text
    assert "127.0.0.1:5061" in text and "127.0.0.1:5060" in text
    assert "10 calls / 1000 ms (10.000 cps)" in text
    assert "measured 10.000 cps" in text  # 40 calls over the 4 s since the start
    assert "Max calls: 100" in text and "Max concurrent: unlimited" in text
    assert numbers_after(text, "Calls created") == [40, 40]
    assert numbers_after(text, "Calls succeeded") == [30, 30]
    assert numbers_after(text, "Calls failed") == [2, 2]
    assert numbers_after(text, "Calls ongoing") == [8]
    assert numbers_after(text, "RTP send errors") == [4, 4]
    assert numbers_after(text, "RTP ICMP unreachable") == [9, 9]
    assert numbers_after(text, "RTP late packets") == [6, 6]
    assert numbers_after(text, "RTP malformed") == [1, 1]
    assert numbers_after(text, "RTCP malformed") == [2, 2]
    assert numbers_after(text, "RTP kernel drops") == [840, 840]
    assert numbers_after(text, "INVITE ---------->") == [40, 3, 1, 0]
    assert numbers_after(text, "<---------- 100") == [38, 0, 0, 2]
    assert numbers_after(text, "[  30000 ms]") == [0, 0, 0, 0]
    assert "\x1b" not in text


def test_period_columns_and_rtp_rate_count_from_the_last_refresh() -> None:
    counters = make_counters()
    out = io.StringIO()
    screen = ScreenRefresher(counters, LABELS, header, out, interactive=False)
    counters.calls_created = 10
    counters.media.rtp_packets_sent = 1000
    counters.media.icmp_unreachable["ECONNREFUSED"] = 3
    screen.refresh(STARTED + 1)
    counters.calls_created = 14
    counters.calls_succeeded = 5
    counters.media.rtp_packets_sent = 1100
    counters.media.icmp_unreachable["ECONNREFUSED"] = 8
    text = screen.render(STARTED + 3)
    assert numbers_after(text, "Calls created") == [4, 14]
    assert numbers_after(text, "Calls succeeded") == [5, 5]
    assert numbers_after(text, "RTP packets sent") == [100, 1100]
    assert numbers_after(text, "RTP ICMP unreachable") == [5, 8]
    assert "RTP: 50 pps over the last 2.0 s" in text
    assert "measured 2.000 cps" in text
    # render() alone does not start a new period
    assert numbers_after(screen.render(STARTED + 3), "Calls created") == [4, 14]
    assert out.getvalue() == ""


def test_interactive_refresh_redraws_with_ansi_and_final_draws_once_more() -> None:
    counters = make_counters()
    out = io.StringIO()
    screen = ScreenRefresher(counters, LABELS, header, out, interactive=True)
    screen.refresh(STARTED + 1)
    first = out.getvalue()
    assert first.startswith(CLEAR_AND_HOME)
    assert "INVITE ---------->" in first
    screen.final(STARTED + 2)
    assert out.getvalue().count(CLEAR_AND_HOME) == 2


def test_non_interactive_screen_prints_nothing() -> None:
    out = io.StringIO()
    screen = ScreenRefresher(make_counters(), LABELS, header, out, interactive=False)
    screen.refresh(STARTED + 1)
    screen.final(STARTED + 2)
    assert out.getvalue() == ""


def test_labels_beyond_the_counted_steps_show_zeros() -> None:
    counters = RunCounters(started_at=STARTED)
    counters.ensure_steps(1)
    counters.steps[0].messages = 7
    screen = ScreenRefresher(counters, LABELS, header, io.StringIO(), interactive=False)
    text = screen.render(STARTED + 1)
    assert numbers_after(text, "INVITE ---------->") == [7, 0, 0, 0]
    assert numbers_after(text, "ACK ---------->") == [0, 0, 0, 0]


def test_the_screen_says_when_creation_ramps_up_or_is_throttled() -> None:
    counters = make_counters()
    screen = ScreenRefresher(counters, LABELS, header, io.StringIO(), interactive=False)
    assert "Ramping up" not in screen.render(STARTED + 1) and "Throttled" not in screen.render(STARTED + 1)
    counters.rate_cap_cps = 5000.0  # slow start: capped, no overload seen
    assert (
        "Ramping up: creating 5000 calls/s, doubling while the loop keeps up (slow start)"
        in screen.render(STARTED + 1)
    )
    counters.throttle_reason = "CPU-bound: the event loop used 97% of a core; creating 4000 of 9000 calls/s"
    text = screen.render(STARTED + 2)
    assert f"Throttled: {counters.throttle_reason}" in text and "Ramping up" not in text


def test_rtp_quality_line_shows_when_measured_or_turned_off() -> None:
    counters = make_counters()
    screen = ScreenRefresher(counters, LABELS, header, io.StringIO(), interactive=False)
    assert "RTP quality" not in screen.render(counters.started_at + 1)  # no scale engine
    counters.media.quality_enabled = False
    assert "RTP quality: not measured (-rtp_quality off)" in screen.render(counters.started_at + 1)
    aggregate = QualityAggregate()
    aggregate.add(
        StreamQuality("127.0.0.1:6000", "127.0.0.1:40000", "PCMU/8000", received=50, expected=50, mos=4.41)
    )
    counters.media.quality_enabled = True
    counters.media.quality = aggregate.summary("model")
    line = next(line for line in screen.render(counters.started_at + 1).splitlines() if "RTP quality" in line)
    assert "1/1 streams receiving, loss 0.00 %" in line and "MOS p50 4.41" in line
