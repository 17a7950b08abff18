"""Calls and run endings as SIPp has them, against the real SIPp: Call-ID prefixes ('///'),
[next_url] without a route set, response codes by regexp, messages without To, the hard
stop's CANCEL/BYE (Q, -timeout), stop_call, stop_now and the exit status of an idle run.

Where SIPp checks what gossipper sent, it does so itself: its scenarios below match the
CANCEL or BYE they expect and test the BYE's Request-URI and Route with ereg check_it, so
its own counters (and exit status) say whether gossipper's messages were right. Where a
scenario can run under both, it does, and both must end alike.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from gossipper.cli.ports import LOOPBACK, free_port
from tests.e2e.processes import (
    SIPP,
    GossipperUas,
    SippUac,
    SippUas,
    gossipper_command,
    last_sipp_stat_row,
    needs_sipp,
    read_json,
    run_gossipper,
)

COMMON = ("-i", LOOPBACK)

_INVITE = """
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: [service] <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: CALL_ID
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>"""

_IN_DIALOG = """
  <send{attributes}>
    <![CDATA[
      {method} {uri} SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: [service] <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: CALL_ID
      CSeq: {cseq} {method}
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>"""

_ANSWER = """
  <send>
    <![CDATA[
      SIP/2.0 {code} {reason}
      [last_Via:]
      [last_From:]
      [last_To:]{tag}
      [last_Call-ID:]
      [last_CSeq:]
{extra}      Content-Length: 0
    ]]>
  </send>"""


def _answer(code: int, reason: str, *, tag: bool = True, extra: str = "") -> str:
    return _ANSWER.format(
        code=code, reason=reason, tag=";tag=[pid]SIPpTag01[call_number]" if tag else "", extra=extra
    )


def _in_dialog(method: str, uri: str, cseq: int, attributes: str = "") -> str:
    return _IN_DIALOG.format(method=method, uri=uri, cseq=cseq, attributes=attributes)


def _write(tmp_path: Path, name: str, body: str, call_id: str = "[call_id]") -> Path:
    path = tmp_path / name
    path.write_text(
        '<?xml version="1.0" encoding="ISO-8859-1" ?>\n'
        f'<scenario name="{name}">{body.replace("CALL_ID", call_id)}\n</scenario>\n'
    )
    return path


def _uac(*steps: str) -> str:
    """A client call: our INVITE, then the steps given."""
    return _INVITE + "".join(steps)


def _sipp_run(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    assert SIPP is not None
    return subprocess.run([SIPP, *args, "-nostdin"], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def _stat(path: Path, column: str) -> int:
    return int(last_sipp_stat_row(path)[f"{column}(C)"])


def _sipp_checking_uas(
    tmp_path: Path, sipp_uas: SippUas, calls: int, body: str, name: str = "uas.xml"
) -> tuple[int, Path, subprocess.Popen[str]]:
    """A SIPp UAS running `body` for `calls` calls: its port, its -trace_stat file, its process."""
    stat = tmp_path / f"{name}.csv"
    server = sipp_uas(
        "-sf", str(_write(tmp_path, name, body)), "-i", LOOPBACK, "-m", str(calls),
        "-trace_stat", "-stf", str(stat), "-fd", "1", cwd=tmp_path,
    )  # fmt: skip
    return server.port, stat, server.process


# A UAS that answers 200 (Record-Route and Contact when asked) and checks the BYE it gets.
def _bye_checking_uas(bye_line: str, route: str | None) -> str:
    extra = ""
    checks = f'<ereg regexp="{bye_line}" search_in="msg" check_it="true" assign_to="line"/>'
    used = "[$line]"
    if route is not None:
        extra = (
            "      Record-Route: <sip:[local_ip]:[local_port];lr;edge=proxy>\n"
            "      Contact: <sip:target@[local_ip]:[local_port];transport=udp>\n"
        )
        checks += f'<ereg regexp="{route}" search_in="hdr" header="Route:" check_it="true" assign_to="r"/>'
        used += " [$r]"
    else:
        extra = "      Contact: <sip:[local_ip]:[local_port];transport=[transport]>\n"
    return (
        '\n  <recv request="INVITE"/>'
        + _answer(200, "OK", extra=extra)
        + '\n  <recv request="ACK"/>'
        + f'\n  <recv request="BYE"><action>{checks}<log message="BYE {used}"/></action></recv>'
        + _answer(200, "OK", tag=False)
    )


# ---------------------------------------------------------------------- 1. Call-ID prefixes
@needs_sipp
def test_a_call_id_prefixed_with_triple_slash_names_the_call_as_under_sipp(
    tmp_path: Path, sipp_uas: SippUas
) -> None:
    """SIPp's get_trimmed_call_id: responses to 'Call-ID: edge-42///[call_id]' reach the call
    [call_id]; -callid_slash_ign turns that off, and then the call never hears its 200."""
    calls = 3
    server = sipp_uas("-sn", "uas", "-i", LOOPBACK, cwd=tmp_path)
    scenario = _write(
        tmp_path,
        "prefixed.xml",
        _uac('\n  <recv response="180" optional="true"/>', '\n  <recv response="200"/>',
             _in_dialog("ACK", "sip:[service]@[remote_ip]:[remote_port]", 1),
             _in_dialog("BYE", "sip:[service]@[remote_ip]:[remote_port]", 2, ' retrans="500"'),
             '\n  <recv response="200"/>'),
        call_id="edge-42///[call_id]",
    )  # fmt: skip
    remote = server.address
    summary = tmp_path / "g.json"
    ours = run_gossipper(
        "-sf", str(scenario), remote, "-m", str(calls), "-r", "20", *COMMON, "-summary_json", str(summary)
    )
    assert ours.returncode == 0, ours.stderr
    assert read_json(summary)["success_calls"] == calls
    theirs = _sipp_run("-sf", str(scenario), remote, "-i", LOOPBACK, "-p", str(free_port()),
                       "-m", str(calls), "-r", "20", cwd=tmp_path)  # fmt: skip
    assert theirs.returncode == 0, theirs.stderr

    # Without trimming, neither hears its 200 (a recv timeout ends each call failed).
    ignoring = ("-callid_slash_ign", "-recv_timeout", "1000", "-m", "1")
    ours = run_gossipper("-sf", str(scenario), remote, *ignoring, *COMMON, "-summary_json", str(summary))
    assert ours.returncode == 1, ours.stderr
    assert read_json(summary)["failure_classes"]["timeout"] == 1  # type: ignore[index]
    theirs = _sipp_run("-sf", str(scenario), remote, "-i", LOOPBACK, "-p", str(free_port()),
                       *ignoring, cwd=tmp_path)  # fmt: skip
    assert theirs.returncode == 1, theirs.stderr


# ---------------------------------------------------------------------- 2. [next_url], [last_Request_URI]
@needs_sipp
def test_next_url_without_a_route_set_is_the_to_uri_as_under_sipp(tmp_path: Path, sipp_uas: SippUas) -> None:
    """No rrs: [next_url] and [last_Request_URI] are the URI in the last To header's <>, which
    SIPp checks on the BYE (the same scenario under SIPp passes the same check)."""
    bye_line = r"^BYE sip:service@127\.0\.0\.1:[0-9]+ SIP/2\.0"
    port, stat, uas = _sipp_checking_uas(tmp_path, sipp_uas, 2, _bye_checking_uas(bye_line, None))
    scenario = _write(
        tmp_path,
        "next_url.xml",
        _uac('\n  <recv response="200"/>', _in_dialog("ACK", "[next_url]", 1),
             _in_dialog("BYE", "[last_Request_URI]", 2, ' retrans="500"'), '\n  <recv response="200"/>'),
    )  # fmt: skip
    remote = f"{LOOPBACK}:{port}"
    ours = run_gossipper("-sf", str(scenario), remote, "-m", "1", *COMMON)
    assert ours.returncode == 0, ours.stderr
    theirs = _sipp_run("-sf", str(scenario), remote, "-i", LOOPBACK, "-p", str(free_port()), "-m", "1",
                       cwd=tmp_path)  # fmt: skip
    assert theirs.returncode == 0, theirs.stderr
    assert uas.wait(timeout=30) == 0
    assert (_stat(stat, "SuccessfulCall"), _stat(stat, "FailedRegexpDoesntMatch")) == (2, 0)


# ---------------------------------------------------------------------- 3. the hard stop
@needs_sipp
def test_a_timeout_byes_each_answered_call_along_its_route_set(tmp_path: Path, sipp_uas: SippUas) -> None:
    """Current SIPp's -timeout aborts the live calls (abort_all_tasks -> call::abort): they fail,
    exit 1, and each answered dialog gets its BYE, sent to the Contact with the Route set.
    (SIPp 3.6.1's -timeout only stopped new calls and let the live ones finish.)"""
    calls = 2
    bye_line = r"^BYE sip:target@127\.0\.0\.1:[0-9]+;transport=udp SIP/2\.0"
    port, stat, uas = _sipp_checking_uas(tmp_path, sipp_uas, calls, _bye_checking_uas(bye_line, "edge=proxy"))
    scenario = _write(
        tmp_path,
        "held.xml",
        _uac('\n  <recv response="200" rrs="true"/>', _in_dialog("ACK", "[next_url]", 1),
             '\n  <pause milliseconds="60000"/>'),
    )  # fmt: skip
    summary = tmp_path / "g.json"
    ours = run_gossipper(
        "-sf", str(scenario), f"{LOOPBACK}:{port}", "-m", str(calls), "-r", "20", "-timeout", "2",
        *COMMON, "-summary_json", str(summary),
    )  # fmt: skip
    assert ours.returncode == 1, ours.stderr
    data = read_json(summary)
    assert (data["failed_calls"], data["failure_classes"]["cancelled"]) == (calls, calls)  # type: ignore[index]
    assert uas.wait(timeout=30) == 0  # SIPp got a BYE for each dialog, and it passed its checks
    assert (_stat(stat, "SuccessfulCall"), _stat(stat, "FailedRegexpDoesntMatch")) == (calls, 0)


@needs_sipp
def test_q_on_the_control_socket_cancels_every_ringing_call(tmp_path: Path, sipp_uas: SippUas) -> None:
    """Q: SIPp's abortCall CANCELs an INVITE that only got a provisional answer."""
    calls = 3
    ringing = '\n  <recv request="INVITE"/>' + _answer(180, "Ringing") + '\n  <recv request="CANCEL"/>'
    port, stat, uas = _sipp_checking_uas(tmp_path, sipp_uas, calls, ringing + _answer(200, "OK", tag=False))
    control = free_port()
    summary = tmp_path / "g.json"
    with subprocess.Popen(
        [*_gossipper("-sn", "uac", f"{LOOPBACK}:{port}", "-m", str(calls), "-r", "20", "-cp", str(control),
                     *COMMON, "-summary_json", str(summary))],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    ) as ours:  # fmt: skip
        _wait_for_sipp_calls(stat, calls, ours)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as keys:
            keys.sendto(b"Q", (LOOPBACK, control))
        assert ours.wait(timeout=20) == 1
    assert read_json(summary)["failure_classes"]["cancelled"] == calls  # type: ignore[index]
    assert uas.wait(timeout=30) == 0  # every INVITE was CANCELled
    assert _stat(stat, "SuccessfulCall") == calls


def _gossipper(*args: str) -> list[str]:
    return [*gossipper_command(*args), "-nostdin"]


def _wait_for_sipp_calls(stat: Path, calls: int, process: subprocess.Popen[str]) -> None:
    """Until SIPp's -trace_stat counts `calls` incoming calls (each has sent its 180)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        if stat.exists() and _stat(stat, "IncomingCall") >= calls:
            time.sleep(0.3)
            return
        time.sleep(0.2)
    raise AssertionError(f"SIPp never counted {calls} calls in {stat}")


# ---------------------------------------------------------------------- 4. stop_call, stop_now
_ANSWERED = ('\n  <recv response="180" optional="true"/>', '\n  <recv response="200"/>')


def _stopping(where: str, command: str) -> str:
    stop = f'<action><exec int_cmd="{command}"/></action>'
    if where == "recv":
        return _uac(_ANSWERED[0], f'\n  <recv response="200">{stop}</recv>',
                    _in_dialog("ACK", "sip:[service]@[remote_ip]:[remote_port]", 1))  # fmt: skip
    return _uac(*_ANSWERED, _in_dialog("ACK", "sip:[service]@[remote_ip]:[remote_port]", 1),
                f"\n  <nop>{stop}</nop>", '\n  <pause milliseconds="30000"/>')  # fmt: skip


@needs_sipp
def test_stop_call_and_stop_now_end_as_under_sipp(tmp_path: Path, sipp_uas: SippUas) -> None:
    """stop_call on a recv: rejectCall, the call fails and nothing more is sent (exit 1).
    stop_now: sipp_exit(97) at once; SIPp sends no BYE, gossipper ends the answered dialog
    with one (issue #12: a hard stop leaves the peer no open dialog). Each run under both."""
    server = sipp_uas("-sn", "uas", "-i", LOOPBACK, cwd=tmp_path)
    for where, command, status, sent in (("recv", "stop_call", 1, "INVITE"), ("nop", "stop_now", 97, "ACK")):
        scenario = _write(tmp_path, f"{command}.xml", _stopping(where, command))
        ours_trace, theirs_trace = tmp_path / f"g_{command}.log", tmp_path / f"s_{command}.log"
        ours = run_gossipper("-sf", str(scenario), server.address, "-m", "1", *COMMON,
                             "-trace_msg", "-message_file", str(ours_trace), timeout=30)  # fmt: skip
        theirs = _sipp_run("-sf", str(scenario), server.address, "-i", LOOPBACK, "-p", str(free_port()),
                           "-m", "1", "-trace_msg", "-message_file", str(theirs_trace),
                           cwd=tmp_path)  # fmt: skip
        assert (ours.returncode, theirs.returncode) == (status, status), (ours.stderr, theirs.stderr)
        theirs_sent = _sent_requests(theirs_trace.read_text())
        assert theirs_sent[-1] == sent and "BYE" not in theirs_sent, theirs_sent
        ours_sent = _sent_requests(ours_trace.read_text())
        assert ours_sent == theirs_sent + (["BYE"] if command == "stop_now" else []), ours_sent


@needs_sipp
def test_an_error_action_ends_the_run_with_255_as_under_sipp(tmp_path: Path, sipp_uas: SippUas) -> None:
    """call.cpp E_AT_LOG_ERROR: ERROR() ends the whole run at once, exit -1 (255); the message
    is the run's one line. Both programs run the same scenario against the same UAS."""
    server = sipp_uas("-sn", "uas", "-i", LOOPBACK, cwd=tmp_path)
    error = '\n  <nop><action><error message="no route for [call_id]"/></action></nop>'
    ack = _in_dialog("ACK", "sip:[service]@[remote_ip]:[remote_port]", 1)
    body = _uac(*_ANSWERED, ack, error, '\n  <pause milliseconds="30000"/>')
    scenario = _write(tmp_path, "error.xml", body)
    summary = tmp_path / "error.json"
    ours = run_gossipper(
        "-sf", str(scenario), server.address, "-m", "1", *COMMON, "-summary_json", str(summary), timeout=30
    )
    port = str(free_port())
    theirs = _sipp_run(
        "-sf", str(scenario), server.address, "-i", LOOPBACK, "-p", port, "-m", "1", cwd=tmp_path
    )
    assert (ours.returncode, theirs.returncode) == (255, 255), (ours.stderr, theirs.stderr)
    assert ours.stderr.strip().splitlines() == [ours.stderr.strip()]
    assert "<error> action: no route for " in ours.stderr and "Traceback" not in ours.stderr
    assert read_json(summary)["total_calls"] == 1  # the summary is still written


def _sent_requests(trace: str) -> list[str]:
    """The methods of the requests a -trace_msg file shows (SIPp's and ours both put each
    message's first line at the start of a line)."""
    methods = ("INVITE", "ACK", "BYE", "CANCEL")
    return [line.split(" ", 1)[0] for line in trace.splitlines() if line.split(" ", 1)[0] in methods]


# ---------------------------------------------------------------------- 5. recv response regexp, no To
@needs_sipp
def test_a_response_regexp_takes_the_ringing_of_sipps_uas(tmp_path: Path, sipp_uas: SippUas) -> None:
    """<recv response="^18.$" regexp_match="true">: SIPp's 180 is taken by it (else it would be
    unexpected and fail the call). Debian's SIPp 3.6.1 cannot load it; current SIPp can."""
    server = sipp_uas("-sn", "uas", "-i", LOOPBACK, "-m", "2", cwd=tmp_path)
    scenario = _write(
        tmp_path,
        "regexp.xml",
        _uac('\n  <recv response="^18.$" regexp_match="true" optional="true"/>', '\n  <recv response="200"/>',
             _in_dialog("ACK", "[next_url]", 1), _in_dialog("BYE", "[next_url]", 2, ' retrans="500"'),
             '\n  <recv response="200"/>'),
    )  # fmt: skip
    summary = tmp_path / "g.json"
    ours = run_gossipper(
        "-sf", str(scenario), server.address, "-m", "2", *COMMON, "-summary_json", str(summary)
    )
    assert ours.returncode == 0, ours.stderr
    data = read_json(summary)
    assert (data["success_calls"], data["unexpected_messages"]) == (2, 0)
    assert server.wait(timeout=30) == 0


@needs_sipp
def test_a_response_without_to_fails_the_call_as_under_sipp(tmp_path: Path, sipp_uas: SippUas) -> None:
    """call.cpp process_incoming: a message without To is unexpected; with abortunexp the
    call fails. SIPp's own uac against the same UAS fails alike."""
    without_to = _answer(200, "OK").replace("      [last_To:];tag=[pid]SIPpTag01[call_number]\n", "")
    server = sipp_uas("-sf", str(_write(tmp_path, "no_to.xml", '\n  <recv request="INVITE"/>' + without_to)),
                      "-i", LOOPBACK, cwd=tmp_path)  # fmt: skip
    summary = tmp_path / "g.json"
    ours = run_gossipper("-sn", "uac", server.address, "-m", "1", *COMMON, "-summary_json", str(summary))
    assert ours.returncode == 1, ours.stderr
    data = read_json(summary)
    assert (data["failed_calls"], data["unexpected_messages"]) == (1, 1)
    assert data["failure_classes"]["unexpected_sip"] == 1  # type: ignore[index]
    theirs = _sipp_run("-sn", "uac", server.address, "-i", LOOPBACK, "-p", str(free_port()), "-m", "1",
                       cwd=tmp_path)  # fmt: skip
    assert theirs.returncode == 1, theirs.stderr


# ---------------------------------------------------------------------- 6. an idle run's exit status
@needs_sipp
def test_a_graceful_stop_with_no_call_exits_0_as_sipp_does(
    tmp_path: Path, gossipper_uas: GossipperUas, sipp_uas: SippUas
) -> None:
    """sipp_exit: no failed call is 0, even with no call at all (SIPp's documented 99 is never
    returned for it); only -timeout with nothing succeeded is 97."""
    ours = gossipper_uas("-sn", "uas", *COMMON)
    theirs = sipp_uas("-sn", "uas", "-i", LOOPBACK, cwd=tmp_path)
    time.sleep(1)
    for server in (ours, theirs):
        server.process.send_signal(signal.SIGUSR1)
    assert (ours.wait(timeout=20), theirs.wait(timeout=20)) == (0, 0)


@needs_sipp
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_signal_with_a_call_running_exits_from_the_counters_as_sipp_does(
    tmp_path: Path, gossipper_uas: GossipperUas, sipp_uas: SippUas, sipp_uac: SippUac, signum: int
) -> None:
    """sipp_sighandler -> sipp_exit: INT and TERM end the run at once, the live call neither
    tidied nor counted, so no failed call means 0 (a hard stop would have failed it: 1)."""
    servers = (gossipper_uas("-sn", "uas", *COMMON), sipp_uas("-sn", "uas", "-i", LOOPBACK, cwd=tmp_path))
    for server in servers:
        sipp_uac("-sn", "uac", server.address, "-i", LOOPBACK, "-p", str(free_port()), "-m", "1",
                 "-d", "20000", cwd=tmp_path)  # fmt: skip
    time.sleep(1.5)  # each UAS holds an answered call, paused for 20 s
    for server in servers:
        server.process.send_signal(signum)
    assert [server.wait(timeout=20) for server in servers] == [0, 0]
