"""Bad XML and bad flags end the process with one line and exit 1, before any packet.

SIPp's status for these too (tests/e2e/test_sipp_fidelity_load.py runs both).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from gossipper.cli.ports import LOOPBACK
from tests.e2e.processes import run_gossipper

BAD_XML = {
    "unknown_element": ("<scenario>\n  <sned/>\n</scenario>", ":2: unknown element <sned>"),
    "missing_attribute": ("<scenario>\n\n  <recv/>\n</scenario>", ":3: <recv> needs exactly one of"),
    "bad_keyword": (
        "<scenario>\n<send><![CDATA[\nINVITE sip:[nope]@x SIP/2.0\n\n]]></send>\n</scenario>",
        ":2: <send>: unknown keyword [nope]",
    ),
    "not_xml": ("<scenario>\n<send>", ":2: XML error"),
}


@pytest.fixture
def listener() -> socket.socket:
    """A UDP socket standing where the peer would be: nothing may reach it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOPBACK, 0))
    sock.settimeout(0.3)
    yield sock
    sock.close()


def _nothing_received(sock: socket.socket) -> bool:
    try:
        sock.recv(65535)
    except TimeoutError:
        return True
    return False


@pytest.mark.parametrize("case", sorted(BAD_XML))
def test_bad_scenario_file(case: str, tmp_path: Path, listener: socket.socket) -> None:
    xml, expected = BAD_XML[case]
    path = tmp_path / f"{case}.xml"
    path.write_text(xml)
    port = listener.getsockname()[1]
    result = run_gossipper("-sf", str(path), f"{LOOPBACK}:{port}", "-m", "1", timeout=30)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) + expected in lines[0]
    assert "Traceback" not in result.stderr
    assert _nothing_received(listener)


def test_unreadable_scenario_file(tmp_path: Path, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    result = run_gossipper("-sf", str(tmp_path / "absent.xml"), f"{LOOPBACK}:{port}", timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "-sf: cannot read scenario" in result.stderr
    assert _nothing_received(listener)


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["-r", "fast"], "-r"),
        (["-t", "x9"], "-t"),
        (["-sn", "nope"], "-sn"),
        (["-bogus"], "-bogus"),
        (["-rtp_codec", "GSM/8000", "-rtp_send", "-rtp_addr", "127.0.0.1:9"], "-rtp_codec"),
    ],
)
def test_bad_flags(args: list[str], names: str, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    result = run_gossipper(*args, f"{LOOPBACK}:{port}", timeout=30)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert names in result.stderr
    assert _nothing_received(listener)


def test_sip_port_in_use_names_the_flag_and_exits_254(listener: socket.socket) -> None:
    """The transport layer only knows a port failed to bind; the run says it was -p's."""
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind((LOOPBACK, 0))
    try:
        port = listener.getsockname()[1]
        result = run_gossipper(
            "-sn", "uac", f"{LOOPBACK}:{port}", "-p", str(taken.getsockname()[1]), "-m", "1", timeout=30
        )
    finally:
        taken.close()
    assert result.returncode == 254, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "-p: cannot bind UDP 0.0.0.0:" in result.stderr
    assert _nothing_received(listener)
