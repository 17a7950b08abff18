"""The part of SDP (RFC 4566) a load generator needs: where the peer wants audio.

The remote RTP address is the connection address (c=, media-level over session-level,
RFC 4566 section 5.7) and the port of the first m=audio line (section 5.14). A body
may be multipart (RFC 2046 section 5.1, e.g. SDP beside ISUP or a PIDF): the SDP is
then its first application/sdp part, as SIPp's get_body finds it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache

_SDP_TYPE = b"application/sdp"


def sdp_of_body(body: bytes, content_type: str | None = None) -> bytes:
    """The SDP in a message body: the body itself, or the application/sdp part of a multipart one.

    The boundary comes from the Content-Type when given, else from the body's first line
    (a multipart body opens with "--boundary"). A body with no SDP part is returned as it
    is, so the SDP parser names what is missing.
    """
    boundary = _boundary(content_type) if content_type else None
    if boundary is None:
        if not body.startswith(b"--"):
            return body
        boundary = body.split(b"\n", 1)[0].strip()[2:]
    if not boundary:
        return body
    for part in body.split(b"--" + boundary)[1:]:
        if part.startswith(b"--"):
            break  # the closing delimiter
        head, separator, content = part.lstrip(b"\r\n").partition(b"\r\n\r\n")
        if not separator:
            head, separator, content = part.lstrip(b"\n").partition(b"\n\n")
        if _SDP_TYPE in head.lower() and _part_type(head) == _SDP_TYPE:
            return content.rstrip(b"\r\n") + b"\r\n"
    return body


def _boundary(content_type: str) -> bytes | None:
    if not content_type.strip().lower().startswith("multipart/"):
        return None
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "boundary":
            return value.strip().strip('"').encode()
    return None


def _part_type(head: bytes) -> bytes:
    for line in head.splitlines():
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-type":
            return value.split(b";")[0].strip().lower()
    return b""


@dataclass(frozen=True)
class AudioEndpoint:
    address: str
    port: int
    payload_types: tuple[int, ...]


def parse_audio_endpoint(body: bytes) -> AudioEndpoint:
    """Raise ValueError naming what is missing or wrong in the SDP."""
    text = body.decode("utf-8", errors="replace")
    session_address: str | None = None
    audio: AudioEndpoint | None = None
    media_address: str | None = None
    in_audio = False
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if line.startswith("m="):
            if audio is not None:
                break  # only the first m=audio section matters
            in_audio = line.startswith("m=audio")
            if in_audio:
                audio = _parse_media_line(line)
        elif line.startswith("c="):
            address = _parse_connection_line(line)
            if audio is None and not in_audio:
                session_address = address
            elif in_audio:
                media_address = address
    if audio is None:
        raise ValueError("SDP has no m=audio line")
    chosen = media_address or session_address
    if chosen is None:
        raise ValueError("SDP has no c= connection line for audio")
    if audio.port == 0:
        raise ValueError("SDP m=audio port is 0 (stream rejected)")
    return AudioEndpoint(chosen, audio.port, audio.payload_types)


def _parse_media_line(line: str) -> AudioEndpoint:
    fields = line[2:].split()
    if len(fields) < 3:
        raise ValueError(f"SDP media line is incomplete: {line!r}")
    port_text = fields[1].split("/")[0]
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"SDP m=audio port is not a port number: {fields[1]!r}")
    payload_types = tuple(int(f) for f in fields[3:] if f.isdigit())
    return AudioEndpoint("", int(port_text), payload_types)


@lru_cache(maxsize=4096)
def _parse_connection_line(line: str) -> str:
    """Cached: every call's answer repeats the same few c= lines, and ip_address() is slow."""
    fields = line[2:].split()
    if len(fields) != 3 or fields[0] != "IN" or fields[1] not in ("IP4", "IP6"):
        raise ValueError(f"SDP connection line is not 'c=IN IP4|IP6 address': {line!r}")
    address = fields[2].split("/")[0]
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"SDP connection address is not an IP address: {address!r}") from None
    return address
