"""Message templates: the text of a <send> with its [keywords], compiled once at load.

Whitespace is cleaned the way SIPp cleans CDATA (leading indentation and trailing
blanks dropped, lines joined by CRLF) and `\\xNN` escapes become the byte they name,
so that a scenario written for SIPp puts the same bytes on the wire. Keyword values
come from a resolver the engine passes in, which keeps this module free of call state.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# A keyword, or an [authentication ...] or [fieldN ...] whose arguments hold keywords of their
# own, bare or quoted as SIPp wants them: [authentication username="[field0]" password=[$pw]].
_KEYWORD = re.compile(
    r'\[((?:authentication|field\d+)\s(?:[^\[\]"\r\n]|"[^"\r\n]*"|\[[^\[\]\r\n]+\])*|[^\[\]\r\n]+)\]'
)
_LEN = re.compile(r"^len(?P<offset>[+-]\d+)?$")
_LEN_MARK = "\x00len"
_LEN_VALUE = re.compile("\x00lenlen([+-]\\d+)?")
# SIPp (message.cpp) reads "\x" and one more character, or two when the first is a hex
# digit: a byte from the one or two hex digits, nothing when there is none. It does so
# while it scans the cleaned text, before line ends become CRLF and keywords are found.
_HEX_ESCAPE = re.compile(r"\\x(?:([0-9A-Fa-f])(.?)|.?)", re.DOTALL)
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
# Until the lines and keywords are split, an escaped byte stands in the text as a private-use
# code point, so that \x0A ends no line and \x5B opens no keyword.
_HELD = 0xF0000
# On the wire a byte above 0x7f travels in the text as a lone surrogate (surrogateescape),
# so UTF-8 text around it still encodes as UTF-8; a non-SIP text keeps the code point.
_RELEASE_WIRE = {_HELD + byte: chr(0xDC00 + byte if byte > 0x7F else byte) for byte in range(256)}
_RELEASE_TEXT = {_HELD + byte: chr(byte) for byte in range(256)}
_WIRE = ("utf-8", "surrogateescape")

Resolver = Callable[[str], str]


def clean_cdata(text: str, keep_final_newline: bool) -> str:
    """SIPp's CDATA cleaning, with \\n line ends (CRLF comes at compile time)."""
    text = text.replace("\r\n", "\n")
    stripped_tail = text.rstrip(" \t\n")
    removed_newline = "\n" in text[len(stripped_tail) :]
    lines = [line.strip(" \t") for line in stripped_tail.lstrip(" \t\n").split("\n")]
    cleaned = "\n".join(lines)
    if "\n\n" not in cleaned:
        return cleaned + "\n\n"
    if keep_final_newline and removed_newline and not cleaned.endswith("\n"):
        cleaned += "\n"
    return cleaned


def _hold_hex_escapes(text: str) -> str:
    def held(match: re.Match[str]) -> str:
        first, second = match.group(1), match.group(2)
        if first is None:
            return ""
        return chr(_HELD + int(first + second if second in _HEX_DIGITS else first, 16))

    return _HEX_ESCAPE.sub(held, text) if "\\x" in text else text


def _split(text: str, wire: bool) -> tuple[str, ...]:
    """Literal text at even indexes, keyword tokens at odd ones; [len] becomes a marker."""
    pieces = _KEYWORD.split(text)
    release = _RELEASE_WIRE if wire else _RELEASE_TEXT
    for index in range(0, len(pieces), 2):
        pieces[index] = pieces[index].translate(release)
    for index in range(1, len(pieces), 2):
        token = pieces[index].strip()
        pieces[index] = _LEN_MARK + token if _LEN.match(token) else token
    return tuple(pieces)


def _fill(parts: tuple[str, ...], resolve: Resolver) -> str:
    if len(parts) == 1:
        return parts[0]
    out = [parts[0]]
    for index in range(1, len(parts), 2):
        token = parts[index]
        out.append(token if token.startswith(_LEN_MARK) else resolve(token))
        out.append(parts[index + 1])
    return "".join(out)


def _fill_lines(lines: tuple[tuple[str, ...], ...], resolve: Resolver, keep_first: bool) -> str:
    """Lines joined by CRLF, minus those made only of keywords that all came out empty.

    SIPp drops such a line (e.g. [routes] without a route set, [last_X:] when the last
    message had no X) instead of sending an empty line that would end the headers.
    """
    kept = []
    for index, line in enumerate(lines):
        text = _fill(line, resolve)
        if text or len(line) == 1 or (keep_first and index == 0) or any(line[0::2]):
            kept.append(text)
    return "\r\n".join(kept)


@dataclass(frozen=True)
class MessageTemplate:
    """A message's header lines and body lines, each split around its [keyword] tokens."""

    head_lines: tuple[tuple[str, ...], ...]
    body_lines: tuple[tuple[str, ...], ...] | None  # None: no blank line, the text is all "head"
    method: str | None  # the request method, None for a response or a non-SIP text

    @classmethod
    def compile(cls, text: str, sip: bool = True) -> MessageTemplate:
        """SIP messages get CDATA cleaning and CRLF line ends; plain texts (log lines) stay as written."""
        if not sip:
            return cls((_split(_hold_hex_escapes(text), wire=False),), None, None)
        text = _hold_hex_escapes(clean_cdata(text, keep_final_newline=True)).replace("\n", "\r\n")
        head, separator, body = text.partition("\r\n\r\n")
        head_lines = tuple(_split(line, wire=True) for line in head.split("\r\n"))
        body_lines = tuple(_split(line, wire=True) for line in body.split("\r\n")) if separator else None
        return cls(head_lines, body_lines, _request_method(text))

    @property
    def first_line(self) -> str:
        return "".join(self.head_lines[0])

    @property
    def tokens(self) -> list[str]:
        every = [part for line in (*self.head_lines, *(self.body_lines or ())) for part in line[1::2]]
        return [token for token in every if not token.startswith(_LEN_MARK)]

    def render_text(self, resolve: Resolver) -> str:
        text = "\r\n".join(_fill(line, resolve) for line in self.head_lines)
        if self.body_lines is None:
            return text
        return text + "\r\n\r\n" + "\r\n".join(_fill(line, resolve) for line in self.body_lines)

    def render(self, resolve: Resolver) -> bytes:
        """The wire bytes: keywords replaced, lines a keyword left empty dropped, [len] = body size."""
        head = _fill_lines(self.head_lines, resolve, keep_first=True)
        if self.body_lines is None:
            return self._with_lengths(head, b"", "")
        body = _fill_lines(self.body_lines, resolve, keep_first=False)
        return self._with_lengths(head, body.encode(*_WIRE), "\r\n\r\n")

    @staticmethod
    def _with_lengths(head: str, body: bytes, separator: str) -> bytes:
        if _LEN_MARK in head or _LEN_MARK.encode() in body:
            size = len(body)

            def length(match: re.Match[str]) -> str:
                # SIPp writes the length into five reserved columns ("%5u"): "Content-Length:     0".
                return f"{size + int(match.group(1) or 0):5d}"

            head = _LEN_VALUE.sub(length, head)
            body = _LEN_VALUE.sub(length, body.decode(*_WIRE)).encode(*_WIRE)
        return head.encode(*_WIRE) + separator.encode() + body


def _request_method(text: str) -> str | None:
    first = text.split("\r\n", 1)[0].strip()
    if not first or first.startswith("SIP/"):
        return None
    words = first.split()
    if len(words) == 3 and words[2].upper().startswith("SIP/"):
        return words[0]
    return None
