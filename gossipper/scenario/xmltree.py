"""A minimal XML tree that remembers line numbers (ElementTree forgets them).

Scenario errors must name the line; expat reports it, so the loader builds on this.
The tree keeps what SIPp's parser reads: attribute values with its backslash escapes
applied, and each element's first CDATA section (text outside CDATA is no message).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from xml.parsers import expat

# SIPp reads every attribute value through these escapes (xp_parser.cpp,
# xp_process_escapes); any other backslash pair stays as written, so regexps keep \d.
_ATTRIBUTE_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "r": "\r"}
_BACKSLASH_PAIR = re.compile(r"\\(.)", re.DOTALL)


def _unescape_attribute(value: str) -> str:
    if "\\" not in value:
        return value
    return _BACKSLASH_PAIR.sub(lambda m: _ATTRIBUTE_ESCAPES.get(m.group(1), m.group(0)), value)


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    line: int
    children: list[Node] = field(default_factory=list)
    cdata: str | None = None  # the first CDATA section, None when the element has none


class XmlSyntaxError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def parse_xml(data: bytes) -> Node:
    """The document's root element; XmlSyntaxError carries expat's line."""
    parser = expat.ParserCreate()
    stack: list[Node] = []
    roots: list[Node] = []
    # The CDATA section being read and the element it belongs to; only an element's
    # first section is kept, as SIPp's xp_get_cdata returns only that one.
    section: list[str] | None = None

    def start(tag: str, attrs: dict[str, str]) -> None:
        node = Node(
            tag, {name: _unescape_attribute(value) for name, value in attrs.items()}, parser.CurrentLineNumber
        )
        if stack:
            stack[-1].children.append(node)
        else:
            roots.append(node)
        stack.append(node)

    def end(_tag: str) -> None:
        stack.pop()

    def start_cdata() -> None:
        nonlocal section
        section = [] if stack and stack[-1].cdata is None else None

    def end_cdata() -> None:
        nonlocal section
        if section is not None:
            stack[-1].cdata = "".join(section)
        section = None

    def text(data: str) -> None:
        if section is not None:
            section.append(data)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.StartCdataSectionHandler = start_cdata
    parser.EndCdataSectionHandler = end_cdata
    parser.CharacterDataHandler = text
    try:
        parser.Parse(data, True)
    except expat.ExpatError as error:
        raise XmlSyntaxError(error.lineno, expat.ErrorString(error.code)) from None
    if not roots:
        raise XmlSyntaxError(1, "no root element")
    return roots[0]
