"""SIPp's output-file flags: parsed, checked, and compiled into the views' settings."""

from __future__ import annotations

import pytest

from gossipper.cli.compile import output_file_base, view_settings
from gossipper.cli.errors import UsageError
from gossipper.cli.options import OUTPUT_OPTIONS, parse_args
from gossipper.cli.validate import validate
from gossipper.engine.settings import TraceSettings


@pytest.mark.parametrize(
    "args, base",
    [
        (["-sf", "/labs/suite/uac_auth.xml"], "uac_auth"),  # the basename, less ".xml"
        (["-sf", "calls.v2.XML"], "calls.v2.XML"),  # SIPp strips only a lower-case ".xml"
        (["-sf", "scenario"], "scenario"),
        (["-sn", "uas"], "uas"),
        ([], "uac"),
    ],
)
def test_files_are_named_after_the_scenario_file(args: list[str], base: str) -> None:
    assert output_file_base(parse_args(args)) == base


def test_defaults_are_sipps() -> None:
    views = view_settings(parse_args(["-sn", "uac"]))
    assert views.stat_delimiter == ";" and views.rtt_freq == 200
    assert not (views.periodic_rtd or views.rfc3339 or views.counts_csv or views.error_codes_csv)
    assert (views.ringbuffer_files, views.ringbuffer_size, views.max_log_size) == (0, 0, 0)
    traces = (views.messages, views.shortmessages, views.errors, views.logs, views.calldebug, views.screen)
    assert all(trace == TraceSettings() for trace in traces)


EVERY_OUTPUT_FLAG = """
-sn uac -stat_delimiter , -periodic_rtd -rfc3339 -trace_shortmsg -shortmessage_file s.log -trace_counts
-trace_error_codes -trace_calldebug -calldebug_file d.log -trace_rtt -rtt_freq 5 -message_overwrite false
-shortmessage_overwrite 0 -error_overwrite FALSE -calldebug_overwrite 0 -screen_overwrite true
-log_overwrite 1 -ringbuffer_files 3 -ringbuffer_size 0x100
"""


def test_every_output_flag_reaches_the_views() -> None:
    config = parse_args(EVERY_OUTPUT_FLAG.split())
    validate(config)
    views = view_settings(config)
    assert (views.stat_delimiter, views.periodic_rtd, views.rfc3339) == (",", True, True)
    assert views.shortmessages == TraceSettings(True, "s.log", False)
    assert views.calldebug == TraceSettings(True, "d.log", False)
    assert (views.counts_csv, views.error_codes_csv, views.rtt_csv, views.rtt_freq) == (True, True, True, 5)
    assert (views.messages.overwrite, views.errors.overwrite) == (False, False)
    assert (views.screen.overwrite, views.logs.overwrite) == (True, True)
    assert (views.ringbuffer_files, views.ringbuffer_size) == (3, 256)


def test_max_log_size_reaches_the_views() -> None:
    assert view_settings(parse_args(["-max_log_size", "4096"])).max_log_size == 4096


@pytest.mark.parametrize(
    "args, message",
    [
        (["-message_overwrite", "maybe"], "-message_overwrite: expected true or false, got 'maybe'"),
        (["-rtt_freq", "0"], "-rtt_freq: must be at least 1, got 0"),
        (["-ringbuffer_size", "-5"], "-ringbuffer_size: must be at least 0, got -5"),
        (["-stat_delimiter", ""], "-stat_delimiter: the delimiter must not be empty"),
        (
            ["-ringbuffer_size", "10", "-max_log_size", "10"],
            "-ringbuffer_size and -max_log_size: choose one (SIPp refuses both)",
        ),
    ],
)
def test_bad_values_name_the_flag(args: list[str], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        validate(parse_args(args))
    assert str(caught.value) == message


def test_the_output_options_are_in_the_table() -> None:
    names = {option.name for option in OUTPUT_OPTIONS}
    assert names == {
        "stat_delimiter", "periodic_rtd", "rfc3339", "trace_shortmsg", "shortmessage_file", "trace_counts",
        "trace_error_codes", "trace_calldebug", "calldebug_file", "rtt_freq", "message_overwrite",
        "shortmessage_overwrite", "error_overwrite", "calldebug_overwrite", "screen_overwrite",
        "log_overwrite", "ringbuffer_files", "ringbuffer_size", "max_log_size",
    }  # fmt: skip
