"""Rendering a bound template gives the bytes SIPp's rules give, whatever the line shapes.

The reference below is the rule written out line by line (keep a line unless it holds
keywords only and they all came out empty; never drop the request line); the bound
template renders by chunks, so hypothesis walks the shapes where the two could part:
leading, trailing and adjacent droppable lines, empty lines, [len] in either section.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gossipper.scenario.template import MessageTemplate

KEYWORD_VALUES = {"a": "", "b": "B", "c": "", "$v": "value"}


def _reference(text: str, values: dict[str, str]) -> bytes:
    lines = text.split("\n")
    if "" in lines:
        blank = lines.index("")
        head_lines, body_lines = lines[:blank], lines[blank + 1 :]
    else:
        head_lines, body_lines = lines, None

    def fill(line: str) -> tuple[str, bool]:
        out, literal, only_keywords = "", False, "[" in line
        rest = line
        while "[" in rest:
            before, _, after = rest.partition("[")
            token, _, rest = after.partition("]")
            literal = literal or bool(before)
            out += before + values[token]
        literal = literal or bool(rest)
        return out + rest, only_keywords and not literal

    def section(section_lines: list[str], keep_first: bool) -> str:
        kept = []
        for index, line in enumerate(section_lines):
            text, droppable = fill(line)
            if text or not droppable or (keep_first and index == 0):
                kept.append(text)
        return "\r\n".join(kept)

    head = section(head_lines, keep_first=True)
    if body_lines is None:
        return head.encode()
    return (head + "\r\n\r\n" + section(body_lines, keep_first=False)).encode()


_line = st.lists(st.sampled_from(["x", "y z", "[a]", "[b]", "[c]", "[$v]", ""]), max_size=4).map("".join)


@settings(max_examples=300, deadline=None)
@given(
    head=st.lists(_line, min_size=1, max_size=5),
    body=st.none() | st.lists(_line.filter(bool), min_size=1, max_size=5),
)
def test_bound_rendering_keeps_and_drops_the_lines_the_rule_says(
    head: list[str], body: list[str] | None
) -> None:
    lines = ["INVITE sip:x SIP/2.0", *[line for line in head if line]]
    if body is not None:
        lines += ["", *body]
    text = "\n".join(lines)
    template = MessageTemplate.compile(text)
    # compile cleans CDATA as SIPp does (blank tail, CRLF), so compare against the cleaned text
    cleaned = template.render(lambda token: f"[{token}]").decode().replace("\r\n", "\n")
    expected = _reference(cleaned, KEYWORD_VALUES)
    bound = template.bind(lambda token: lambda values: values[token])
    assert bound.render(KEYWORD_VALUES) == expected
    assert template.render(KEYWORD_VALUES.__getitem__) == expected


def test_content_length_counts_the_body_after_its_dropped_lines() -> None:
    template = MessageTemplate.compile(
        "INVITE sip:x SIP/2.0\n[a]\nContent-Length: [len]\n\nv=0\n[c]\nm=audio [b]\n"
    )
    data = template.bind(lambda token: lambda values: values[token]).render(KEYWORD_VALUES)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head == b"INVITE sip:x SIP/2.0\r\nContent-Length: " + f"{len(body):5d}".encode()
    assert body == b"v=0\r\nm=audio B\r\n"
