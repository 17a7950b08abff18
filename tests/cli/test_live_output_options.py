"""-metrics_addr and -stats_jsonl as the command line takes them: loopback unless a host is
named, and a file that cannot be written refused before the run, in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gossipper.cli.compile import run_settings, standalone_settings
from gossipper.cli.main import main
from gossipper.cli.options import parse_args
from gossipper.cli.validate import validate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9464", ("127.0.0.1", 9464)),
        ("0.0.0.0:9100", ("0.0.0.0", 9100)),
        ("localhost:9464", ("localhost", 9464)),
        ("[::1]:9464", ("::1", 9464)),
    ],
)
def test_metrics_address_is_loopback_unless_a_host_is_named(text: str, expected: tuple[str, int]) -> None:
    config = parse_args(["-metrics_addr", text, "127.0.0.1"])
    assert config.metrics_address == expected
    assert run_settings(config).views.live.metrics_address == expected


def test_live_outputs_reach_the_standalone_generator(tmp_path: Path) -> None:
    rows = str(tmp_path / "rows.jsonl")
    report = str(tmp_path / "report.html")
    argv = ["-rtp_send", "-rtp_addr", "127.0.0.1:4000", "-metrics_addr", "9464", "-stats_jsonl", rows]
    config = parse_args([*argv, "-fd", "5", "-summary_html", report])
    validate(config)
    settings = standalone_settings(config)
    assert settings.live.metrics_address == ("127.0.0.1", 9464)
    assert settings.live.stats_jsonl == rows
    assert settings.live.summary_html == report
    assert settings.stat_period_s == 5.0


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["-metrics_addr", "70000"], "-metrics_addr: must be at most 65535, got 70000"),
        (["-metrics_addr", "host:"], "-metrics_addr: missing port in 'host:'"),
        (["-metrics_addr", "localhost"], "-metrics_addr: missing port in 'localhost'"),
        (["-metrics_addr", ":9464"], "-metrics_addr: missing host"),
        (["-stats_jsonl", "/nonexistent-dir/rows.jsonl"], "-stats_jsonl: the directory '/nonexistent-dir'"),
        (["-stats_jsonl", "/tmp"], "-stats_jsonl: '/tmp' is a directory"),
        (["-stats_jsonl", "-"], "-stats_jsonl: give a file name"),
        (["-summary_html", "/nonexistent-dir/run.html"], "-summary_html: the directory '/nonexistent-dir'"),
        (["-summary_html", "-"], "-summary_html: give a file name"),
    ],
)
def test_bad_live_output_flags_give_one_line_and_exit_1(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sipp", "127.0.0.1", *argv]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert expected in err
