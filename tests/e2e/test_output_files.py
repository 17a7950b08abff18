"""SIPp's output files as gossipper writes them, checked against Debian's SIPp 3.6.1 running
the same scenario: names (after the -sf file, never the scenario's name=), the statistics
and counts CSV headers, the short-message, error-code and RTT files' shapes, write-through,
-*_overwrite, the ring buffer and -max_log_size.

Where current SIPp (whose source gossipper follows) differs from 3.6.1 the test says so:
3.6.1 prints TargetRate and the call rates without three decimals, and stamps -trace_msg
entries "2026-12-02 16:15:51.361730" with "(514 bytes)" where current SIPp writes an
RFC 3339 stamp and "[514] bytes".
"""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from gossipper.cli.ports import LOOPBACK, free_port
from tests.e2e.processes import SIPP, Processes, SippUas, gossipper_command, needs_sipp, wait_bound

# A lab's copy of SIPp's uac (rtd="true", both repartitions), whose name= holds a path: the
# files must still be named after the file, lab_uac_<pid>_..., in the working directory.
REJECTING_UAS = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="rejecting uas">
  <recv request="INVITE"/>
  <send><![CDATA[
SIP/2.0 480 Temporarily Unavailable
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <recv request="ACK"/>
</scenario>
"""
DEFAULT_STAMP = r"\d{4}-\d\d-\d\d\t\d\d:\d\d:\d\d\.\d{6}\t\d{10}\.\d{6}"
CALLS = 3


def _lab_uac(directory: Path) -> Path:
    """SIPp's own uac, as `sipp -sd uac` prints it, under a name= that is a path."""
    assert SIPP is not None
    text = subprocess.run([SIPP, "-sd", "uac"], capture_output=True, text=True, check=False).stdout
    assert "<scenario" in text
    text = re.sub(r'<scenario name="[^"]*">', '<scenario name="../../escaped/name">', text)
    # Generic counters, named and numeric (SIPp's GenericCounter7 columns).
    text = text.replace('<send retrans="500">', '<send retrans="500" counter="invites">', 1)
    text = text.replace('<recv response="200" rtd="true">', '<recv response="200" rtd="true" counter="7">')
    assert 'counter="invites"' in text and 'counter="7"' in text
    path = directory / "lab_uac.xml"
    path.write_text(text)
    return path


def _run(program: str, directory: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """One UAC run to its end in `directory` (where its files land)."""
    assert SIPP is not None
    base = [SIPP, *args, "-nostdin"] if program == "sipp" else gossipper_command(*args, "-nostdin")
    return subprocess.run(
        [*base, "-i", LOOPBACK, "-p", str(free_port())],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=directory,
        check=False,
    )


def _only(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    assert len(found) == 1, (pattern, sorted(path.name for path in directory.iterdir()))
    return found[0]


def _rows(path: Path) -> list[list[str]]:
    return [line.split(";") for line in path.read_text().splitlines()]


def _both(tmp_path: Path, uas_port: int, scenario: Path, *flags: str) -> tuple[Path, Path]:
    """The same UAC run by SIPp and by gossipper, each in its own directory."""
    dirs = []
    for program in ("sipp", "gossipper"):
        directory = tmp_path / program
        directory.mkdir()
        result = _run(program, directory, "-sf", str(scenario), f"{LOOPBACK}:{uas_port}", *flags)
        assert result.returncode in (0, 1), (program, result.returncode, result.stderr[-2000:])
        dirs.append(directory)
    return dirs[0], dirs[1]


@needs_sipp
def test_stat_and_counts_csv_are_sipps_for_the_same_scenario(tmp_path: Path, sipp_uas: SippUas) -> None:
    uas = sipp_uas("-sn", "uas", "-i", LOOPBACK, "-m", str(2 * CALLS), cwd=tmp_path)
    scenario = _lab_uac(tmp_path)
    flags = ("-m", str(CALLS), "-r", "5", "-trace_stat", "-trace_counts", "-trace_rtt", "-rtt_freq", "2")
    flags += ("-trace_shortmsg", "-fd", "1")
    theirs, ours = _both(tmp_path, uas.port, scenario, *flags)
    assert uas.wait(timeout=30) == 0
    assert not (tmp_path.parent / "escaped").exists()
    for directory in (theirs, ours):
        assert {path.name.split("_")[0] for path in directory.iterdir()} == {"lab"}

    their_stat, our_stat = _rows(_only(theirs, "lab_uac_*_.csv")), _rows(_only(ours, "lab_uac_*_.csv"))
    assert our_stat[0] == their_stat[0]
    assert "ResponseTime1(C)" in our_stat[0] and our_stat[0][-1] == ""
    assert {"invites(C)", "GenericCounter7(C)"} <= set(our_stat[0])
    header = our_stat[0]
    for row in our_stat[1:]:
        assert len(row) == len(header)
        assert all(re.fullmatch(DEFAULT_STAMP, row[index]) for index in range(3)), row[:3]
    ours_last, theirs_last = (
        dict(zip(header, our_stat[-1], strict=True)),
        dict(zip(header, their_stat[-1], strict=True)),
    )
    for column in (
        "TotalCallCreated",
        "SuccessfulCall(C)",
        "OutgoingCall(C)",
        "invites(C)",
        "GenericCounter7(C)",
    ):
        assert ours_last[column] == theirs_last[column] == str(CALLS), column
    assert ours_last["FailedCall(C)"] == theirs_last["FailedCall(C)"] == "0"
    # Current SIPp prints the -r value with three decimals; 3.6.1 prints it bare.
    assert float(theirs_last["TargetRate"]) == 5 and ours_last["TargetRate"] == "5.000"
    assert re.fullmatch(r"\d\d:\d\d:\d\d:\d{3}000", ours_last["ResponseTime1(C)"])
    assert int(ours_last["ResponseTimeRepartition1_<10"]) + int(ours_last["ResponseTimeRepartition1_<20"]) > 0

    their_counts = _rows(_only(theirs, "lab_uac_*_counts.csv"))
    our_counts = _rows(_only(ours, "lab_uac_*_counts.csv"))
    assert our_counts[0] == their_counts[0]
    names = our_counts[0]
    assert dict(zip(names, our_counts[-1], strict=True))["0_INVITE_Sent"] == str(CALLS)
    assert (
        dict(zip(names, our_counts[-1], strict=True))["8_200_Recv"]
        == dict(zip(names, their_counts[-1], strict=True))["8_200_Recv"]
    )
    assert all(len(row) == len(names) for row in our_counts)

    their_rtt, our_rtt = _rows(_only(theirs, "lab_uac_*_rtt.csv")), _rows(_only(ours, "lab_uac_*_rtt.csv"))
    assert our_rtt[0] == their_rtt[0] == ["Date_ms", "response_time_ms", "rtd_no"]
    assert len(our_rtt) == CALLS + 1  # SIPp 3.6.1 loses the samples of its last, unfilled batch
    assert all(len(row) == 3 and row[2] == "1" and float(row[1]) >= 0 for row in our_rtt[1:])

    def shape(path: Path) -> Counter[tuple[str, ...]]:
        lines = path.read_text().splitlines()
        fields = [line.split("\t") for line in lines]
        assert all(len(parts) == 7 and re.fullmatch(DEFAULT_STAMP, "\t".join(parts[:3])) for parts in fields)
        return Counter((parts[3], parts[5], parts[6].split(" ")[0]) for parts in fields)

    their_short = shape(_only(theirs, "lab_uac_*_shortmessages.log"))
    assert shape(_only(ours, "lab_uac_*_shortmessages.log")) == their_short
    assert their_short[("S", "CSeq:1 INVITE", "INVITE")] == CALLS


@needs_sipp
def test_error_codes_and_calldebug_files_match_sipps(tmp_path: Path, sipp_uas: SippUas) -> None:
    (tmp_path / "rejecting.xml").write_text(REJECTING_UAS)
    uas = sipp_uas("-sf", str(tmp_path / "rejecting.xml"), "-i", LOOPBACK, cwd=tmp_path)
    flags = ("-m", "2", "-r", "10", "-trace_error_codes", "-trace_calldebug", "-trace_stat")
    theirs, ours = _both(tmp_path, uas.port, _lab_uac(tmp_path), *flags)
    for directory in (theirs, ours):
        stat = _rows(_only(directory, "lab_uac_*_.csv"))
        last = dict(zip(stat[0], stat[-1], strict=True))
        assert (last["FailedCall(C)"], last["FailedUnexpectedMessage(C)"]) == ("2", "2"), directory.name
    their_codes = _only(theirs, "lab_uac_*_error_codes.csv").read_text().splitlines()
    our_codes = _only(ours, "lab_uac_*_error_codes.csv").read_text().splitlines()
    row = DEFAULT_STAMP + r";\d\d:\d\d:\d\d:\d{6};((480,)*)"
    for lines in (their_codes, our_codes):
        matches = [re.fullmatch(row, line) for line in lines]
        assert all(matches), lines
        assert "".join(match.group(1) for match in matches if match) == "480,480,"
    debug = _only(ours, "lab_uac_*_calldebug.log").read_text()
    their_debug = _only(theirs, "lab_uac_*_calldebug.log").read_text()
    for text in (debug, their_debug):
        assert text.count("-" * 79 + "\nCall debugging information for call ") == 2, text[:500]
    assert "SIP/2.0 480 Temporarily Unavailable" in debug


def _start_uac(processes: Processes, directory: Path, *args: str) -> subprocess.Popen[str]:
    command = gossipper_command(*args, "-nostdin", "-i", LOOPBACK, "-p", str(free_port()))
    return processes.start(command, cwd=directory)


def _wait_for(condition: object, timeout: float = 10.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@needs_sipp
def test_trace_files_are_readable_during_the_run(
    tmp_path: Path, sipp_uas: SippUas, processes: Processes
) -> None:
    """Each entry reaches the file as it happens: a call holding its pause has its INVITE,
    200 and ACK in the message and short-message logs, and the CSV has its first row."""
    uas = sipp_uas("-sn", "uas", "-i", LOOPBACK, cwd=tmp_path)
    flags = ("-trace_msg", "-trace_shortmsg", "-trace_stat", "-trace_counts", "-trace_logs", "-fd", "60")
    uac = _start_uac(processes, tmp_path, "-sn", "uac", uas.address, "-m", "1", "-d", "20000", *flags)

    def acked() -> bool:
        found = list(tmp_path.glob("uac_*_shortmessages.log"))
        return bool(found) and "\tS\t" in found[0].read_text() and "ACK sip:" in found[0].read_text()

    _wait_for(acked)
    assert uac.poll() is None  # still in its 20 s pause
    messages = _only(tmp_path, "uac_*_messages.log").read_text()
    assert "UDP message sent [" in messages and "SIP/2.0 200 OK" in messages
    assert messages.rstrip().endswith("Content-Length: 0")  # the ACK, complete
    stat = _rows(_only(tmp_path, "uac_*_.csv"))
    assert stat[0][0] == "StartTime" and len(stat) == 2  # the row SIPp writes as traffic starts
    counts = _rows(_only(tmp_path, "uac_*_counts.csv"))
    assert counts[0][0] == "CurrentTime" and len(counts) == 2


def _uas_briefly(directory: Path, *args: str) -> None:
    """A UAS that waits for nothing and ends at -timeout: enough to open its trace files."""
    command = gossipper_command("-sn", "uas", "-i", LOOPBACK, "-p", str(free_port()), "-timeout", "1", *args)
    result = subprocess.run([*command, "-nostdin"], capture_output=True, text=True, timeout=30, cwd=directory)
    assert "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize(
    "flag, file_flag, trace",
    [
        ("-message_overwrite", "-message_file", "-trace_msg"),
        ("-shortmessage_overwrite", "-shortmessage_file", "-trace_shortmsg"),
        ("-log_overwrite", "-log_file", "-trace_logs"),
        ("-calldebug_overwrite", "-calldebug_file", "-trace_calldebug"),
    ],
)
def test_files_are_truncated_at_start_unless_overwrite_is_false(
    tmp_path: Path, flag: str, file_flag: str, trace: str
) -> None:
    path = tmp_path / "shared.log"
    path.write_text("earlier run\n")
    _uas_briefly(tmp_path, trace, file_flag, str(path), flag, "false")
    assert path.read_text() == "earlier run\n"
    _uas_briefly(tmp_path, trace, file_flag, str(path))
    assert path.read_text() == ""


@needs_sipp
def test_sipp_truncates_and_appends_the_same_way(tmp_path: Path) -> None:
    assert SIPP is not None
    path = tmp_path / "shared.log"
    for overwrite, expected in (("false", "earlier run\n"), ("true", "")):
        path.write_text("earlier run\n")
        command = [SIPP, "-sn", "uas", "-i", LOOPBACK, "-p", str(free_port()), "-timeout", "1", "-nostdin"]
        command += ["-trace_msg", "-message_file", str(path), "-message_overwrite", overwrite]
        subprocess.run(command, capture_output=True, text=True, timeout=30, cwd=tmp_path, check=False)
        assert path.read_text() == expected


@needs_sipp
def test_ringbuffer_rotates_like_sipps(tmp_path: Path, sipp_uas: SippUas) -> None:
    uas = sipp_uas("-sn", "uas", "-i", LOOPBACK, "-m", "12", cwd=tmp_path)
    flags = ("-m", "6", "-r", "20", "-trace_msg", "-ringbuffer_size", "3000", "-ringbuffer_files", "2")
    theirs, ours = _both(tmp_path, uas.port, _lab_uac(tmp_path), *flags)
    rotated = re.compile(r"lab_uac_\d+_messages_(\d+)(\.\d+)?\.log")
    for directory in (theirs, ours):
        names = sorted(path.name for path in directory.glob("lab_uac_*_messages*.log"))
        kept = [name for name in names if rotated.fullmatch(name)]
        assert len(kept) == 2 and len(names) == 3, names  # two rotated, one current
        for name in kept:
            size = (directory / name).stat().st_size
            assert 3000 < size < 3000 + 1500, (name, size)  # rotated past the size, by one entry


@needs_sipp
def test_max_log_size_stops_the_message_log(tmp_path: Path, sipp_uas: SippUas) -> None:
    uas = sipp_uas("-sn", "uas", "-i", LOOPBACK, "-m", "8", cwd=tmp_path)
    theirs, ours = _both(
        tmp_path, uas.port, _lab_uac(tmp_path), "-m", "4", "-r", "20", "-trace_msg", "-max_log_size", "2000"
    )
    for directory in (theirs, ours):
        size = _only(directory, "lab_uac_*_messages.log").stat().st_size
        assert 2000 < size < 2000 + 1500, (directory.name, size)


def test_ringbuffer_and_max_log_size_are_refused_together(tmp_path: Path) -> None:
    result = subprocess.run(
        [*gossipper_command("-sn", "uas", "-ringbuffer_size", "10", "-max_log_size", "10"), "-nostdin"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 1  # a flag error, found before the scenario is in place
    assert result.stderr.strip().splitlines() == [
        "gossipper: -ringbuffer_size and -max_log_size: choose one (SIPp refuses both)"
    ]


@needs_sipp
def test_retransmissions_running_out_is_failed_max_udp_retrans(tmp_path: Path) -> None:
    """Nobody answers: SIPp counts the call in FailedMaxUDPRetrans, not FailedTimeoutOnRecv."""
    silent = f"{LOOPBACK}:{free_port()}"
    for program in ("sipp", "gossipper"):
        directory = tmp_path / program
        directory.mkdir()
        result = _run(program, directory, "-sn", "uac", silent, "-m", "1", "-max_retrans", "1", "-trace_stat")
        assert result.returncode == 1, (program, result.stderr[-2000:])
        stat = _rows(_only(directory, "uac_*_.csv"))
        last = dict(zip(stat[0], stat[-1], strict=True))
        failures = (last["FailedCall(C)"], last["FailedMaxUDPRetrans(C)"], last["FailedTimeoutOnRecv(C)"])
        assert failures == ("1", "1", "0"), program


@needs_sipp
def test_stat_delimiter_periodic_rtd_and_rfc3339(tmp_path: Path, sipp_uas: SippUas) -> None:
    """-stat_delimiter and -periodic_rtd as SIPp 3.6.1 has them; -rfc3339 (current SIPp only)
    turns every date of the CSV and the short-message log into one RFC 3339 stamp."""
    uas = sipp_uas("-sn", "uas", "-i", LOOPBACK, "-m", "10", cwd=tmp_path)
    scenario = _lab_uac(tmp_path)
    # One call at a time, each holding 2 s (-d) after its 200: the two response times are 2 s
    # apart, so a 1 s row falls between them even when a loaded machine delays a start.
    flags = ("-m", "2", "-l", "1", "-d", "2000", "-fd", "1", "-trace_stat", "-stat_delimiter", "|")
    flags += ("-periodic_rtd",)
    theirs, ours = _both(tmp_path, uas.port, scenario, *flags)
    their_lines = _only(theirs, "lab_uac_*_.csv").read_text().splitlines()
    our_lines = _only(ours, "lab_uac_*_.csv").read_text().splitlines()
    assert our_lines[0] == their_lines[0] and our_lines[0].startswith("StartTime|LastResetTime|")

    def samples_per_row(lines: list[str]) -> list[int]:
        header = lines[0].split("|")
        buckets = [index for index, name in enumerate(header) if name.startswith("ResponseTimeRepartition1_")]
        return [sum(int(line.split("|")[index]) for index in buckets) for line in lines[1:]]

    # Each row counts only its own period's samples, so over the rows they add up to the calls.
    for lines in (their_lines, our_lines):
        per_row = samples_per_row(lines)
        assert sum(per_row) == 2 and max(per_row) == 1, per_row
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)"
    rfc = tmp_path / "rfc3339"
    rfc.mkdir()
    result = _run(
        "gossipper",
        rfc,
        "-sf",
        str(scenario),
        uas.address,
        "-m",
        "2",
        "-trace_stat",
        "-trace_shortmsg",
        "-rfc3339",
    )
    assert result.returncode == 0, result.stderr
    row = _rows(_only(rfc, "lab_uac_*_.csv"))[-1]
    assert all(re.fullmatch(stamp, field) for field in row[:3]), row[:3]
    for line in _only(rfc, "lab_uac_*_shortmessages.log").read_text().splitlines():
        assert re.fullmatch(stamp, line.split("\t")[0]), line


@needs_sipp
def test_a_uas_stat_csv_header_is_sipps(tmp_path: Path, sipp_uas: SippUas, processes: Processes) -> None:
    headers = []
    for program in ("sipp", "gossipper"):
        directory = tmp_path / program
        directory.mkdir()
        port = free_port()
        if program == "sipp":
            sipp_uas("-sn", "uas", "-i", LOOPBACK, "-m", "1", "-trace_stat", port=port, cwd=directory)
        else:
            command = gossipper_command(
                "-sn", "uas", "-i", LOOPBACK, "-p", str(port), "-m", "1", "-trace_stat"
            )
            server = processes.start([*command, "-nostdin"], cwd=directory)
            wait_bound(port, process=server)
        result = _run("sipp", tmp_path, "-sn", "uac", f"{LOOPBACK}:{port}", "-m", "1")
        assert result.returncode == 0, result.stderr[-2000:]
        headers.append(_rows(_only(directory, "uas_*_.csv"))[0])  # written as the UAS started
    assert headers[1] == headers[0]
