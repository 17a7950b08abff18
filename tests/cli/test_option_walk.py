"""Every option of SIPp's table (tests/cli/sipp_options.txt) is accepted by `gossipper sipp`.

A SIPp option gossipper does not know fails here, so an option SIPp adds (regenerate the
list from its sipp.cpp) or one lost by accident breaks CI. The few that cannot apply are
refused with a one-line reason; an option not implemented yet would be a strict xfail,
which fails as soon as it works, so that list shrinks with the work.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gossipper.cli.errors import UsageError
from gossipper.cli.main import main
from gossipper.cli.options import OPTIONS, parse_args

OPTION_LIST = Path(__file__).with_name("sipp_options.txt")
SIPP_SOURCE = Path("/work/sipp-src/src/sipp.cpp")  # present on a developer's machine only

# Options that cannot apply to gossipper: refused, saying why.
CANNOT_APPLY = {"plugin", "tdmmap", "srtpcheck_debug"}
# Options not implemented yet: refused, saying so (none left: a name here is a strict xfail).
NOT_YET: set[str] = set()
# SIPp's tuning knobs of its own machinery: accepted with a one-line notice that they change nothing.
NO_EFFECT = {
    "max_recv_loops",
    "max_sched_loops",
    "rtp_threadtasks",
    "send_timeout",
    "sendbuffer_warn",
    *("multihome", "heartbeat", "assocmaxret", "pathmaxret", "pmtu", "gracefulclose"),
}


def _sipp_options() -> list[tuple[str, list[str]]]:
    rows = []
    for line in OPTION_LIST.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, *values = line.split()
            rows.append((name, values))
    return rows


def _params() -> list[object]:
    params: list[object] = []
    for name, values in _sipp_options():
        marks = []
        if name in NOT_YET:
            marks.append(pytest.mark.xfail(strict=True, reason="not implemented yet", raises=UsageError))
        params.append(pytest.param(name, values, marks=marks, id=name))
    return params


@pytest.mark.parametrize(("name", "values"), _params())
def test_sipp_option_is_accepted(name: str, values: list[str]) -> None:
    if name in CANNOT_APPLY:
        with pytest.raises(UsageError, match=f"^-{name}: not supported by gossipper: "):
            parse_args([f"-{name}", *values])
        return
    config = parse_args([f"-{name}", *values])
    assert name in config.given
    notices = [notice for notice in config.notices if notice.startswith(f"-{name}: ")]
    assert bool(notices) == (name in NO_EFFECT)


@pytest.mark.parametrize("name", sorted(CANNOT_APPLY | NOT_YET))
def test_refused_option_gives_one_line_and_exit_1(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Like any flag error SIPp finds before its scenario is in place: one line, exit 1."""
    values = dict(_sipp_options())[name]
    assert main(["sipp", f"-{name}", *values]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"-{name}: not supported by gossipper" in err


@pytest.mark.parametrize(
    "transport",
    [
        *("u1", "un", "ui", "t1", "tn", "l1", "ln", "s1", "sn"),
    ],
)
def test_every_sipp_transport_is_accepted(transport: str) -> None:
    assert parse_args(["-t", transport]).transport == transport


def test_lists_name_only_sipp_options() -> None:
    """The lists above stay true to the table: no stale names."""
    names = {name for name, _ in _sipp_options()}
    assert names >= CANNOT_APPLY | NOT_YET | NO_EFFECT
    assert len(names) == len(_sipp_options())


@pytest.mark.skipif(not SIPP_SOURCE.exists(), reason="SIPp's source is not on this machine")
def test_option_list_is_sipp_source_table() -> None:
    source = SIPP_SOURCE.read_text()
    table = source[source.index("options_table[] = {") : source.index("*find_option(")]
    table = re.sub(r"^\s*//.*$", "", table, flags=re.MULTILINE)
    names = dict.fromkeys(match for match in re.findall(r'\{\s*"([^"]+)"\s*,', table))
    assert list(names) == [name for name, _ in _sipp_options()]


def test_every_gossipper_only_option_is_documented_in_help() -> None:
    from gossipper.cli.options import usage_text

    text = usage_text()
    assert all(f"-{name}" in text for name in OPTIONS)


def test_the_compatibility_doc_has_one_row_per_sipp_option() -> None:
    """docs/sipp-compatibility.md stays true: each SIPp option has its row, and the rows
    saying "not supported" are exactly the options refused here."""
    doc = Path(__file__).parents[2] / "docs" / "sipp-compatibility.md"
    row = r"^\| `-(\w+)` \| option \| (same|differs|not supported) \|"
    rows = dict(re.findall(row, doc.read_text(), re.M))
    assert sorted(rows) == sorted(name for name, _ in _sipp_options())
    assert {name for name, status in rows.items() if status == "not supported"} == CANNOT_APPLY
