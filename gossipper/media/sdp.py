"""The part of SDP (RFC 4566) a load generator needs: where the peer wants audio.

The remote RTP address is the connection address (c=, media-level over session-level,
RFC 4566 section 5.7) and the port of the first m=audio line (section 5.14).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache


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
