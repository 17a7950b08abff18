import os
import re
import time

import pytest

from gossipper.errors import FileProblem
from gossipper.stats.traces import (
    LogFile,
    LogLimits,
    calldebug_entry,
    calldebug_line,
    default_log_path,
    error_entry,
    message_entry,
    shortmessage_entry,
)

INVITE = (
    b"INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1\r\n"
    b"Call-ID: prefix///1-42@127.0.0.1\r\n"
    b"CSeq:  1 INVITE \r\n"
    b"Content-Length: 0\r\n\r\n"
)
DEFAULT_TIME = r"\d{4}-\d\d-\d\d\t\d\d:\d\d:\d\d\.\d{6}\t\d{10}\.\d{6}"
RFC3339_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)"


@pytest.mark.parametrize("kind", ["messages", "shortmessages", "errors", "logs", "calldebug", "screen"])
def test_default_names_are_sipps(kind: str) -> None:
    assert default_log_path("uac", kind) == f"uac_{os.getpid()}_{kind}.log"


def read(path: str | os.PathLike[str]) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def test_each_entry_is_on_disk_as_soon_as_it_is_written(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "uac_messages.log")
    trace = LogFile(path, "uac", "messages")
    trace.write("first\n")
    assert read(path) == "first\n"
    trace.write("second\n")
    assert read(path) == "first\nsecond\n"
    trace.close()
    trace.write("after close\n")
    assert read(path) == "first\nsecond\n"


def test_an_existing_file_is_truncated_unless_overwrite_is_false(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "shared.log")
    with open(path, "w") as handle:
        handle.write("earlier run\n")
    kept = LogFile(path, "uac", "messages", overwrite=False)
    kept.write("this run\n")
    kept.close()
    assert read(path) == "earlier run\nthis run\n"
    truncated = LogFile(path, "uac", "messages")
    truncated.write("next run\n")
    truncated.close()
    assert read(path) == "next run\n"


def test_ringbuffer_rotates_and_keeps_only_the_newest_files(
    tmp_path: os.PathLike[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # rotated files are named <base>_<pid>_<kind>_<second>[.<n>].log in the cwd
    limits = LogLimits(ringbuffer_files=1, ringbuffer_size=10)
    trace = LogFile("uac_messages.log", "uac", "messages", limits=limits)
    for index in range(5):
        trace.write(f"entry {index:02d}\n")  # 9 bytes: every second entry passes 10 and rotates
    trace.close()
    prefix = f"uac_{os.getpid()}_messages_"
    rotated = [name for name in os.listdir(tmp_path) if name.startswith(prefix)]
    assert len(rotated) == 1, rotated  # the first rotated file was deleted for the second
    assert re.fullmatch(re.escape(prefix) + r"\d+(\.1)?\.log", rotated[0]), rotated
    assert read(rotated[0]) == "entry 02\nentry 03\n"
    assert read("uac_messages.log") == "entry 04\n"


def test_ringbuffer_names_files_of_the_same_second_apart(
    tmp_path: os.PathLike[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    trace = LogFile(
        "uac_errors.log", "uac", "errors", limits=LogLimits(ringbuffer_files=3, ringbuffer_size=1)
    )
    start = int(time.time())
    for index in range(3):
        trace.write(f"{index}\n")
    trace.close()
    rotated = sorted(name for name in os.listdir(tmp_path) if name.startswith(f"uac_{os.getpid()}_errors_"))
    assert len(rotated) == 3
    seconds = {int(name.split("_")[-1].split(".")[0]) for name in rotated}
    assert all(start <= second <= start + 2 for second in seconds)
    if len(seconds) == 1:  # all three in one second: .1 and .2 tell the later two apart
        assert sorted(name.rsplit("_", 1)[1] for name in rotated) == [
            f"{min(seconds)}.1.log",
            f"{min(seconds)}.2.log",
            f"{min(seconds)}.log",
        ]
    assert read("uac_errors.log") == ""


def test_ringbuffer_without_files_truncates_in_place(
    tmp_path: os.PathLike[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    trace = LogFile("uac_logs.log", "uac", "logs", limits=LogLimits(ringbuffer_size=5))
    trace.write("abcdef\n")
    trace.write("xy\n")
    trace.close()
    assert read("uac_logs.log") == "xy\n"
    assert os.listdir(tmp_path) == ["uac_logs.log"]


def test_max_log_size_stops_the_file(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "uac_messages.log")
    trace = LogFile(path, "uac", "messages", limits=LogLimits(max_log_size=8))
    trace.write("12345\n")
    trace.write("67890\n")  # passes 8 bytes: SIPp closes the file after this entry
    trace.write("dropped\n")
    assert read(path) == "12345\n67890\n"
    assert not trace.is_open


def test_unwritable_path_is_a_config_error_naming_it(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "no-such-dir", "uac_messages.log")
    with pytest.raises(FileProblem, match=re.escape(path)) as caught:
        LogFile(path, "uac", "messages", setting="message_file")
    assert caught.value.setting == "message_file"


def test_message_entry_is_current_sipps() -> None:
    entry = message_entry("sent", "UDP", INVITE, 1_700_000_000.5)
    rule, shape, blank, *rest = entry.split("\n")
    assert re.fullmatch("-{47} " + RFC3339_TIME, rule), rule
    assert shape == f"UDP message sent [{len(INVITE)}] bytes:"
    assert blank == ""
    assert "\n".join(rest) == INVITE.decode() + "\n"
    received = message_entry("received", "TCP", b"SIP/2.0 200 OK\r\n\r\n", 1_700_000_000.5)
    assert received.split("\n")[1] == "TCP message received [18] bytes:"


@pytest.mark.parametrize("rfc3339, stamp", [(False, DEFAULT_TIME), (True, RFC3339_TIME)])
def test_shortmessage_entry_is_one_tab_separated_line(rfc3339: bool, stamp: str) -> None:
    entry = shortmessage_entry("sent", INVITE, 1_700_000_000.5, rfc3339, trim_call_id=True)
    pattern = (
        stamp + r"\tS\t1-42@127\.0\.0\.1\tCSeq:1 INVITE\tINVITE sip:service@127\.0\.0\.1:5060 SIP/2\.0\n"
    )
    assert re.fullmatch(pattern, entry), entry
    compact = b"SIP/2.0 180 Ringing\r\ni: abc\r\nCSeq: 7 BYE\r\n\r\n"
    line = shortmessage_entry("received", compact, 1_700_000_000.5, rfc3339, trim_call_id=False)
    assert line.split("\t")[-4:] == ["R", "abc", "CSeq:7 BYE", "SIP/2.0 180 Ringing\n"]


def test_error_and_calldebug_entries() -> None:
    assert re.fullmatch(DEFAULT_TIME + r": something failed\n", error_entry("something failed", 1e9, False))
    line = calldebug_line("Aborting call x.\n", 1e9, True)
    assert re.fullmatch(RFC3339_TIME + r" Aborting call x\.\n", line)
    assert calldebug_entry("x", [line]) == "-" * 79 + "\nCall debugging information for call x:\n" + line
