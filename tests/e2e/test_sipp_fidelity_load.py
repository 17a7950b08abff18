"""Bad command lines and scenarios end gossipper with the exit status SIPp ends with.

Each case runs Debian's SIPp and gossipper with the same arguments and files: SIPp exits 1
for what it finds while reading its flags and loading its scenario (sipp_exit before a
scenario is in place, sipp.cpp) and -1 (255) for what it finds after, such as a scenario
with no message to tell client from server (scenario.cpp computeSippMode). Neither may
send a packet to the peer address given.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gossipper.cli.ports import LOOPBACK
from tests.e2e.processes import SIPP, needs_sipp, run_gossipper

# Debian's SIPp 3.6.1 parses only documents with an XML declaration; current SIPp does
# not need one, and neither does gossipper. Every file here has it, so both read the same.
HEAD = '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="t">\n'
OPTIONS = (
    "<send><![CDATA[\nOPTIONS sip:x@[remote_ip]:[remote_port] SIP/2.0\nCall-ID: [call_id]\n\n]]></send>\n"
)

# name -> (scenario file text or None for no -sf, extra arguments, SIPp's exit status)
CASES: dict[str, tuple[str | None, list[str], int]] = {
    "unknown_flag": (None, ["-bogus"], 1),
    "missing_file": ("", ["-sf", "{tmp}/absent.xml"], 1),
    "bad_xml": ("<scenario>\n<send>", [], 1),
    "unknown_element": (HEAD + "<sned/>\n</scenario>\n", [], 1),
    "send_without_cdata": (HEAD + "<send>OPTIONS sip:x@127.0.0.1 SIP/2.0\n</send>\n</scenario>\n", [], 1),
    "variable_used_once": (
        HEAD + OPTIONS.replace("sip:x@", "sip:[$who]@") + "</scenario>\n",
        [],
        1,
    ),
    "test_variable_names_a_variable": (
        HEAD
        + '<recv request="INVITE"/>\n<nop><action>'
        + '<test assign_to="r" variable="1" compare="equal" value="1"/></action></nop>\n</scenario>\n',
        [],
        1,
    ),
    "set_of_an_undeclared_global": (HEAD + OPTIONS + "</scenario>\n", ["-set", "foo", "1"], 1),
    "field_without_inf": (HEAD + OPTIONS.replace("sip:x@", "sip:[field0]@") + "</scenario>\n", [], 1),
    "only_a_nop": (HEAD + "<nop/>\n</scenario>\n", [], 255),
    "only_pauses_and_nops": (HEAD + '<pause milliseconds="10"/>\n<nop/>\n</scenario>\n', [], 255),
}


@pytest.fixture
def peer() -> Iterator[socket.socket]:
    """Where the peer would be: nothing may reach it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOPBACK, 0))
    sock.settimeout(0.2)
    yield sock
    sock.close()


def _arguments(case: str, tmp_path: Path, peer: socket.socket) -> list[str]:
    text, extra, _status = CASES[case]
    arguments = [word.format(tmp=tmp_path) for word in extra]
    if text:
        path = tmp_path / f"{case}.xml"
        path.write_text(text)
        arguments = ["-sf", str(path), *arguments]
    return [*arguments, f"{LOOPBACK}:{peer.getsockname()[1]}", "-m", "1"]


def _silent(sock: socket.socket) -> bool:
    try:
        sock.recv(65535)
    except TimeoutError:
        return True
    return False


@needs_sipp
@pytest.mark.parametrize("case", sorted(CASES))
def test_exit_status_is_sipps(case: str, tmp_path: Path, peer: socket.socket) -> None:
    arguments = _arguments(case, tmp_path, peer)
    assert SIPP is not None
    sipp = subprocess.run(
        [SIPP, *arguments, "-nostdin"], capture_output=True, text=True, timeout=30, cwd=tmp_path
    )
    assert sipp.returncode == CASES[case][2], sipp.stderr[-500:]
    ours = run_gossipper(*arguments, timeout=30)
    assert ours.returncode == sipp.returncode, ours.stderr
    lines = ours.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in ours.stderr, ours.stderr
    assert _silent(peer)


def test_the_one_line_names_what_sipp_names(tmp_path: Path, peer: socket.socket) -> None:
    """The line says what SIPp's ERROR says, with the file and line where there is one."""
    expected = {
        "variable_used_once": ":3: <send> [$who]: variable $who is used only once",
        "test_variable_names_a_variable": ":4: <test> variable=: variable $1 is used only once",
        "send_without_cdata": ":3: <send> has no message (CDATA)",
        "only_a_nop": "unable to determine creation mode (server, client)",
        "set_of_an_undeclared_global": "-set foo: the scenario declares no <Global",
    }
    for case, text in expected.items():
        result = run_gossipper(*_arguments(case, tmp_path, peer), timeout=30)
        assert text in result.stderr, (case, result.stderr)


@needs_sipp
def test_a_client_scenario_without_remote_host_exits_255_as_sipp(tmp_path: Path) -> None:
    """Found once the scenario is in place (it is a client's), so SIPp's fatal -1."""
    assert SIPP is not None
    arguments = ["-sn", "uac", "-m", "1"]
    sipp = subprocess.run(
        [SIPP, *arguments, "-nostdin"], capture_output=True, text=True, timeout=30, cwd=tmp_path
    )
    ours = run_gossipper(*arguments, timeout=30)
    assert sipp.returncode == ours.returncode == 255, (sipp.returncode, ours.stderr)
    assert len(ours.stderr.strip().splitlines()) == 1, ours.stderr


@needs_sipp
def test_set_fills_a_declared_global_as_sipp_does(tmp_path: Path, peer: socket.socket) -> None:
    """-set NAME VALUE fills <Global variables="NAME">, read back here by [$NAME] in the request line."""
    path = tmp_path / "global.xml"
    path.write_text(
        HEAD + '<Global variables="who"/>\n' + OPTIONS.replace("sip:x@", "sip:[$who]@") + "</scenario>\n"
    )
    arguments = ["-sf", str(path), f"{LOOPBACK}:{peer.getsockname()[1]}", "-m", "1", "-set", "who", "alice"]
    assert SIPP is not None
    sipp = subprocess.run(
        [SIPP, *arguments, "-nostdin"], capture_output=True, text=True, timeout=30, cwd=tmp_path
    )
    from_sipp = peer.recv(65535)
    ours = run_gossipper(*arguments, timeout=30)
    from_us = peer.recv(65535)
    assert sipp.returncode == ours.returncode == 0, ours.stderr
    assert (
        from_sipp.split(b"\r\n", 1)[0]
        == from_us.split(b"\r\n", 1)[0]
        == b"OPTIONS sip:alice@%s:%d SIP/2.0"
        % (
            LOOPBACK.encode(),
            peer.getsockname()[1],
        )
    )


@needs_sipp
def test_dumping_a_builtin_exits_99_as_sipp() -> None:
    """sipp.cpp: -sd prints the scenario and exits EXIT_OTHER (99)."""
    assert SIPP is not None
    sipp = subprocess.run([SIPP, "-sd", "uac"], capture_output=True, text=True, timeout=30)
    ours = run_gossipper("-sd", "uac", timeout=30)
    assert (ours.returncode, sipp.returncode) == (99, 99), ours.stderr
    assert ours.stdout.lstrip().startswith("<?xml") and "</scenario>" in ours.stdout
