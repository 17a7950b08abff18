"""docs/sipp-compatibility.md stays true: its tables against what the loader accepts and refuses.

Every element, attribute, action and keyword the loader accepts has a row that is not
"not supported"; every "not supported" row is refused by the loader with an error that
names it; and the loader's own lists of refused SIPp parts all have such a row.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from gossipper.errors import FileProblem
from gossipper.scenario import loader
from gossipper.scenario.keywords import SIMPLE_KEYWORDS, UNSUPPORTED_KEYWORDS, keyword_problem
from gossipper.scenario.loader import parse_scenario

DOC = Path(__file__).resolve().parents[2] / "docs" / "sipp-compatibility.md"
STATUSES = ("same", "differs", "not supported")
_ROW = re.compile(r"^\| (?P<name>[^|]+?) \| (?P<kind>[^|]+?) \| (?P<status>[^|]+?) \|(?P<notes>.*)\|$")
_TAG = re.compile(r"^<(?P<owner>[\w*]+)(?: (?P<attributes>[^>]+))?>$")


@dataclass(frozen=True)
class Row:
    names: tuple[str, ...]  # one cell may hold several backquoted names
    kind: str
    status: str


def _rows() -> list[Row]:
    rows = []
    for line in DOC.read_text().splitlines():
        match = _ROW.match(line)
        if match is None or match["kind"] in ("kind", "---"):
            continue
        status = next((s for s in STATUSES if match["status"].startswith(s)), None)
        assert status is not None, f"unknown status in: {line}"
        names = tuple(re.findall(r"`([^`]+)`", match["name"])) or (match["name"],)
        rows.append(Row(names, match["kind"], status))
    return rows


ROWS = _rows()


def _tagged(kind: str) -> dict[tuple[str, str], str]:
    """(owner, attribute) -> status for attribute rows; (owner, "") for the element or action itself."""
    found: dict[tuple[str, str], str] = {}
    for row in ROWS:
        if row.kind != kind:
            continue
        for name in row.names:
            match = _TAG.match(name)
            assert match is not None, f"{kind} row {name!r} is not <owner attr, ...>"
            for attribute in (match["attributes"] or "").split(","):
                found[(match["owner"], attribute.strip())] = row.status
    return found


ELEMENTS = _tagged("element")
ATTRIBUTES = _tagged("attribute")
ACTIONS = _tagged("action")
ACTION_ATTRIBUTES = _tagged("action attribute")


def _attribute_status(element: str, attribute: str) -> str | None:
    return ATTRIBUTES.get((element, attribute), ATTRIBUTES.get(("*", attribute)))


def _keyword_rows() -> list[tuple[str, str, str]]:
    """(name pattern, the token as written with each argument given a value, status)."""
    return [
        (name.strip("[]").split(" ")[0], name.strip("[]").replace("=", "=1"), row.status)
        for row in ROWS
        if row.kind == "keyword"
        for name in row.names
    ]


KEYWORDS = _keyword_rows()


def _keyword_status(keyword: str) -> str | None:
    return next((status for pattern, _, status in KEYWORDS if fnmatch.fnmatchcase(keyword, pattern)), None)


def _refusal(xml: str) -> str:
    with pytest.raises(FileProblem) as caught:
        parse_scenario(f"<scenario>\n{xml}\n</scenario>".encode(), "doc.xml")
    return str(caught.value)


def _step_with(element: str, attribute: str) -> str:
    body = {
        "send": "<![CDATA[\nOPTIONS sip:x@h SIP/2.0\n\n]]>",
        "sendCmd": "<![CDATA[\nCall-ID: x\n\n]]>",
    }.get(element, "")
    required = ' request="INVITE"' if element == "recv" else ""
    return f'<{element}{required} {attribute}="1">{body}</{element}>'


def test_the_doc_has_the_tables_and_the_option_section() -> None:
    text = DOC.read_text()
    for heading in ("## Elements", "## Attributes", "## Actions", "## Action attributes", "## Keywords"):
        assert heading in text
    assert (
        "## Command-line options" in text
        and "| name | kind | status | notes |" in text.split("## Command-line")[1]
    )


def test_every_accepted_element_and_attribute_has_a_row_that_runs_it() -> None:
    for element, attributes in loader.STEP_ATTRIBUTES.items():
        assert ELEMENTS.get((element, "")) in ("same", "differs"), element
        for attribute in attributes:
            assert _attribute_status(element, attribute) in ("same", "differs"), (element, attribute)
    for element in (
        *loader.DECLARATIONS,
        "scenario",
        "action",
        "ResponseTimeRepartition",
        "CallLengthRepartition",
    ):
        assert ELEMENTS.get((element, "")) in ("same", "differs"), element


def test_every_accepted_action_and_action_attribute_has_a_row_that_runs_it() -> None:
    for action, attributes in loader.ACTION_ATTRIBUTES.items():
        assert ACTIONS.get((action, "")) in ("same", "differs"), action
        for attribute in attributes:
            assert ACTION_ATTRIBUTES.get((action, attribute)) in ("same", "differs"), (action, attribute)


def test_the_loaders_refused_parts_are_rows_marked_not_supported() -> None:
    for element in loader.UNSUPPORTED_ELEMENTS:
        assert ELEMENTS.get((element, "")) == "not supported", element
    for element, attribute in loader.UNSUPPORTED_STEP_ATTRIBUTES:
        assert ATTRIBUTES.get((element, attribute)) == "not supported", (element, attribute)
    for action in loader.UNSUPPORTED_ACTIONS:
        assert ACTIONS.get((action, "")) == "not supported", action
    for action, attribute in loader.UNSUPPORTED_ACTION_ATTRIBUTES:
        assert ACTION_ATTRIBUTES.get((action, attribute)) == "not supported", (action, attribute)


@pytest.mark.parametrize(
    ("owner", "attribute"), sorted(key for key, status in ATTRIBUTES.items() if status == "not supported")
)
def test_a_not_supported_attribute_is_refused_by_name(owner: str, attribute: str) -> None:
    elements = loader.MESSAGE_ELEMENTS if owner == "*" else (owner,)
    for element in elements:
        message = _refusal(_step_with(element, attribute))
        assert f"<{element}> {attribute}= is not supported" in message, message


@pytest.mark.parametrize(
    "element", sorted(owner for (owner, _), status in ELEMENTS.items() if status == "not supported")
)
def test_a_not_supported_element_is_refused_by_name(element: str) -> None:
    assert f"<{element}> is not supported" in _refusal(f"<{element}/>")


@pytest.mark.parametrize(
    "action", sorted(owner for (owner, _), status in ACTIONS.items() if status == "not supported")
)
def test_a_not_supported_action_is_refused_by_name(action: str) -> None:
    message = _refusal(f'<recv request="INVITE"><action><{action}/></action></recv>')
    assert f"action <{action}> is not supported" in message, message


@pytest.mark.parametrize(
    ("action", "attribute"),
    sorted(key for key, status in ACTION_ATTRIBUTES.items() if status == "not supported"),
)
def test_a_not_supported_action_attribute_is_refused_by_name(action: str, attribute: str) -> None:
    message = _refusal(f'<recv request="INVITE"><action><{action} {attribute}="1"/></action></recv>')
    assert f"<{action}> {attribute}= is not supported" in message, message


def test_keywords_are_rows_as_the_loader_takes_them() -> None:
    for keyword in SIMPLE_KEYWORDS:
        assert _keyword_status(keyword) in ("same", "differs"), keyword
        assert keyword_problem(keyword, frozenset()) is None
    for keyword in UNSUPPORTED_KEYWORDS:
        assert _keyword_status(keyword) == "not supported", keyword
    for pattern, token, status in KEYWORDS:
        if status == "not supported" and "*" not in pattern:
            problem = keyword_problem(token, frozenset())
            assert problem is not None and "not supported" in problem, token
    for special in ("len", "fieldN", "$var", "last_Header:", "authentication", "last_Request_URI"):
        assert _keyword_status(special) in ("same", "differs"), special
