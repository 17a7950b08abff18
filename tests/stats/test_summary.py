import json
import os
import re

import pytest

from gossipper.cli.errors import describe
from gossipper.errors import FileProblem
from gossipper.stats.counters import FAILURE_CLASSES, RunCounters
from gossipper.stats.quality import QualityAggregate, StreamQuality
from gossipper.stats.summary import format_summary_text, summary_dict, write_summary_json

STARTED = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def filled_counters() -> RunCounters:
    counters = RunCounters(started_at=STARTED, finished_at=STARTED + 10.5)
    counters.process_cpu_s = 1.23456
    counters.calls_created = 21
    counters.calls_succeeded = 15
    counters.calls_active = 1
    for failure_class in ("timeout", "timeout", "timeout", "unexpected_sip", "unexpected_sip"):
        counters.call_failed(failure_class)
    counters.retransmissions = 7
    counters.timeouts = 3
    counters.unexpected_messages = 2
    counters.malformed_messages = 4
    counters.truncated_messages = 3
    counters.messages_too_large = 1
    counters.keepalives_received = 9
    counters.connections_refused = 5
    counters.connections_closed_quiet = 2
    counters.messages_sent = 100
    counters.messages_received = 90
    counters.out_of_call_messages = 6
    counters.dead_call_messages = 8
    counters.offered_cps = 3.0
    counters.throttle_reason = "CPU-bound: the event loop used 97% of a core; creating 2 of 3 calls/s"
    counters.throttled_s = 4.25
    counters.call_length.add(100)
    counters.call_length.add(300)
    counters.invite_rtt.add(5)
    counters.invite_rtt.add(15)
    counters.rtd_stat("1").add(42)
    media = counters.media
    media.engine = "scale"
    media.rtp_packets_sent = 5250
    media.rtp_octets_sent = 903_000
    media.rtp_packets_received = 5000
    media.rtp_octets_received = 860_000
    media.rtcp_sender_reports = 11
    media.rtcp_receiver_reports = 12
    media.rtcp_packets_received = 13
    media.streams_started = 20
    media.streams_active_max = 9
    media.send_errors["EAGAIN"] += 3
    media.send_errors["ENOBUFS"] += 1
    media.icmp_unreachable["ECONNREFUSED"] += 40
    media.icmp_unreachable["EHOSTUNREACH"] += 2
    media.late_packets = 17
    media.max_late_ms = 4.25
    media.on_time_1ms = 5200
    media.on_time_2ms = 5230
    media.malformed_rtp = 2
    media.malformed_rtcp = 1
    media.rtp_kernel_drops = 840
    return counters


def test_json_has_exactly_the_spec_fields_with_their_values() -> None:
    doc = summary_dict(filled_counters(), "1.2.3")
    assert list(doc) == [
        "schema_version",
        "tool_version",
        "started_at",
        "finished_at",
        "duration_ms",
        "cpu_s",
        "total_calls",
        "success_calls",
        "failed_calls",
        "active_calls",
        "success_ratio",
        "calls_per_second",
        "offered_rate_cps",
        "achieved_rate_cps",
        "throttle_reason",
        "throttled_s",
        "retransmits",
        "timeouts",
        "call_length",
        "invite_rtt",
        "rtd",
        "failure_classes",
        "unexpected_messages",
        "malformed_messages",
        "truncated_messages",
        "messages_too_large",
        "keepalives_received",
        "connections_refused",
        "connections_closed_quiet",
        "messages_sent",
        "messages_received",
        "out_of_call_messages",
        "dead_call_messages",
        "media",
        "health",
    ]
    assert doc["schema_version"] == "gossipper_summary_v1"
    assert doc["tool_version"] == "1.2.3"
    assert doc["started_at"] == "2023-11-14T22:13:20.000Z"
    assert doc["finished_at"] == "2023-11-14T22:13:30.500Z"
    assert doc["duration_ms"] == 10_500
    assert doc["cpu_s"] == 1.235
    assert (doc["offered_rate_cps"], doc["achieved_rate_cps"]) == (3.0, 2.0)  # 21 calls in 10.5 s
    assert doc["throttle_reason"] == "CPU-bound: the event loop used 97% of a core; creating 2 of 3 calls/s"
    assert doc["throttled_s"] == 4.25
    assert (doc["total_calls"], doc["success_calls"], doc["failed_calls"], doc["active_calls"]) == (
        21,
        15,
        5,
        1,
    )
    assert doc["success_ratio"] == pytest.approx(0.75)
    assert doc["calls_per_second"] == pytest.approx(2.0)
    assert (doc["retransmits"], doc["timeouts"]) == (7, 3)
    assert doc["call_length"] == {
        "count": 2,
        "average_ms": 200.0,
        "min_ms": 100.0,
        "max_ms": 300.0,
        "stddev_ms": pytest.approx(100.0),
        "buckets": {
            "<10": 0,
            "<50": 0,
            "<100": 0,
            "<500": 2,
            "<1000": 0,
            "<5000": 0,
            "<10000": 0,
            ">=10000": 0,
        },
    }
    invite_rtt = doc["invite_rtt"]
    assert isinstance(invite_rtt, dict)
    assert invite_rtt["count"] == 2
    assert invite_rtt["average_ms"] == 10.0
    assert invite_rtt["buckets"]["<10"] == 1
    assert invite_rtt["buckets"]["<20"] == 1
    assert sum(invite_rtt["buckets"].values()) == 2
    rtd = doc["rtd"]
    assert isinstance(rtd, dict)
    assert list(rtd) == ["1"]
    assert rtd["1"]["count"] == 1
    assert rtd["1"]["average_ms"] == 42.0
    assert doc["failure_classes"] == {
        "timeout": 3,
        "unexpected_sip": 2,
        "transport_error": 0,
        "parse_error": 0,
        "scenario_error": 0,
        "cancelled": 0,
    }
    assert list(doc["failure_classes"]) == list(FAILURE_CLASSES)
    assert doc["unexpected_messages"] == 2
    assert doc["malformed_messages"] == 4
    assert (doc["truncated_messages"], doc["keepalives_received"], doc["connections_refused"]) == (3, 9, 5)
    assert (doc["messages_too_large"], doc["connections_closed_quiet"]) == (1, 2)
    assert (doc["messages_sent"], doc["messages_received"]) == (100, 90)
    assert (doc["out_of_call_messages"], doc["dead_call_messages"]) == (6, 8)
    assert doc["media"] == {
        "rtp_packets_sent": 5250,
        "rtp_octets_sent": 903_000,
        "rtp_packets_received": 5000,
        "rtp_octets_received": 860_000,
        "rtcp_sender_reports": 11,
        "rtcp_receiver_reports": 12,
        "rtcp_packets_received": 13,
        "streams_started": 20,
        "streams_active_max": 9,
        "send_errors": {"EAGAIN": 3, "ENOBUFS": 1},
        "rtp_icmp_unreachable": {"ECONNREFUSED": 40, "EHOSTUNREACH": 2},
        "late_packets": 17,
        "max_late_ms": 4.25,
        "on_time_1ms": 5200,
        "on_time_2ms": 5230,
        "malformed_rtp": 2,
        "malformed_rtcp": 1,
        "rtp_kernel_drops": 840,
        "engine": "scale",
        "receive": {
            "streams": 0,
            "packets": 0,
            "lost": 0,
            "duplicates": 0,
            "out_of_order": 0,
            "jitter_avg_ms": 0.0,
            "jitter_max_ms": 0.0,
            "echoed_packets": 0,
            "srtp_rejected": {},
        },
        "quality": None,  # no scale engine measured any
    }


def test_empty_run_has_zero_ratios_not_division_errors() -> None:
    counters = RunCounters(started_at=STARTED, finished_at=STARTED)
    doc = summary_dict(counters, "x")
    assert doc["success_ratio"] == 0.0
    assert doc["calls_per_second"] == 0.0
    assert doc["duration_ms"] == 0
    assert doc["rtd"] == {}
    assert doc["failure_classes"] == dict.fromkeys(FAILURE_CLASSES, 0)
    json.dumps(doc)  # everything serialisable


def test_json_file_replaces_old_content_and_leaves_no_temp_file(tmp_path: os.PathLike[str]) -> None:
    target = os.path.join(tmp_path, "summary.json")
    with open(target, "w") as handle:
        handle.write("old content that is longer than nothing")
    write_summary_json(target, filled_counters(), "1.2.3")
    with open(target) as handle:
        written = json.load(handle)
    assert written["total_calls"] == 21
    assert written["media"]["send_errors"] == {"EAGAIN": 3, "ENOBUFS": 1}
    assert written["media"]["rtp_icmp_unreachable"] == {"ECONNREFUSED": 40, "EHOSTUNREACH": 2}
    assert os.listdir(tmp_path) == ["summary.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(target).st_mode & 0o777 == 0o666 & ~umask


def test_dash_writes_json_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    write_summary_json("-", filled_counters(), "1.2.3")
    out = capsys.readouterr().out
    assert json.loads(out)["success_calls"] == 15


def test_unwritable_path_is_a_config_error_naming_flag_and_path(tmp_path: os.PathLike[str]) -> None:
    target = os.path.join(tmp_path, "missing-dir", "summary.json")
    with pytest.raises(FileProblem) as caught:
        write_summary_json(target, filled_counters(), "1.2.3")
    assert re.search(r"^-summary_json: cannot write .*missing-dir/summary.json: ", describe(caught.value))


def test_text_summary_shows_the_numbers() -> None:
    text = format_summary_text(filled_counters())
    assert "Elapsed time: 10.500 s" in text
    assert "Calls created: 21  successful: 15  failed: 5 (timeout 3, unexpected_sip 2)" in text
    assert "transport_error" not in text
    assert "Success ratio: 75.00 %" in text
    assert "Call rate: 2.000 cps" in text
    assert "Retransmissions: 7  Timeouts: 3" in text
    assert "Unexpected messages: 2" in text
    assert "Malformed messages: 4" in text
    assert (
        "Messages cut off at close: 3  Messages too large: 1  Keep-alives received: 9  "
        "Connections refused: 5  Connections closed quiet: 2"
    ) in text
    assert "Not counted as received: malformed RTP 2, malformed RTCP 1, dropped by the kernel" in text
    assert "INVITE response time: avg 10.000 ms, min 5.000 ms, max 15.000 ms" in text
    assert "Call length: avg 200.000 ms" in text
    assert "Media (scale): sent 5250 packets / 903000 octets (500.0 pps avg)" in text
    assert "Send errors: EAGAIN 3, ENOBUFS 1; ICMP unreachable: ECONNREFUSED 40, EHOSTUNREACH 2;" in text
    assert "late packets: 17 (max lateness 4.250 ms)" in text
    assert "\x1b" not in text


def test_text_summary_has_no_media_line_without_rtp() -> None:
    counters = RunCounters(started_at=STARTED, finished_at=STARTED + 1)
    text = format_summary_text(counters)
    assert "Media" not in text
    assert "Keep-alives" not in text and "cut off" not in text
    assert "INVITE response time: none measured" in text


def quality_counters() -> RunCounters:
    counters = filled_counters()
    aggregate = QualityAggregate()
    for port, loss, mos in ((6000, 0.0, 4.41), (6002, 10.0, 3.4), (6004, 2.0, 4.1)):
        aggregate.add(
            StreamQuality(
                local=f"127.0.0.1:{port}",
                remote="127.0.0.1:40000",
                codec="PCMU/8000",
                received=100,
                expected=100 + int(loss),
                lost=int(loss),
                echo=True,
                loss_percent=loss,
                jitter_ms=1.5,
                rtt_samples=100,
                rtt_mean_ms=0.2,
                mos=mos,
            )
        )
    counters.media.quality_enabled = True
    counters.media.quality = aggregate.summary("the model")
    return counters


def test_quality_goes_to_json_and_to_the_printed_summary() -> None:
    counters = quality_counters()
    quality = summary_dict(counters, "x")["media"]["quality"]  # type: ignore[index]
    assert quality["streams"] == 3 and quality["streams_echoed"] == 3 and quality["mos_model"] == "the model"
    assert quality["packets_expected"] == 312 and quality["packets_lost"] == 12
    assert quality["loss_percent"] == round(100 * 12 / 312, 3)
    assert quality["stream_mos"]["min"] == 3.4 and quality["stream_mos"]["count"] == 3
    assert [stream["local"] for stream in quality["worst_streams"]] == [
        "127.0.0.1:6002",
        "127.0.0.1:6004",
        "127.0.0.1:6000",
    ]
    json.dumps(quality)
    text = format_summary_text(counters)
    assert "Receive quality: 3/3 streams receiving" in text
    assert "worst: 127.0.0.1:6002 <- 127.0.0.1:40000: MOS 3.40, loss 10.00 %" in text


def test_quality_off_says_so() -> None:
    counters = filled_counters()
    counters.media.quality_enabled = False
    assert summary_dict(counters, "x")["media"]["quality"] == {"enabled": False}  # type: ignore[index]
    assert "Receive quality: not measured (-rtp_quality off)" in format_summary_text(counters)
