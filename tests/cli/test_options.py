import pytest

from gossipper.cli.errors import UsageError
from gossipper.cli.main import main
from gossipper.cli.options import parse_args, parse_duration_ms, split_host_port


def test_flags_are_order_free_and_host_may_stand_anywhere() -> None:
    config = parse_args(["-m", "5", "127.0.0.1:5070", "-sn", "uac", "-r", "2.5", "-t", "un"])
    assert config.remote_host == "127.0.0.1"
    assert config.remote_port == 5070
    assert config.max_calls == 5
    assert config.rate == 2.5
    assert config.scenario_name == "uac"
    assert config.transport == "un"
    assert {"m", "sn", "r", "t"} <= config.given


def test_two_word_options_accumulate() -> None:
    config = parse_args(["-key", "a", "1", "-key", "b", "2", "-set", "v", "x"])
    assert config.keys == {"a": "1", "b": "2"}
    assert config.globals_set == {"v": "x"}


@pytest.mark.parametrize(
    ("text", "unit", "expected"),
    [("500", "ms", 500), ("10s", "ms", 10_000), ("2", "s", 2000), ("1.5m", "ms", 90_000)],
)
def test_durations_take_sipp_units(text: str, unit: str, expected: int) -> None:
    assert parse_duration_ms("-d", text, unit) == expected


def test_ipv6_host_port() -> None:
    assert split_host_port("-rsa", "[::1]:5080") == ("::1", 5080)
    assert split_host_port("host", "::1", 5060) == ("::1", 5060)


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["-r", "fast"], "-r"),
        (["127.0.0.1", "-r", "1e9"], "-r: 1e+09 calls per 1000 ms is above gossipper's ceiling"),
        (["127.0.0.1", "-r", "200", "-rp", "1"], "-r: 200 calls per 1 ms is above"),
        (["127.0.0.1", "-r", "inf"], "-r: expected a finite number"),
        (["127.0.0.1", "-r", "nan"], "-r: expected a finite number"),
        (["127.0.0.1", "-r", "-5"], "-r: must be at least 0"),
        (["-t", "x9"], "-t"),
        (["-bogus"], "-bogus"),
        (["-p", "70000"], "-p"),
        (["-m"], "-m"),
        (["-rsa", "host:port"], "-rsa"),
        (["-rtp_send", "-media_scale"], "-rtp_send"),
        (["-rtp_streams", "10"], "-rtp_streams"),
        (["-media_scale", "-media_srtp"], "-media_scale"),
        (["-rtp_send", "-rtp_addr", "127.0.0.1:4000", "-rtp_codec", "GSM/8000"], "-rtp_codec"),
        (["-rtp_send", "-rtp_addr", "127.0.0.1:4000", "-rtp_freq", "0"], "-rtp_freq"),
        (["-sn", "uac", "-sf", "x.xml"], "-sn"),
        (["127.0.0.1", "-summary_json", "/nonexistent-dir/s.json"], "directory '/nonexistent-dir'"),
        (["127.0.0.1", "-summary_json", "/tmp"], "-summary_json: '/tmp' is a directory"),
    ],
)
def test_bad_flags_give_one_line_and_exit_1(
    argv: list[str], names: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIPp exits 1 for a flag it refuses: its ERROR() comes before any scenario is in place."""
    assert main(["sipp", *argv]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert names in err
    assert "Traceback" not in err


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    """Both exit 99 (sipp.cpp EXIT_OTHER), as Debian's sipp does."""
    assert main(["sipp", "-h"]) == 99
    assert "-rtp_streams" in capsys.readouterr().out
    assert main(["sipp", "-v"]) == 99
    assert "gossipper" in capsys.readouterr().out


def test_parse_args_rejects_second_host() -> None:
    with pytest.raises(UsageError, match="only one remote host"):
        parse_args(["a:1", "b:2"])
