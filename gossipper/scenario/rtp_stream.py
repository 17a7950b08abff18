"""Parsing of exec rtp_stream="..." values (SPEC section 3), checked at load."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from gossipper.errors import InvalidValue
from gossipper.media.codecs import check_duration, check_interval, lookup_codec
from gossipper.media.streams import RtpStreamAction, StreamKind

CONTROL_WORDS = {
    kind.value: kind for kind in (StreamKind.PAUSE, StreamKind.RESUME, StreamKind.STOP, StreamKind.ECHO)
}
_In = TypeVar("_In")
_Out = TypeVar("_Out")


def parse_rtp_stream(value: str) -> RtpStreamAction:
    """synthetic[,loops[,pt[,codec[,freq_ms[,dur_ms[,channels]]]]]], FILE[,loops[,pt]] or a control word.

    Raises ValueError naming the bad field.
    """
    fields = [part.strip() for part in value.split(",")]
    head = fields[0]
    if not head:
        raise ValueError("rtp_stream: empty value")
    if head.lower() in CONTROL_WORDS and len(fields) == 1:
        return RtpStreamAction(kind=CONTROL_WORDS[head.lower()])
    if head.lower() == "synthetic":
        if len(fields) > 7:
            raise ValueError("rtp_stream: synthetic takes at most 6 fields after 'synthetic'")
        padded = [*fields[1:], "", "", "", "", "", ""]
        loops, pt, codec_text, freq, dur, channels = padded[:6]
        codec = _checked("codec", lookup_codec, codec_text) if codec_text else None
        freq_ms = _checked("freq_ms", check_interval, _int(freq, "freq_ms")) if freq else None
        dur_ms = _checked("dur_ms", check_duration, _int(dur, "dur_ms")) if dur else None
        channel_count = _int(channels, "channels") if channels else None
        if channel_count is not None and not 1 <= channel_count <= 8:
            raise ValueError(f"rtp_stream: channels must be 1..8, got {channel_count}")
        return RtpStreamAction(
            kind=StreamKind.SYNTHETIC,
            loops=_int(loops, "loops") if loops else 0,
            payload_type=_payload_type(pt) if pt else None,
            codec=codec,
            freq_ms=freq_ms,
            dur_ms=dur_ms,
            channels=channel_count,
        )
    if len(fields) > 3:
        raise ValueError("rtp_stream: a file stream is FILE[,loops[,payload_type]]")
    padded = [*fields[1:], "", ""]
    return RtpStreamAction(
        kind=StreamKind.FILE,
        file=head,
        loops=_int(padded[0], "loops") if padded[0] else 1,
        payload_type=_payload_type(padded[1]) if padded[1] else None,
    )


def _checked(name: str, check: Callable[[_In], _Out], value: _In) -> _Out:
    """The media layer's check of one field, its complaint worded for the scenario author."""
    try:
        return check(value)
    except InvalidValue as error:
        raise ValueError(f"rtp_stream {name}: {error.message}") from None


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"rtp_stream: {name} must be an integer, got {text!r}") from None


def _payload_type(text: str) -> int:
    value = _int(text, "payload_type")
    if not 0 <= value <= 127:
        raise ValueError(f"rtp_stream: payload_type must be 0..127, got {value}")
    return value
