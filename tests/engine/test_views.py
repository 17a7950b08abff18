"""The run's views: which output files exist, when they are created, and what goes in them."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from gossipper.engine.settings import TraceSettings, ViewSettings
from gossipper.engine.views import RunViews, counted_steps
from gossipper.scenario.loader import parse_scenario
from gossipper.stats.counters import RunCounters
from tests.engine.fake_host import FakeTransport

SCENARIO = parse_scenario(
    b"""<scenario name="../../not/a/file/name">
  <send retrans="500"><![CDATA[
INVITE sip:x@[remote_ip] SIP/2.0
Call-ID: [call_id]
Content-Length: 0

]]></send>
  <label id="again"/>
  <recv response="180" optional="true"/>
  <recv response="200"/>
  <nop/>
  <pause milliseconds="10"/>
  <send><![CDATA[
ACK sip:x@[remote_ip] SIP/2.0
Call-ID: [call_id]
Content-Length: 0

]]></send>
</scenario>""",
    "views.xml",
)
INVITE = b"INVITE sip:x@127.0.0.1 SIP/2.0\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
REJECT = b"SIP/2.0 480 Busy\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"


def header_fields() -> dict[str, object]:
    return {
        "scenario": "views",
        "local": "127.0.0.1:5061",
        "remote": "127.0.0.1:5060",
        "transport": "u1",
        "rate": 10.0,
        "rate_period_ms": 1000,
        "max_calls": 0,
        "max_concurrent": 0,
    }


def make_views(settings: ViewSettings, live: frozenset[str] = frozenset()) -> tuple[RunViews, RunCounters]:
    counters = RunCounters()
    counters.ensure_steps(len(SCENARIO.steps))
    return RunViews(settings, SCENARIO, counters, header_fields, live_calls=lambda: live), counters


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_counted_steps_number_messages_without_labels_or_nops() -> None:
    names = [name for step in counted_steps(SCENARIO) for name in step.column_names()]
    assert names == [
        "0_INVITE_Sent", "0_INVITE_Retrans", "0_INVITE_Timeout",
        "1_180_Recv", "1_180_Retrans", "1_180_Timeout", "1_180_Unexp",
        "2_200_Recv", "2_200_Retrans", "2_200_Timeout", "2_200_Unexp",
        "4_Pause_Sessions", "4_Pause_Unexp",
        "5_ACK_Sent", "5_ACK_Retrans",
    ]  # fmt: skip


def test_files_are_named_after_the_file_base_in_the_cwd(tmp_path: Path) -> None:
    on = TraceSettings(enabled=True)
    settings = ViewSettings(
        file_base="lab",
        messages=on,
        shortmessages=on,
        logs=on,
        calldebug=on,
        screen=on,
        stat_csv=True,
        counts_csv=True,
        error_codes_csv=True,
        rtt_csv=True,
        quiet=True,
    )
    views, _ = make_views(settings)
    views.start()
    views.finish("test")
    pid = os.getpid()
    assert sorted(os.listdir(tmp_path)) == sorted(
        f"lab_{pid}_{suffix}"
        for suffix in (
            "messages.log", "shortmessages.log", "logs.log", "calldebug.log", "screen.log",
            ".csv", "counts.csv", "error_codes.csv", "rtt.csv",
        )
    )  # fmt: skip
    assert not (tmp_path.parent / "not").exists()


def test_the_error_file_appears_with_the_first_error() -> None:
    views, counters = make_views(ViewSettings(file_base="lab", errors=TraceSettings(True), quiet=True))
    path = Path(f"lab_{os.getpid()}_errors.log")
    assert not path.exists()
    views.trace_error("first problem")
    views.log("warning", "a <warning> action")
    views.log("error", "an <error> action")
    lines = path.read_text().splitlines()
    assert lines[0] == "The following events occurred:"
    stamp = r"\d{4}-\d\d-\d\d\t\d\d:\d\d:\d\d\.\d{6}\t\d{10}\.\d{6}: "
    assert [re.sub(stamp, "", line) for line in lines[1:]] == [
        "first problem",
        "a <warning> action",
        "error: an <error> action",
    ]
    assert counters.warnings == 3
    views.finish("test")


def test_log_actions_are_written_as_they_are() -> None:
    views, _ = make_views(ViewSettings(file_base="lab", logs=TraceSettings(True), quiet=True))
    views.log("log", "value is 7")
    assert Path(f"lab_{os.getpid()}_logs.log").read_text() == "value is 7\n"
    views.finish("test")


def test_calldebug_keeps_the_history_of_calls_aborted_by_an_unexpected_message() -> None:
    views, _ = make_views(ViewSettings(file_base="lab", calldebug=TraceSettings(True), quiet=True))
    transport = FakeTransport()
    views.trace_message("sent", INVITE, ("127.0.0.1", 5060), transport)
    views.trace_message("received", REJECT, ("127.0.0.1", 5060), transport)
    views.call_ended("c1", "timeout")  # not an unexpected message: nothing written
    path = Path(f"lab_{os.getpid()}_calldebug.log")
    assert path.read_text() == ""
    views.trace_message("sent", INVITE, ("127.0.0.1", 5060), transport)
    views.trace_message("received", REJECT, ("127.0.0.1", 5060), transport)
    views.call_ended("c1", "unexpected_sip")
    text = path.read_text()
    assert text.startswith("-" * 79 + "\nCall debugging information for call c1:\n")
    assert "Sending UDP message for call c1:\nINVITE sip:x@127.0.0.1 SIP/2.0" in text
    assert f"Processing {len(REJECT)} byte incoming message for call-ID c1:\nSIP/2.0 480 Busy" in text
    assert text.rstrip().endswith("Aborting call c1.")
    assert text.count("Call debugging information") == 1
    views.finish("test")


def test_calldebug_forgets_calls_that_are_gone() -> None:
    views, _ = make_views(ViewSettings(file_base="lab", calldebug=TraceSettings(True), quiet=True))
    views.trace_message("received", REJECT, ("127.0.0.1", 5060), FakeTransport())
    views.tick(0.0)
    views.call_ended("c1", "unexpected_sip")  # its history was dropped with the call
    assert Path(f"lab_{os.getpid()}_calldebug.log").read_text() == ""
    views.finish("test")


def test_screen_dumps_go_to_one_file_truncated_at_start() -> None:
    path = Path("screens.log")
    path.write_text("an older run\n")
    views, _ = make_views(
        ViewSettings(file_base="lab", screen=TraceSettings(True, "screens.log"), quiet=True)
    )
    assert path.read_text() == ""
    views.dump_screen()  # SIGUSR2
    views.finish("test")  # -trace_screen: once more at exit
    text = path.read_text()
    assert text.count("Scenario Screen") == 2 and "\x1b" not in text


def test_a_screen_dump_without_trace_screen_opens_the_default_file() -> None:
    views, _ = make_views(ViewSettings(file_base="lab", quiet=True))
    views.dump_screen()
    views.finish("test")
    assert Path(f"lab_{os.getpid()}_screen.log").read_text().count("Scenario Screen") == 1
