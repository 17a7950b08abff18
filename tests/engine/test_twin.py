"""The 3PCC twin's wire and configuration: SIPp's command text, -slave_cfg, the flag mix."""

from __future__ import annotations

from pathlib import Path

import pytest

from gossipper.cli.compile import run_settings
from gossipper.cli.errors import UsageError, describe
from gossipper.cli.options import parse_args
from gossipper.engine.twin import abort_command, parse_command, read_peers
from gossipper.errors import FileProblem


def test_a_command_as_sipp_sends_it() -> None:
    """SIPp's sendCmd text: CRLF lines, the call's SDP after a blank line (the ESC is framing)."""
    command = parse_command(b"Call-ID: 7-1@h\r\nFrom: m\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n")
    assert command.call_id == "7-1@h" and command.header("From") == "m"
    assert command.body == b"v=0\r\n"
    assert (
        parse_command(b"call-id: 7-1@h\ninternal-cmd: abort_call\n\n").header("internal-cmd") == "abort_call"
    )
    ours = parse_command(abort_command("7-1@h"))
    assert (ours.call_id, ours.header("internal-cmd")) == ("7-1@h", "abort_call")


def test_slave_cfg_lines(tmp_path: Path) -> None:
    path = tmp_path / "peers"
    path.write_text("s1;127.0.0.1:8080\n\nm;[::1]:6080\njunk\n")
    assert read_peers(str(path)) == {"s1": ("127.0.0.1", 8080), "m": ("::1", 6080)}
    path.write_text("s1;127.0.0.1:8080\ns2;nowhere\n")
    with pytest.raises(FileProblem, match=r"peers:2: expected name;host:port"):
        read_peers(str(path))
    with pytest.raises(FileProblem) as caught:
        read_peers(str(tmp_path / "missing"))
    assert describe(caught.value).startswith("-slave_cfg: ")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["-master", "m"], "-slave_cfg: must be used with -master or -slave"),
        (["-slave_cfg", "f"], "-slave_cfg: must be used with -master or -slave"),
        (["-master", "m", "-slave", "s", "-slave_cfg", "f"], "-master and -slave"),
        (["-3pcc", "127.0.0.1:5000", "-slave", "s", "-slave_cfg", "f"], "-3pcc: cannot be combined"),
    ],
)
def test_flag_mixes_sipp_refuses(flags: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        run_settings(parse_args(["-sn", "3pcc-C-A", "127.0.0.1", *flags]))


def test_extended_settings() -> None:
    twin = run_settings(
        parse_args(["-sn", "3pcc-C-A", "127.0.0.1", "-master", "m", "-slave_cfg", "f"])
    ).transport.twin
    assert (twin.name, twin.master, twin.peers_file, twin.address) == ("m", True, "f", None)
