"""[authentication]: the Authorization line answering the call's last 401/407, as SIPp builds it.

Rendering a message leaves a marker where [authentication ...] stood, holding the user name
and password it names (their own [keywords] already filled in); once the whole message is
rendered, the marker becomes the Authorization (after a 401) or Proxy-Authorization (after a
407) header, because an auth-int answer hashes the body as sent. The same happens when an
-inf field's value is a whole `[authentication username=... password=...]` text, SIPp's way
of giving every user of a CSV its own credentials.

As in SIPp (call.cpp): the user name defaults to -au, else -s; the password to -ap; the
digest URI is sip:[remote_ip]:[remote_port] (sip:VALUE with -auth_uri VALUE), not the
Request-URI; the nonce count restarts at 1 with each new challenge and counts the answers
given to it.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from gossipper.engine.context import CallContext
from gossipper.sip.digest import digest_authorization

MARK = "\x00gossipper-authentication"  # the start of every marker
_SEPARATOR = "\x01"
_END = "\x00"
_MARKER = re.compile(
    re.escape(MARK + _SEPARATOR).encode()
    + rb"([^\x00\x01]*)\x01([^\x00\x01]*)"
    + re.escape(_END).encode()
    + rb"(\r\n)?"
)
# A keyword's arguments, SIPp's getKeywordParam: name=value, name="quoted value" or name=0xHEX.
_ARGUMENT = re.compile(r'(\w+)=("([^"]*)"|\S+?)(?=\s+\w+=|\s*$)')
_EMBEDDED = re.compile(r"\[authentication(\s[^\]]*)?\]")

Render = Callable[[str], str]


def marker(username: str, password: str) -> str:
    """What [authentication] renders to until the message is complete."""
    return f"{MARK}{_SEPARATOR}{_clean(username)}{_SEPARATOR}{_clean(password)}{_END}"


def arguments(text: str) -> dict[str, str]:
    """username=/password= (and SIPp's other arguments) of an [authentication ...] text."""
    found = {}
    for match in _ARGUMENT.finditer(text.strip()):
        name, raw, quoted = match.groups()
        value = quoted if quoted is not None else raw
        if quoted is None and value.startswith("0x"):
            value = bytes.fromhex(value[2:]).decode("latin-1")
        found[name] = value
    return found


def embedded_markers(value: str, render: Render) -> str:
    """An -inf field's value with any `[authentication ...]` text in it turned into a marker."""
    if "[authentication" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        given = arguments(match.group(1) or "")
        return marker(render(given.get("username", "")), render(given.get("password", "")))

    return _EMBEDDED.sub(replace, value)


def authorize(
    data: bytes, context: CallContext, default_user: str, default_password: str, auth_uri: str | None = None
) -> tuple[bytes, str | None]:
    """The message with its marker replaced by the answer to the call's challenge, and why not
    when it could not be (no challenge yet, an unsupported one, two markers): the line is then
    left out and the reason is for the error log."""
    markers = list(_MARKER.finditer(data))
    if not markers:
        return data, None
    if len(markers) > 1:
        return _MARKER.sub(b"", data), "only one [authentication] per message is supported (as in SIPp)"
    challenge = context.challenge
    if challenge is None:
        reason = '[authentication] with no challenge to answer (no 401/407 received with auth="true")'
        return _MARKER.sub(b"", data), reason
    if context.answered_challenge is not challenge:
        context.answered_challenge, context.nonce_count = challenge, 0
    context.nonce_count += 1
    header_name, value = challenge
    found = markers[0]
    username = found.group(1).decode("utf-8", errors="replace") or default_user
    password = found.group(2).decode("utf-8", errors="replace") or default_password
    method = data.split(b" ", 1)[0].decode("ascii", errors="replace")
    host, port = context.shown_remote
    uri = f"sip:{auth_uri}" if auth_uri else f"sip:{'[' + host + ']' if ':' in host else host}:{port}"
    body = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
    try:
        answer = digest_authorization(
            value, method, uri, username, password, body, nonce_count=context.nonce_count
        )
    except ValueError as error:
        return _MARKER.sub(b"", data), f"cannot answer the challenge: {error}"
    line = f"{header_name}: {answer}".encode()
    return data[: found.start()] + line + (found.group(3) or b"") + data[found.end() :], None


def _clean(text: str) -> str:
    """A marker's fields cannot hold its own separators."""
    return text.replace(_END, "").replace(_SEPARATOR, "")
