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
        "last_cseq_number",
        "last_message",
        "crypto_attribute",  # gossipper: the a=crypto line of -media_srtp, empty (line dropped) otherwise
    }
)
# SIPp keywords (message.cpp) gossipper cannot fill, refused at load with the reason.
UNSUPPORTED_KEYWORDS: dict[str, str] = {
    "remote_host": "the remote host name is not kept apart from its address",
    "server_ip": "-i server address keywords are not implemented",
    "rtpstream_video_port": "rtp_stream video is not implemented",
    "msg_index": "SIPp's message index is not implemented",
    "tdmmap": "-tdmmap is not implemented",
    "file": "[file name=...] message inclusion is not implemented",
    **{
        f"crypto{name}{media}": "SIPp's per-suite SRTP keywords are not implemented; use [crypto_attribute]"
        for media in ("audio", "video")
        for name in (
            "tag1", "tag2", "keyparams1", "keyparams2",
            "suiteaescm128sha1801", "suiteaescm128sha1802", "suiteaescm128sha1321", "suiteaescm128sha1322",
            "suitenullsha1801", "suitenullsha1802", "suitenullsha1321", "suitenullsha1322",
        )
    },
    **{
        f"ue{suite}{media}": "SIPp's per-suite SRTP keywords are not implemented; use [crypto_attribute]"
        for media in ("audio", "video")
        for suite in ("aescm128sha1801", "aescm128sha1802", "aescm128sha1321", "aescm128sha1322")
    },
}  # fmt: skip
AUTHENTICATION_ARGUMENTS = frozenset({"username", "password"})
_OFFSET = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<offset>[+-]\d+)?$")
_FIELD = re.compile(r"^field\d+$")
_VARIABLE = re.compile(r"^\$[A-Za-z0-9_.-]+$")
_LAST_HEADER = re.compile(r"^last_[A-Za-z0-9_-]+:?(value)?$")


def keyword_problem(token: str, keys: frozenset[str]) -> str | None:
    """None when [token] is valid, else why not (for a one-line load error)."""
    token = token.strip()
    head, _, rest = token.partition(" ")
    bare = _OFFSET.match(head)
    reason = UNSUPPORTED_KEYWORDS.get(bare.group("name") if bare else head)
    if reason is not None:
        return f"keyword [{head}] is not supported: {reason}"
    if _VARIABLE.match(token) or _LAST_HEADER.match(token) or token == "last_Request_URI":
        return None
    if _FIELD.match(head):
        return _argument_problem(rest, {"file", "line"}) or _nested_problem(rest, keys)
    if head == "fill":
        if not fill_arguments(rest).get("variable"):
            return "[fill] needs variable= (the variable holding the length)"
        return _argument_problem(rest, {"text", "variable"})
    if head == "authentication":
        if re.search(r"\baka_\w+=", rest):
            return "[authentication aka_...] is not supported: AKA authentication is not implemented"
        return _argument_problem(rest, set(AUTHENTICATION_ARGUMENTS)) or _nested_problem(rest, keys)
    if token in keys:
        return None
    match = _OFFSET.match(token)
    if match and match.group("name") in SIMPLE_KEYWORDS | {"len"}:
        return None
    return f"unknown keyword [{token}]"


def fill_arguments(text: str) -> dict[str, str]:
    """[fill text=T variable=V]: V's value is the length to fill with T repeated (T: "X")."""
    return {
        match.group(1): match.group(2) if match.group(2) is not None else match.group(3)
        for match in re.finditer(r'(\w+)=(?:"([^"]*)"|(\S+))', text)
    }


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
