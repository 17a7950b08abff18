"""SIP message parsing, serialisation and the few responses built without a template.

Parsing is deliberately strict about structure (start line, colons, blank line,
Content-Length) because a load generator must report a broken peer instead of
guessing, yet lenient about spelling (LF-only lines, folding, compact names, case),
which real devices vary on. Any bytes at all produce either a message or a
SipParseError, so one bad datagram can never take down the receive path.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from gossipper import pure_python_sip

MAX_HEADER_BYTES = 64 * 1024
MAX_CONTENT_LENGTH = 16 * 1024 * 1024  # framing gives up rather than buffer without bound
# The largest stream message taken unless the receiver says otherwise: SIPp reads each
# message into a buffer this size, and its -buff_size defaults to it.
DEFAULT_MAX_MESSAGE_BYTES = 65_536

# RFC 3261 compact header names (and the common extension ones), keyed lower-case.
_COMPACT = {
    "i": "call-id",
    "f": "from",
    "t": "to",
    "v": "via",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
    "k": "supported",
    "s": "subject",
    "e": "content-encoding",
    "o": "event",
    "r": "refer-to",
    "b": "referred-by",
    "u": "allow-events",
    "x": "session-expires",
}
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
_WSP = " \t"
HeaderIndex = dict[str, tuple[str, ...]]  # canonical name -> every value, in order
Indexed = tuple[list[tuple[str, str]], HeaderIndex]
IndexHeaders = Callable[[bytes, int, int], Indexed]
# first line, index, body, is_request, call_id, status_code, method, cseq_method (None: unknown),
# and where the header section is (its (name, value) pairs are read from there when asked for)
ParseWhole = Callable[
    [bytes],
    tuple[str, HeaderIndex, bytes, bool, str, int | None, str, str | None, int, int] | None,
]
# what a call keeps about a message it sent: is_request, method, status_code, cseq_method, To
SentFacts = tuple[bool, str, int | None, str, str | None]
PeekMessage = Callable[[bytes], SentFacts | None]
_rng = random.Random()  # private: a scenario seeding `random` must not make branches repeat


class SipParseError(ValueError):
    """The bytes are not one well-formed SIP message; the text says what is wrong."""


class MessageTooLarge(SipParseError):
    """A stream message longer than its receiver takes. Its header section is whole, so
    `end` (counted from the buffer's start, as find_message_end's result) says where it
    stops: the stream's framing survives by dropping it unread instead of buffering it."""

    def __init__(self, text: str, end: int) -> None:
        super().__init__(text)
        self.end = end


def _canonical(name: str) -> str:
    known = _CANONICAL.get(name)
    if known is not None:
        return known
    lower = name.lower()
    canonical = _COMPACT.get(lower, lower)
    if len(_CANONICAL) < 4096:  # the names code asks for, and peers send, are few
        _CANONICAL[name] = canonical
    return canonical


_CANONICAL: dict[str, str] = {}


def canonical_header_name(name: str) -> str:
    """The key a header is indexed under (lower case, a compact form spelled out in full), for
    callers that ask every message for the same header (SipMessage.indexed_values)."""
    return _canonical(name)


def _blank_line(data: bytes | bytearray, start: int = 0) -> tuple[int, int] | None:
    """(end of header section, start of body) for CRLF, LF or mixed line endings."""
    crlf = data.find(b"\n\r\n", start)
    lf = data.find(b"\n\n", start, crlf + 2 if crlf >= 0 else len(data))
    if lf >= 0:
        return lf, lf + 2
    if crlf >= 0:
        return crlf, crlf + 3
    return None


def _content_length(raw: str | bytes | bytearray) -> int:
    value = (raw if isinstance(raw, str) else raw.decode("latin-1")).strip(" \t\r")
    if not (value.isascii() and value.isdigit()):
        raise SipParseError(f"non-numeric Content-Length {value[:40]!r}")
    if len(value) > 9 or int(value) > MAX_CONTENT_LENGTH:
        raise SipParseError(f"Content-Length {value[:40]!r} is too large")
    return int(value)


def _check_start_line(line: str) -> None:
    if line.startswith("SIP/2.0 "):
        code = line[8:11]
        if not (
            len(code) == 3
            and code.isascii()
            and code.isdigit()
            and code[0] in "123456"
            and (len(line) == 11 or line[11] == " ")
        ):
            raise SipParseError(f"bad status line {line[:80]!r}")
        return
    parts = line.split(" ")
    if len(parts) != 3 or parts[2] != "SIP/2.0" or not parts[1] or not _is_token(parts[0]):
        raise SipParseError(f"bad request line {line[:80]!r}")


def _is_token(text: str) -> bool:
    return bool(text) and ((text.isascii() and text.isalpha()) or not set(text) - _TOKEN_CHARS)


def _python_header_param(value: str, param: str) -> str | None:
    """A ;param=value of a From/To/Via header, ignoring anything inside <...> (param in lower case)."""
    close = value.find(">") if "<" in value else -1
    prefix = param + "="
    for part in value[close + 1 :].split(";")[1 if close < 0 else 0 :]:
        part = part.strip(_WSP)
        if part[: len(prefix)].lower() == prefix:
            return part[len(prefix) :].strip(_WSP)
    return None


_UNKNOWN = "\x00not worked out"  # a fact not read yet: told apart by identity, never by value


class SipMessage:
    """One SIP message; headers keep their spelling and order so that it round-trips.

    The facts every receiver reads (request or response, method, status, Call-ID, CSeq
    method, tags) are worked out once, on first reading, or given by the native parser as
    it parses; messages are not edited after they are inspected."""

    def __init__(
        self, first_line: str, headers: list[tuple[str, str]] | None, body: bytes = b"", raw: bytes = b""
    ) -> None:
        self.first_line = first_line
        # None: not built yet, read from raw[_section_start:_section_end] when asked for
        # (receivers look headers up by name; the ordered pairs are for the few that re-send)
        self._headers = headers
        self._section_start = 0
        self._section_end = 0
        self._from_raw = False  # parsed from raw: its headers can be read again from there
        self.body = body
        # The bytes it was parsed from, as they came: what SIPp's ereg searches (empty when built here).
        self.raw = raw
        self._index: HeaderIndex | None = None  # built on the first lookup
        self._start_known = False
        self._is_request = False
        self._method = ""
        self._status_code: int | None = None
        self._call_id = _UNKNOWN
        self._cseq_method = _UNKNOWN
        self._from_tag: str | None = _UNKNOWN
        self._to_tag: str | None = _UNKNOWN

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SipMessage):
            return NotImplemented
        return (self.first_line, self.headers, self.body) == (other.first_line, other.headers, other.body)

    __hash__ = None  # type: ignore[assignment]  # equal by value and not frozen, as a dataclass

    def __repr__(self) -> str:
        return f"SipMessage(first_line={self.first_line!r}, headers={self.headers!r}, body={self.body!r})"

    @classmethod
    def parse(cls, data: bytes) -> SipMessage:
        """One whole message: a datagram, or one message cut from a stream by find_message_end."""
        parsed = _parse_whole(data) if _parse_whole is not None else None
        if parsed is None:
            return cls._parse_python(data)
        first_line, index, body, is_request, call_id, status_code, method, cseq_method, start, end = parsed
        message = cls(first_line, None, body, data)
        message._section_start = start
        message._section_end = end
        message._from_raw = True
        message._index = index
        message._start_known = True  # what every receiver reads at once, known from the one pass
        message._is_request = is_request
        message._method = method
        message._status_code = status_code
        message._call_id = call_id
        if cseq_method is not None:
            message._cseq_method = cseq_method
        return message

    @classmethod
    def _parse_python(cls, data: bytes) -> SipMessage:
        """The reference parser: every message the native one declines, and every error's words."""
        if not data:
            raise SipParseError("empty message")
        if data[:1] in (b"\r", b"\n"):
            data = data.lstrip(b"\r\n")  # RFC 3261 7.5: CRLFs before a start line are ignored
            if not data:
                raise SipParseError("keep-alive")
        newline = data.find(b"\n")
        first = data[: newline if newline >= 0 else len(data)]
        try:
            first_line = first.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError:
            raise SipParseError("start line is not UTF-8") from None
        _check_start_line(first_line)
        blank = _blank_line(data, newline) if newline >= 0 else None
        if blank is None:
            raise SipParseError("no blank line after headers")
        head_end, body_start = blank
        headers, index = _index_headers(data, newline + 1, head_end) if head_end > newline else ([], {})
        message = cls(first_line, headers, data[body_start:], data)
        if head_end > newline:
            message._section_start, message._section_end = newline + 1, head_end
        message._from_raw = True
        message._index = index
        length = message.header("Content-Length")
        if length is not None:
            expected = _content_length(length)
            if len(message.body) < expected:
                raise SipParseError(f"Content-Length {expected} but body has {len(message.body)} bytes")
            message.body = message.body[:expected]
        return message

    # ------------------------------------------------------------------ headers
    @property
    def headers(self) -> list[tuple[str, str]]:
        """Every header line as (name as spelled, value), in order."""
        headers = self._headers
        if headers is None:
            headers, self._index = self._read_section()
            self._headers = headers
        return headers

    def compact(self) -> None:
        """Let go of the parsed headers, kept again from raw if anything asks: a call waiting
        for its peer holds its last messages for minutes, and their header strings and index
        were two thirds of a waiting call's memory (SIPp keeps the text alone)."""
        if self._from_raw:
            self._index = None
            self._headers = None

    def _lookup(self) -> HeaderIndex:
        index = self._index
        if index is None:
            if self._from_raw and self._headers is None:
                self._headers, index = self._read_section()
            else:
                index = _index_of(self.headers)
            self._index = index
        return index

    def _read_section(self) -> Indexed:
        """The pairs and index of a parsed message, read again from its header section."""
        start, end = self._section_start, self._section_end
        return _index_headers(self.raw, start, end) if end > start else ([], {})

    def header(self, name: str) -> str | None:
        values = self._lookup().get(_canonical(name))
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        """Every line's value in order, not split on commas (callers know which headers may be)."""
        return list(self.indexed_values(_canonical(name)))

    def indexed_values(self, key: str) -> tuple[str, ...]:
        """header_values of a name already made a key (canonical_header_name)."""
        return self._lookup().get(key, ())

    # ------------------------------------------------------------------ dialog fields
    @property
    def call_id(self) -> str:
        value = self._call_id
        if value is _UNKNOWN:
            value = self._call_id = self.header("Call-ID") or ""
        return value

    @property
    def cseq_number(self) -> int:
        parts = (self.header("CSeq") or "").split()
        number = parts[0] if parts else ""
        return int(number) if number.isascii() and number.isdigit() and len(number) <= 10 else 0

    @property
    def cseq_method(self) -> str:
        value = self._cseq_method
        if value is _UNKNOWN:
            parts = (self.header("CSeq") or "").split()
            value = self._cseq_method = parts[1] if len(parts) > 1 else ""
        return value

    @property
    def from_tag(self) -> str | None:
        value = self._from_tag
        if value is _UNKNOWN:
            header = self.header("From")
            value = self._from_tag = None if header is None else _header_param(header, "tag")
        return value

    @property
    def to_tag(self) -> str | None:
        value = self._to_tag
        if value is _UNKNOWN:
            header = self.header("To")
            value = self._to_tag = None if header is None else _header_param(header, "tag")
        return value

    @property
    def top_via_branch(self) -> str | None:
        value = self.header("Via")
        return None if value is None else _header_param(value.split(",", 1)[0], "branch")

    # ------------------------------------------------------------------ start line
    def _read_start_line(self) -> None:
        line = self.first_line
        self._is_request = bool(line) and not line.startswith("SIP/2.0 ")
        self._method = line.split(" ", 1)[0] if self._is_request else ""
        code = line[8:11]
        self._status_code = int(code) if not self._is_request and code.isascii() and code.isdigit() else None
        self._start_known = True

    @property
    def is_request(self) -> bool:
        if not self._start_known:
            self._read_start_line()
        return self._is_request

    @property
    def method(self) -> str:
        if not self._start_known:
            self._read_start_line()
        return self._method

    @property
    def request_uri(self) -> str | None:
        parts = self.first_line.split(" ")
        return parts[1] if self.is_request and len(parts) > 1 else None

    @property
    def status_code(self) -> int | None:
        if not self._start_known:
            self._read_start_line()
        return self._status_code

    @property
    def reason(self) -> str:
        return "" if self.is_request else self.first_line[12:]

    def __bytes__(self) -> bytes:
        lines = [self.first_line] if self.first_line else []
        lines.extend(f"{name}: {value}" for name, value in self.headers)
        lines.append("\r\n")
        return "\r\n".join(lines).encode("utf-8") + self.body


def _python_index_headers(data: bytes, start: int, end: int) -> Indexed:
    try:
        text = data[start:end].decode("utf-8")
    except UnicodeDecodeError as error:
        raise SipParseError(f"header section is not UTF-8 (byte {start + error.start})") from None
    headers: list[tuple[str, str]] = []
    for line in text.split("\n"):
        if line[-1:] == "\r":
            line = line[:-1]
        if line[:1] in (" ", "\t"):
            if not headers:
                raise SipParseError("continuation line before any header")
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip(_WSP)}" if value else line.strip(_WSP))
            continue
        name, colon, value = line.partition(":")
        name = name.strip(_WSP)
        if not (colon and name):
            raise SipParseError(f"header line without a name and colon: {line[:80]!r}")
        headers.append((name, value.strip(_WSP)))
    return headers, _index_of(headers)


def _index_of(headers: list[tuple[str, str]]) -> HeaderIndex:
    index: HeaderIndex = {}
    for name, value in headers:
        key = _canonical(name)
        index[key] = (*index[key], value) if key in index else (value,)
    return index


def _native_or_python(native: Callable[[bytes, int, int], Indexed | None]) -> IndexHeaders:
    def index_headers(data: bytes, start: int, end: int) -> Indexed:
        return native(data, start, end) or _python_index_headers(data, start, end)

    return index_headers


HeaderParam = Callable[[str, str], str | None]


def _choose_parsers() -> tuple[str, IndexHeaders, ParseWhole | None, PeekMessage | None, HeaderParam]:
    """The native parser, indexer and parameter reader when built, unless GOSSIPPER_SIP_BACKEND=python."""
    if pure_python_sip():
        return "python", _python_index_headers, None, None, _python_header_param
    try:
        from gossipper.sip._sipcore import header_param, index_headers, parse_message, peek_message
    except ImportError:
        return "python", _python_index_headers, None, None, _python_header_param
    return "native", _native_or_python(index_headers), parse_message, peek_message, header_param


def find_message_end(buffer: bytes | bytearray, max_bytes: int = MAX_CONTENT_LENGTH) -> int | None:
    """Length of the first complete message in a stream buffer (leading CRLFs included), or None.

    Only framing is checked here; the message itself is parsed by whoever receives it,
    so a malformed message costs one error, not the connection. A message over max_bytes
    raises MessageTooLarge as soon as its header section is whole, before its body is
    waited for, so that a receiver never holds more than about max_bytes per stream.
    """
    start = 0
    size = len(buffer)
    while start < size and buffer[start] in (13, 10):
        start += 1
    header_limit = min(MAX_HEADER_BYTES, max_bytes)
    blank = _blank_line(buffer, start)
    if blank is None:
        if size - start > header_limit:
            raise SipParseError(f"no blank line within {header_limit} bytes of headers")
        return None
    head_end, body_start = blank
    if head_end - start > MAX_HEADER_BYTES:
        raise SipParseError(f"header section longer than {MAX_HEADER_BYTES} bytes")
    length = 0
    for line in buffer[start:head_end].split(b"\n"):
        if line[:1] not in (b"C", b"c", b"L", b"l"):
            continue
        colon = line.find(b":")
        if colon > 0 and line[:colon].strip(b" \t").lower() in (b"content-length", b"l"):
            length = _content_length(line[colon + 1 :])
            break
    end = body_start + length
    if end - start > max_bytes:
        raise MessageTooLarge(f"a message of {end - start} bytes, over the limit of {max_bytes}", end)
    return end if end <= size else None


def sent_facts(data: bytes) -> SentFacts:
    """The facts a call keeps about a message it renders, once it is known to parse: read
    without building the message when the native core can, else from the whole parse
    (which raises SipParseError, in its words, for a message that does not parse)."""
    peeked = _peek_message(data) if _peek_message is not None else None
    return peeked if peeked is not None else facts_of(SipMessage.parse(data))


def facts_of(message: SipMessage) -> SentFacts:
    return message.is_request, message.method, message.status_code, message.cseq_method, message.header("To")


def make_response(request: SipMessage, code: int, reason: str, to_tag: str | None = None) -> SipMessage:
    """A response that the request's sender will match (RFC 3261 section 8.2.6)."""
    headers = [("Via", via) for via in request.header_values("Via")]
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = request.header(name)
        if value is None:
            continue
        if name == "To" and to_tag and request.to_tag is None:
            value = f"{value};tag={to_tag}"
        headers.append((name, value))
    headers.append(("Content-Length", "0"))
    return SipMessage(f"SIP/2.0 {code} {reason}", headers)


def generate_branch() -> str:
    """A Via branch with RFC 3261's magic cookie, so peers use branch-based matching."""
    return f"z9hG4bK{_rng.getrandbits(64):016x}"


def generate_tag() -> str:
    return f"{_rng.getrandbits(64):016x}"


# which one parses: tests run both
BACKEND, _index_headers, _parse_whole, _peek_message, _header_param = _choose_parsers()
