import os
import re
import time
from datetime import datetime

import pytest

from gossipper.errors import FileProblem
from gossipper.stats.traces import TraceFile, default_trace_path

ENTRY = re.compile(r"^-{47} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6})$")


@pytest.mark.parametrize("kind", ["messages", "errors", "logs", "screen"])
def test_default_names_are_sipps(kind: str) -> None:
    assert default_trace_path("uac", kind) == f"uac_{os.getpid()}_{kind}.log"


def test_entries_are_timestamped_and_newline_terminated(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "uac_messages.log")
    before = time.time()
    trace = TraceFile(path)
    trace.write("UDP message sent (5 bytes) to 127.0.0.1:5060:\n\nHELLO")
    trace.write("second entry\n")
    trace.close()
    after = time.time()
    with open(path) as handle:
        lines = handle.read().split("\n")
    assert lines[1:4] == ["UDP message sent (5 bytes) to 127.0.0.1:5060:", "", "HELLO"]
    assert lines[5:] == ["second entry", ""]
    for rule in (lines[0], lines[4]):
        match = ENTRY.match(rule)
        assert match is not None, rule
        stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        assert before - 1 <= stamp <= after + 1


def test_writes_are_buffered_until_flush(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "uac_errors.log")
    trace = TraceFile(path)
    trace.write("an error")
    assert os.path.getsize(path) == 0
    trace.flush()
    with open(path) as handle:
        assert handle.read().endswith("an error\n")
    trace.close()


def test_appends_to_an_existing_file_and_ignores_writes_after_close(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "shared.log")
    with open(path, "w") as handle:
        handle.write("earlier run\n")
    trace = TraceFile(path)
    trace.write("this run")
    trace.close()
    trace.write("too late")
    trace.flush()
    with open(path) as handle:
        content = handle.read()
    assert content.startswith("earlier run\n")
    assert content.endswith("this run\n")
    assert "too late" not in content


def test_unwritable_path_is_a_config_error_naming_it(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "no-such-dir", "uac_messages.log")
    with pytest.raises(FileProblem, match=re.escape(path)):
        TraceFile(path)
