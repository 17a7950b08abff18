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

_KEYWORD = re.compile(r"\[([^\[\]\r\n]+)\]")
_LEN = re.compile(r"^len(?P<offset>[+-]\d+)?$")
_LEN_MARK = "\x00len"
_LEN_VALUE = re.compile("\x00lenlen([+-]\\d+)?")
# SIPp (message.cpp) reads "\x" and the two characters after it: a byte from the first
# one or two of them when the first is a hex digit, nothing otherwise.
_HEX_ESCAPE = re.compile(r"\\x(.?)(.?)", re.DOTALL)
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
# Wire bytes above 0x7f that a \xNN escape names travel in the text as lone surrogates
# (Python's surrogateescape), so UTF-8 text around them still encodes as UTF-8.
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


def decode_hex_escapes(text: str, wire: bool) -> str:
    """SIPp's \\xNN escapes decoded; above 0x7f a raw byte on the wire, else that code point."""

    def byte(match: re.Match[str]) -> str:
        first, second = match.group(1), match.group(2)
        if first not in _HEX_DIGITS:
            return ""
        value = int(first + second, 16) if second in _HEX_DIGITS else int(first, 16)
        return chr(0xDC00 + value) if wire and value > 0x7F else chr(value)

    return _HEX_ESCAPE.sub(byte, text) if "\\x" in text else text


def _split(text: str, wire: bool) -> tuple[str, ...]:
    """Literal text at even indexes, keyword tokens at odd ones; [len] becomes a marker.

    Escapes are decoded in the literal text only, after the keywords are found, so that
    \\x5B writes a bracket that opens no keyword, as in SIPp.
    """
    pieces = _KEYWORD.split(text)
    for index in range(0, len(pieces), 2):
        pieces[index] = decode_hex_escapes(pieces[index], wire)
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
            return cls((_split(text, wire=False),), None, None)
        text = clean_cdata(text, keep_final_newline=True).replace("\n", "\r\n")
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
                return str(size + int(match.group(1) or 0))

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
