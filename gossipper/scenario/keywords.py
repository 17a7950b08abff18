"""Which [keywords] a scenario may use (SPEC section 2), checked once at load.

A misspelt keyword in a lab's XML should stop the run before the first packet with
the file and line, not produce a malformed message at call 10,000.
"""

from __future__ import annotations

import re

SIMPLE_KEYWORDS = frozenset(
    {
        "service",
        "remote_ip",
        "remote_ip_type",
        "remote_port",
        "local_ip",
        "local_ip_type",
        "local_port",
        "transport",
        "branch",
        "call_id",
        "call_number",
        "cseq",
        "media_ip",
        "media_ip_type",
        "media_port",
        "auto_media_port",
        "rtpstream_audio_port",
        "peer_tag_param",
        "pid",
        "routes",
        "next_url",
        "users",
        "userid",
        "date",
        "timestamp",
        "clock_tick",
        "dynamic_id",
        "sipp_version",
        "crypto_attribute",  # gossipper: the a=crypto line of -media_srtp, empty (line dropped) otherwise
    }
)
_OFFSET = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<offset>[+-]\d+)?$")
_FIELD = re.compile(r"^field\d+$")
_VARIABLE = re.compile(r"^\$[A-Za-z0-9_.-]+$")
_LAST_HEADER = re.compile(r"^last_[A-Za-z0-9_-]+:?(value)?$")


def keyword_problem(token: str, keys: frozenset[str]) -> str | None:
    """None when [token] is valid, else why not (for a one-line load error)."""
    token = token.strip()
    head, _, rest = token.partition(" ")
    if _VARIABLE.match(token) or _LAST_HEADER.match(token) or token == "last_Request_URI":
        return None
    if _FIELD.match(head):
        return _argument_problem(rest, {"file", "line"}) or _nested_problem(rest, keys)
    if head == "authentication":
        allowed = {"username", "password", "aka_OP", "aka_OPc", "aka_K", "aka_AMF"}
        return _argument_problem(rest, allowed) or _nested_problem(rest, keys)
    if token in keys:
        return None
    match = _OFFSET.match(token)
    if match and match.group("name") in SIMPLE_KEYWORDS | {"len"}:
        return None
    return f"unknown keyword [{token}]"


def _nested_problem(arguments: str, keys: frozenset[str]) -> str | None:
    """The keywords inside an argument value ([authentication username=[field0]]) are checked too."""
    for inner in re.findall(r"\[([^\[\]\r\n]+)\]", arguments):
        problem = keyword_problem(inner, keys)
        if problem is not None:
            return problem
    return None


def _argument_problem(text: str, allowed: set[str]) -> str | None:
    for word in re.findall(r'(\w+)=(?:"[^"]*"|\S+)', text):
        if word not in allowed:
            return f"unknown keyword argument {word!r} (expected {', '.join(sorted(allowed))})"
    return None
