import os
import re
from datetime import datetime

import pytest

from gossipper.cli.errors import describe
from gossipper.errors import FileProblem
from gossipper.stats.counters import RunCounters
from gossipper.stats.stat_csv import StatCsvLayout, StatCsvWriter, default_stat_path

STARTED = 1_700_000_000.25

SIPP_LEADING_COLUMNS = (
    "StartTime;LastResetTime;CurrentTime;ElapsedTime(P);ElapsedTime(C);TargetRate;CallRate(P);CallRate(C);"
    "IncomingCall(P);IncomingCall(C);OutgoingCall(P);OutgoingCall(C);TotalCallCreated;CurrentCall;"
    "SuccessfulCall(P);SuccessfulCall(C);FailedCall(P);FailedCall(C);"
    "FailedCannotSendMessage(P);FailedCannotSendMessage(C);FailedMaxUDPRetrans(P);FailedMaxUDPRetrans(C);"
    "FailedTcpConnect(P);FailedTcpConnect(C);FailedTcpClosed(P);FailedTcpClosed(C);"
    "FailedUnexpectedMessage(P);FailedUnexpectedMessage(C);FailedCallRejected(P);FailedCallRejected(C);"
    "FailedCmdNotSent(P);FailedCmdNotSent(C);FailedRegexpDoesntMatch(P);FailedRegexpDoesntMatch(C);"
    "FailedRegexpShouldntMatch(P);FailedRegexpShouldntMatch(C);"
    "FailedRegexpHdrNotFound(P);FailedRegexpHdrNotFound(C);"
    "FailedOutboundCongestion(P);FailedOutboundCongestion(C);FailedTimeoutOnRecv(P);FailedTimeoutOnRecv(C);"
    "FailedTimeoutOnSend(P);FailedTimeoutOnSend(C);FailedTestDoesntMatch(P);FailedTestDoesntMatch(C);"
    "FailedTestShouldntMatch(P);FailedTestShouldntMatch(C);"
    "FailedStrcmpDoesntMatch(P);FailedStrcmpDoesntMatch(C);"
    "FailedStrcmpShouldntMatch(P);FailedStrcmpShouldntMatch(C);OutOfCallMsgs(P);OutOfCallMsgs(C);"
    "DeadCallMsgs(P);DeadCallMsgs(C);Retransmissions(P);Retransmissions(C);AutoAnswered(P);AutoAnswered(C);"
    "Warnings(P);Warnings(C);FatalErrors(P);FatalErrors(C);WatchdogMajor(P);WatchdogMajor(C);"
    "WatchdogMinor(P);WatchdogMinor(C);"
)

OUR_COLUMNS = (
    "rtp_packets_sent(P);rtp_packets_sent(C);rtp_octets_sent(P);rtp_octets_sent(C);"
    "rtp_packets_received(P);rtp_packets_received(C);rtp_send_errors(P);rtp_send_errors(C);"
    "rtp_icmp_unreachable(P);rtp_icmp_unreachable(C);rtp_late_packets(P);rtp_late_packets(C);"
    "rtp_malformed(P);rtp_malformed(C);rtcp_malformed(P);rtcp_malformed(C);rtp_kernel_drops(P);rtp_kernel_drops(C);"
)

WITH_EVERYTHING = StatCsvLayout(rtd_repartition=True, call_length_repartition=True, media_columns=True)

DATE = re.compile(r"^(\d{4}-\d\d-\d\d)\t(\d\d:\d\d:\d\d\.\d{6})\t(\d{10})\.(\d{6})$")


def read_table(path: str, delimiter: str = ";") -> tuple[list[str], list[dict[str, str]]]:
    with open(path) as handle:
        lines = handle.read().splitlines()
    assert all(line.endswith(delimiter) for line in lines)
    header = lines[0][: -len(delimiter)].split(delimiter)
    rows = []
    for line in lines[1:]:
        values = line[: -len(delimiter)].split(delimiter)
        assert len(values) == len(header)
        rows.append(dict(zip(header, values, strict=True)))
    return header, rows


def test_default_path_is_sipps() -> None:
    assert default_stat_path("uac") == f"uac_{os.getpid()}_.csv"


def test_header_has_sipp_columns_first_then_ours(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "stat.csv")
    counters = RunCounters(started_at=STARTED)
    counters.rtd_stat("1")
    writer = StatCsvWriter(path, counters, WITH_EVERYTHING)
    writer.write_header()
    writer.close()
    with open(path) as handle:
        line = handle.readline().rstrip("\n")
    assert line.startswith(SIPP_LEADING_COLUMNS)
    assert line.endswith(OUR_COLUMNS)
    rest = line[len(SIPP_LEADING_COLUMNS) : -len(OUR_COLUMNS)]
    assert rest.startswith(
        "ResponseTime1(P);ResponseTime1(C);ResponseTime1StDev(P);ResponseTime1StDev(C);"
        "CallLength(P);CallLength(C);CallLengthStDev(P);CallLengthStDev(C);"
        "ResponseTimeRepartition1;ResponseTimeRepartition1_<10;"
    )
    assert "ResponseTimeRepartition1_>=200;CallLengthRepartition;CallLengthRepartition_<10;" in rest
    assert rest.endswith("CallLengthRepartition_>=10000;")


def test_rows_carry_period_and_cumulative_values(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "stat.csv")
    counters = RunCounters(started_at=STARTED)
    counters.target_rate = 10.0
    writer = StatCsvWriter(path, counters, WITH_EVERYTHING)
    writer.write_header()

    counters.calls_created, counters.calls_succeeded, counters.calls_active = 20, 15, 5
    counters.call_failed("timeout")
    counters.retransmissions = 4
    counters.media.rtp_packets_sent = 1000
    counters.media.send_errors["EAGAIN"] = 2
    counters.media.icmp_unreachable["ECONNREFUSED"] = 7
    counters.call_length.add(1000)
    counters.call_length.add(2000)
    writer.write_row(STARTED + 2)

    counters.calls_created, counters.calls_succeeded, counters.calls_active = 30, 22, 6
    counters.call_failed("unexpected_sip")
    counters.call_failed("transport_error")
    counters.retransmissions = 5
    counters.media.rtp_packets_sent = 1500
    counters.media.send_errors["ENOBUFS"] = 1
    counters.media.icmp_unreachable["EHOSTUNREACH"] = 5
    counters.media.malformed_rtcp = 4
    counters.media.rtp_kernel_drops = 840
    counters.call_length.add(6000)
    writer.write_row(STARTED + 4)

    writer.write_row(STARTED + 5)  # nothing happened in this period
    writer.close()

    _, rows = read_table(path)
    assert len(rows) == 3
    first, second, third = rows
    assert (first["TotalCallCreated"], first["CurrentCall"]) == ("20", "5")
    assert (second["TotalCallCreated"], second["CurrentCall"]) == ("30", "6")
    assert (second["OutgoingCall(P)"], second["OutgoingCall(C)"]) == ("10", "30")
    assert (second["SuccessfulCall(P)"], second["SuccessfulCall(C)"]) == ("7", "22")
    assert (second["FailedCall(P)"], second["FailedCall(C)"]) == ("2", "3")
    assert (second["FailedUnexpectedMessage(P)"], second["FailedCannotSendMessage(C)"]) == ("1", "1")
    assert (first["FailedTimeoutOnRecv(C)"], second["FailedTimeoutOnRecv(P)"]) == ("1", "0")
    assert (third["SuccessfulCall(P)"], third["SuccessfulCall(C)"]) == ("0", "22")
    assert third["IncomingCall(C)"] == "0" and third["AutoAnswered(C)"] == "0"
    for name in ("SuccessfulCall", "FailedCall", "OutgoingCall", "Retransmissions", "rtp_packets_sent"):
        assert sum(int(row[f"{name}(P)"]) for row in rows) == int(third[f"{name}(C)"]), name
    assert (second["rtp_packets_sent(P)"], second["rtp_packets_sent(C)"]) == ("500", "1500")
    assert (second["rtp_send_errors(P)"], second["rtp_send_errors(C)"]) == ("1", "3")
    assert (first["rtp_icmp_unreachable(P)"], first["rtp_icmp_unreachable(C)"]) == ("7", "7")
    assert (second["rtp_icmp_unreachable(P)"], second["rtp_icmp_unreachable(C)"]) == ("5", "12")
    assert (second["rtcp_malformed(P)"], third["rtcp_malformed(P)"], third["rtcp_malformed(C)"]) == (
        "4",
        "0",
        "4",
    )
    assert (second["rtp_kernel_drops(P)"], third["rtp_kernel_drops(C)"]) == ("840", "840")

    assert first["TargetRate"] == "10.000"
    assert (first["CallRate(P)"], first["CallRate(C)"]) == ("10.000", "10.000")
    assert (second["CallRate(P)"], second["CallRate(C)"]) == ("5.000", "7.500")
    assert (second["ElapsedTime(P)"], second["ElapsedTime(C)"]) == ("00:00:02", "00:00:04")

    assert (first["CallLength(P)"], first["CallLength(C)"]) == ("00:00:01:500000", "00:00:01:500000")
    assert first["CallLengthStDev(C)"] == "00:00:00:707000"  # the sample stddev, truncated to the ms
    assert (second["CallLength(P)"], second["CallLength(C)"]) == ("00:00:06:000000", "00:00:03:000000")
    assert second["CallLengthStDev(P)"] == "00:00:00:000000"
    assert third["CallLength(P)"] == "00:00:00:000000"
    assert (third["CallLengthRepartition_<5000"], third["CallLengthRepartition_<10000"]) == ("2", "1")
    assert third["CallLengthRepartition"] == ""


def test_dates_are_formatted_like_sipp(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "stat.csv")
    counters = RunCounters(started_at=STARTED)
    writer = StatCsvWriter(path, counters)
    writer.write_header()
    writer.write_row(STARTED + 60.5)
    writer.write_row(STARTED + 61)
    writer.close()
    _, rows = read_table(path)
    start = DATE.match(rows[0]["StartTime"])
    assert start is not None
    local = datetime.fromtimestamp(STARTED)
    assert start.group(1) == local.strftime("%Y-%m-%d")
    assert start.group(2) == local.strftime("%H:%M:%S") + ".250000"
    assert (start.group(3), start.group(4)) == (str(int(STARTED)), "250000")
    assert rows[0]["LastResetTime"] == rows[0]["StartTime"]
    assert rows[1]["LastResetTime"] == rows[0]["CurrentTime"]
    current = DATE.match(rows[1]["CurrentTime"])
    assert current is not None and current.group(3) == str(int(STARTED + 61))
    assert rows[0]["ElapsedTime(C)"] == "00:01:00"


def test_a_row_before_the_header_writes_the_header_first(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "stat.csv")
    writer = StatCsvWriter(path, RunCounters(started_at=STARTED))
    writer.write_row(STARTED + 1)
    writer.close()
    header, rows = read_table(path)
    assert header[0] == "StartTime" and len(rows) == 1


def test_each_row_reaches_the_disk_before_close(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "stat.csv")
    counters = RunCounters(started_at=STARTED)
    writer = StatCsvWriter(path, counters)
    writer.write_header()
    counters.calls_created = 3
    writer.write_row(STARTED + 1)
    _, rows = read_table(path)
    assert rows[-1]["TotalCallCreated"] == "3"
    writer.close()


def test_unwritable_path_is_a_config_error_naming_stf(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "no-such-dir", "stat.csv")
    with pytest.raises(FileProblem) as caught:
        StatCsvWriter(path, RunCounters())
    assert re.search(r"^-stf: cannot write .*no-such-dir/stat.csv: ", describe(caught.value))


def test_a_signalling_run_has_only_sipps_columns(tmp_path: os.PathLike[str]) -> None:
    """No repartition element in the scenario and no media: the header stops where SIPp's does."""
    path = os.path.join(tmp_path, "stat.csv")
    counters = RunCounters(started_at=STARTED)
    counters.rtd_stat("1")
    writer = StatCsvWriter(path, counters)
    writer.write_row(STARTED + 1)
    writer.close()
    header, _ = read_table(path)
    assert ";".join(header) + ";" == (
        SIPP_LEADING_COLUMNS
        + "ResponseTime1(P);ResponseTime1(C);ResponseTime1StDev(P);ResponseTime1StDev(C);"
        "CallLength(P);CallLength(C);CallLengthStDev(P);CallLengthStDev(C);"
    )


def test_delimiter_rfc3339_and_target_users(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "stat.csv")
    counters = RunCounters(started_at=STARTED)
    counters.target_rate, counters.target_users = 7.5, 40
    writer = StatCsvWriter(path, counters, StatCsvLayout(delimiter="|,", rfc3339=True))
    writer.write_row(STARTED + 1)
    counters.target_users = None
    writer.write_row(STARTED + 2)
    writer.close()
    header, rows = read_table(path, "|,")
    assert header[:3] == ["StartTime", "LastResetTime", "CurrentTime"]
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)"
    assert all(re.fullmatch(stamp, rows[0][name]) for name in header[:3]), rows[0]
    assert rows[0]["StartTime"].split(".")[1].startswith("250000")
    assert (rows[0]["TargetRate"], rows[1]["TargetRate"]) == ("40", "7.500")


def test_generic_counters_rejected_auto_answered_and_warnings(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "stat.csv")
    counters = RunCounters(started_at=STARTED)
    counters.generic.update({"7": 0, "invites": 0})
    writer = StatCsvWriter(path, counters)
    writer.write_header()
    counters.generic.update({"7": 2, "invites": 5})
    counters.calls_rejected, counters.auto_answered, counters.warnings = 1, 3, 4
    counters.call_failed("timeout")
    counters.call_failed("timeout")
    counters.calls_max_retrans = 1
    writer.write_row(STARTED + 1)
    counters.generic["invites"] = 6
    writer.write_row(STARTED + 2)
    writer.close()
    header, rows = read_table(path)
    assert header[-4:] == ["GenericCounter7(P)", "GenericCounter7(C)", "invites(P)", "invites(C)"]
    assert header.index("GenericCounter7(P)") == header.index("CallLengthStDev(C)") + 1
    first, second = rows
    assert (first["GenericCounter7(C)"], first["invites(P)"], second["invites(P)"]) == ("2", "5", "1")
    assert (first["FailedCallRejected(C)"], first["AutoAnswered(C)"], first["Warnings(C)"]) == ("1", "3", "4")
    assert second["Warnings(P)"] == "0"
    assert (first["FailedMaxUDPRetrans(C)"], first["FailedTimeoutOnRecv(C)"]) == ("1", "1")


def test_periodic_rtd_restarts_the_repartitions_at_each_row(tmp_path: os.PathLike[str]) -> None:
    rows_by_mode = []
    for periodic in (False, True):
        path = os.path.join(tmp_path, f"stat-{periodic}.csv")
        counters = RunCounters(started_at=STARTED)
        rtd = counters.rtd_stat("1")
        layout = StatCsvLayout(periodic_rtd=periodic, rtd_repartition=True, call_length_repartition=True)
        writer = StatCsvWriter(path, counters, layout)
        rtd.add(5)
        rtd.add(15)
        writer.write_row(STARTED + 1)
        rtd.add(5)
        writer.write_row(STARTED + 2)
        writer.close()
        rows_by_mode.append(read_table(path)[1])
    cumulative, periodic_rows = rows_by_mode
    assert [row["ResponseTimeRepartition1_<10"] for row in cumulative] == ["1", "2"]
    assert [row["ResponseTimeRepartition1_<10"] for row in periodic_rows] == ["1", "1"]
    assert [row["ResponseTimeRepartition1_<20"] for row in periodic_rows] == ["1", "0"]
    assert periodic_rows[1]["ResponseTime1(C)"] == "00:00:00:008000"  # (5 + 15 + 5) / 3, truncated


def test_single_sample_has_no_deviation(tmp_path: os.PathLike[str]) -> None:
    """SIPp divides by zero here and prints a 2562047788015-hour deviation; we print zero."""
    path = os.path.join(tmp_path, "stat.csv")
    counters = RunCounters(started_at=STARTED)
    counters.call_length.add(1234.9)
    writer = StatCsvWriter(path, counters)
    writer.write_row(STARTED + 1)
    writer.close()
    row = read_table(path)[1][0]
    assert (row["CallLength(C)"], row["CallLengthStDev(C)"]) == ("00:00:01:234000", "00:00:00:000000")
