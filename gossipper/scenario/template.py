"""Message templates: the text of a <send> with its [keywords], compiled once at load.

Whitespace is cleaned the way SIPp cleans CDATA (leading indentation and trailing
blanks dropped, lines joined by CRLF) and `\\xNN` escapes become the byte they name,
so that a scenario written for SIPp puts the same bytes on the wire. Keyword values
come from a resolver the engine passes in, which keeps this module free of call state.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
# Content-Length values as SIPp writes them, made once: formatting one per message was a
# measurable part of rendering
_PADDED_LENGTHS = [f"{size:5d}" for size in range(2048)]

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


@dataclass(frozen=True)
class _Chunk:
    """Consecutive lines rendered as one join: literal pieces with the tokens' places marked.

    A line made only of keywords is a chunk of its own, because SIPp drops it when every
    keyword came out empty (e.g. [routes] without a route set, [last_X:] when the last
    message had no X) instead of sending an empty line that would end the headers."""

    pieces: tuple[str, ...]  # the tokens' own text stands at the slot positions
    slots: tuple[tuple[int, str], ...]  # (position in pieces, token)
    droppable: bool


def _chunks(lines: tuple[tuple[str, ...], ...], keep_first: bool) -> tuple[_Chunk, ...]:
    chunks: list[_Chunk] = []
    pending: list[str] = []  # pieces of the chunk being gathered, CRLFs between its lines
    slots: list[tuple[int, str]] = []
    started = False  # a chunk is open, even if its lines so far are empty

    def close(droppable: bool) -> None:
        chunks.append(_Chunk(tuple(pending), tuple(slots), droppable))
        pending.clear()
        slots.clear()

    for index, line in enumerate(lines):
        droppable = len(line) > 1 and not any(line[0::2]) and not (keep_first and index == 0)
        if droppable and started:
            close(droppable=False)
            started = False
        if started:
            pending.append("\r\n")
        started = True
        for position, part in enumerate(line):
            if position % 2 and not part.startswith(_LEN_MARK):
                slots.append((len(pending), part))
                pending.append(part)
            elif part:
                pending.append(part)
        if droppable:
            close(droppable=True)
            started = False
    if started:
        close(droppable=False)
    return tuple(chunks)


Slot = Callable[[Any], str]
# pieces, filled slots, droppable, [len] places ((position in pieces, offset))
_BoundChunk = tuple[list[str], tuple[tuple[int, Slot], ...], bool, tuple[tuple[int, int], ...]]


class BoundTemplate:
    """A template whose tokens are tied once to the functions that answer them.

    Every message of every call is rendered from one of these, so the per-message work
    is filling slots and joining, with no token lookup or line scanning. [len] in the
    headers is a place filled with the body's size once the body is rendered; only a
    [len] inside the body itself takes the slower search and replace."""

    __slots__ = ("_body", "_body_has_length", "_head")

    def __init__(
        self,
        template: MessageTemplate,
        slot_for: Callable[[str], Slot],
        constant_for: Callable[[str], str | None] = lambda _token: None,
    ) -> None:
        def bound(chunks: tuple[_Chunk, ...]) -> tuple[_BoundChunk, ...]:
            result = []
            for chunk in chunks:
                pieces, slots = list(chunk.pieces), []
                for index, token in chunk.slots:
                    constant = constant_for(token)
                    if constant is None:
                        slots.append((index, slot_for(token)))
                    else:  # the same for every call of the run: written in once
                        pieces[index] = constant
                lengths = tuple(
                    (index, int(match.group(1) or 0))
                    for index, piece in enumerate(pieces)
                    if (match := _LEN_VALUE.fullmatch(piece)) is not None
                )
                result.append((pieces, tuple(slots), chunk.droppable, lengths))
            return tuple(result)

        self._head = bound(template.head_chunks)
        self._body = bound(template.body_chunks) if template.body_chunks is not None else None
        self._body_has_length = any(lengths for _, _, _, lengths in self._body or ())

    @staticmethod
    def _section(chunks: tuple[_BoundChunk, ...], context: Any, size: int) -> str:
        """The chunks filled in; [len] places get size, or keep their marker when size < 0."""
        kept = []
        for pieces, slots, droppable, lengths in chunks:
            if slots or (lengths and size >= 0):
                pieces = pieces.copy()
                for index, slot in slots:
                    pieces[index] = slot(context)
                if size >= 0:
                    for index, offset in lengths:
                        # SIPp writes the length into five reserved columns ("%5u"): "Content-Length:     0".
                        pieces[index] = _padded_length(size + offset)
            text = "".join(pieces)
            if text or not droppable:
                kept.append(text)
        return "\r\n".join(kept)

    def render(self, context: Any) -> bytes:
        """The wire bytes: keywords replaced, lines a keyword left empty dropped, [len] = body size."""
        if self._body is None:
            return self._section(self._head, context, 0).encode(*_WIRE)
        if self._body_has_length:
            head = self._section(self._head, context, -1)
            return _with_lengths(head, self._section(self._body, context, -1).encode(*_WIRE), "\r\n\r\n")
        body = self._section(self._body, context, -1).encode(*_WIRE)
        return self._section(self._head, context, len(body)).encode(*_WIRE) + b"\r\n\r\n" + body


def _padded_length(size: int) -> str:
    return _PADDED_LENGTHS[size] if 0 <= size < len(_PADDED_LENGTHS) else f"{size:5d}"


def _with_lengths(head: str, body: bytes, separator: str) -> bytes:
    if _LEN_MARK in head or _LEN_MARK.encode() in body:
        size = len(body)

        def length(match: re.Match[str]) -> str:
            return _padded_length(size + int(match.group(1) or 0))

        head = _LEN_VALUE.sub(length, head)
        body = _LEN_VALUE.sub(length, body.decode(*_WIRE)).encode(*_WIRE)
    return head.encode(*_WIRE) + separator.encode() + body


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

    @functools.cached_property
    def head_chunks(self) -> tuple[_Chunk, ...]:
        return _chunks(self.head_lines, keep_first=True)

    @functools.cached_property
    def body_chunks(self) -> tuple[_Chunk, ...] | None:
        return _chunks(self.body_lines, keep_first=False) if self.body_lines is not None else None

    def bind(
        self, slot_for: Callable[[str], Slot], constant_for: Callable[[str], str | None] = lambda _token: None
    ) -> BoundTemplate:
        """Tokens tied to their answers once, for a template rendered over and over; a token
        constant_for answers is the same for every rendering and is written in at once."""
        return BoundTemplate(self, slot_for, constant_for)

    def render(self, resolve: Resolver) -> bytes:
        """The wire bytes for one rendering, each token answered by resolve."""
        return self.bind(lambda token: lambda _context: resolve(token)).render(None)


def _request_method(text: str) -> str | None:
    first = text.split("\r\n", 1)[0].strip()
    if not first or first.startswith("SIP/"):
        return None
    words = first.split()
    if len(words) == 3 and words[2].upper().startswith("SIP/"):
        return words[0]
    return None
