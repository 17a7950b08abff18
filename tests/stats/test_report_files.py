import os
import re

from gossipper.stats.counters import RunCounters
from gossipper.stats.report_files import CountedStep, CountsCsv, ErrorCodesCsv, RttCsv, report_path

STARTED = 1_700_000_000.0
STAMP = r"\d{4}-\d\d-\d\d\t\d\d:\d\d:\d\d\.\d{6}\t\d{10}\.\d{6}"

# SIPp's uac: INVITE (retrans=500), 100, 180, 183, 200, ACK, pause, BYE (retrans=500), 200
UAC_STEPS = [
    CountedStep(0, 0, "send", "INVITE", timeout_column=True),
    CountedStep(1, 1, "recv", "100"),
    CountedStep(2, 2, "recv", "180"),
    CountedStep(3, 3, "recv", "183"),
    CountedStep(4, 4, "recv", "200"),
    CountedStep(5, 5, "send", "ACK"),
    CountedStep(6, 6, "pause"),
    CountedStep(7, 7, "send", "BYE", timeout_column=True),
    CountedStep(8, 8, "recv", "200"),
]
# What Debian's SIPp 3.6.1 writes for `sipp -sd uac` with -trace_counts.
SIPP_UAC_COUNTS_HEADER = (
    "CurrentTime;ElapsedTime;0_INVITE_Sent;0_INVITE_Retrans;0_INVITE_Timeout;1_100_Recv;1_100_Retrans;"
    "1_100_Timeout;1_100_Unexp;2_180_Recv;2_180_Retrans;2_180_Timeout;2_180_Unexp;3_183_Recv;3_183_Retrans;"
    "3_183_Timeout;3_183_Unexp;4_200_Recv;4_200_Retrans;4_200_Timeout;4_200_Unexp;5_ACK_Sent;5_ACK_Retrans;"
    "6_Pause_Sessions;6_Pause_Unexp;7_BYE_Sent;7_BYE_Retrans;7_BYE_Timeout;8_200_Recv;8_200_Retrans;"
    "8_200_Timeout;8_200_Unexp;"
)


def lines(path: str) -> list[str]:
    with open(path) as handle:
        return handle.read().split("\n")


def test_names() -> None:
    assert report_path("uac", "counts.csv") == f"uac_{os.getpid()}_counts.csv"


def test_counts_header_is_sipps_and_rows_follow_the_steps(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "counts.csv")
    counters = RunCounters(started_at=STARTED)
    counters.ensure_steps(9)
    counts = CountsCsv(path, counters, UAC_STEPS, lambda: {6: 2}, ";", False)
    counters.steps[0].messages, counters.steps[0].retransmissions, counters.steps[0].timeouts = 5, 3, 1
    counters.steps[2].unexpected = 4
    counters.steps[6].unexpected = 1
    counts.write_row(STARTED + 1.5)
    counts.close()
    header, row, end = lines(path)
    assert header == SIPP_UAC_COUNTS_HEADER
    assert end == ""
    time_field, elapsed, *values = row.split(";")
    assert re.fullmatch(STAMP, time_field) and elapsed == "00:00:01:500000"
    named = dict(zip(header.split(";")[2:], values, strict=False))
    assert (named["0_INVITE_Sent"], named["0_INVITE_Retrans"], named["0_INVITE_Timeout"]) == ("5", "3", "1")
    assert (named["2_180_Unexp"], named["6_Pause_Sessions"], named["6_Pause_Unexp"]) == ("4", "2", "1")
    assert values[-1] == ""  # every value is followed by the delimiter


def test_counts_of_3pcc_steps() -> None:
    assert CountedStep(0, 3, "recvcmd").column_names() == ["3_RecvCmd", "3_RecvCmd_Timeout"]
    assert CountedStep(0, 4, "sendcmd").column_names() == ["4_SendCmd"]
    assert CountedStep(0, 1, "send", "ACK").column_names() == ["1_ACK_Sent", "1_ACK_Retrans"]


def test_error_codes_rows_list_the_period_codes_latest_first(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "codes.csv")
    counters = RunCounters(started_at=STARTED)
    counters.unexpected_response(404)  # not collected before the file exists
    codes = ErrorCodesCsv(path, counters, ";", False)
    counters.unexpected_response(486)
    counters.unexpected_response(503)
    codes.write_row(STARTED + 1)
    codes.write_row(STARTED + 2)
    codes.close()
    first, second, end = lines(path)
    assert re.fullmatch(STAMP + r";00:00:01:000000;503,486,", first), first
    assert re.fullmatch(STAMP + r";00:00:02:000000;", second), second
    assert end == ""


def test_rtt_samples_are_written_in_batches_of_rtt_freq(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "rtt.csv")
    rtt = RttCsv(path, STARTED, ";", batch=2)
    rtt.add("1", 4.25, STARTED + 0.508001)
    assert lines(path) == [""]  # nothing until a batch is full
    rtt.add("1", 1004.0, STARTED + 1.004)
    assert lines(path) == ["Date_ms;response_time_ms;rtd_no", "508.001;4.25;1", "1004;1004;1", ""]
    rtt.add("second", 0.1234567, STARTED + 2)
    rtt.close()  # the rest at the end
    assert lines(path)[-2] == "2000;0.123457;second"


def test_rtt_listener_feeds_a_duration_stat(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "rtt.csv")
    counters = RunCounters(started_at=STARTED)
    rtt = RttCsv(path, STARTED, ",", batch=1)
    counters.rtd_stat("1").listener = rtt.listener("1", lambda: STARTED + 3)
    counters.rtd_stat("1").add(12.5)
    rtt.close()
    assert lines(path) == ["Date_ms,response_time_ms,rtd_no", "3000,12.5,1", ""]
    assert counters.rtd["1"].count == 1
