"""Parsing of exec rtp_stream="..." and rtp_echo="..." values (SPEC section 3), checked at load.

Every form SIPp's scenario.cpp/actions.cpp takes is read here: FILE[,loops[,pt[,name]]],
apattern|vpattern[,id[,pt[,name]]], pause/resume (of a file or an audio pattern),
pause|resume apattern|vpattern, and rtp_echo's start/update/stop audio|video; plus
gossipper's own synthetic[,...], stop and echo.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from gossipper.errors import InvalidValue
from gossipper.media.codecs import check_duration, check_interval, lookup_codec, packet_plan
from gossipper.media.streams import RtpStreamAction, StreamKind

CONTROL_WORDS = {
    "pause": RtpStreamAction(StreamKind.PAUSE),
    "resume": RtpStreamAction(StreamKind.RESUME),
    "stop": RtpStreamAction(StreamKind.STOP),
    "echo": RtpStreamAction(StreamKind.ECHO),
    # SIPp's pattern controls: one audio stream at a time, so an audio pattern is paused
    # like any audio stream; the video pattern is a stream of its own.
    "pauseapattern": RtpStreamAction(StreamKind.PAUSE),
    "resumeapattern": RtpStreamAction(StreamKind.RESUME),
    "pausevpattern": RtpStreamAction(StreamKind.PAUSE, video=True),
    "resumevpattern": RtpStreamAction(StreamKind.RESUME, video=True),
}
PATTERN_HEADS = {"apattern": False, "vpattern": True}  # head -> video
PATTERN_IDS = range(1, 7)
ECHO_WORDS = {
    "startaudio": (StreamKind.ECHO_START, False),
    "updateaudio": (StreamKind.ECHO_START, False),
    "stopaudio": (StreamKind.ECHO_STOP, False),
    "startvideo": (StreamKind.ECHO_START, True),
    "updatevideo": (StreamKind.ECHO_START, True),
    "stopvideo": (StreamKind.ECHO_STOP, True),
}
_In = TypeVar("_In")
_Out = TypeVar("_Out")


def parse_rtp_stream(value: str) -> RtpStreamAction:
    """synthetic[,loops[,pt[,codec[,freq_ms[,dur_ms[,channels]]]]]], FILE[,loops[,pt[,name]]],
    apattern|vpattern[,id[,pt[,name]]] or a control word.

    Raises ValueError naming the bad field.
    """
    fields = [part.strip() for part in value.split(",")]
    head = fields[0]
    if not head:
        raise ValueError("rtp_stream: empty value")
    if head.lower() in CONTROL_WORDS and len(fields) == 1:
        return CONTROL_WORDS[head.lower()]
    if head.lower() == "synthetic":
        return _synthetic(fields[1:])
    if head in PATTERN_HEADS:
        if len(fields) > 4:
            raise ValueError(f"rtp_stream: a pattern is {head}[,pattern_id[,payload_type[,payload_name]]]")
        pattern_text, pt_text, name = [*fields[1:], "", "", ""][:3]
        pattern_id = _int(pattern_text, "pattern_id") if pattern_text else 1
        if pattern_id not in PATTERN_IDS:
            raise ValueError(f"rtp_stream: pattern_id must be 1..6, got {pattern_id}")
        payload_type, payload_name = _payload(pt_text, name, "rtp_stream")
        return RtpStreamAction(
            kind=StreamKind.PATTERN,
            loops=-1,
            payload_type=payload_type,
            payload_name=payload_name,
            pattern_id=pattern_id,
            video=PATTERN_HEADS[head],
        )
    if len(fields) > 4:
        raise ValueError("rtp_stream: a file stream is FILE[,loops[,payload_type[,payload_name]]]")
    loops_text, pt_text, name = [*fields[1:], "", "", ""][:3]
    payload_type, payload_name = _payload(pt_text, name, "rtp_stream")
    return RtpStreamAction(
        kind=StreamKind.FILE,
        file=head,
        loops=_int(loops_text, "loops") if loops_text else 1,
        payload_type=payload_type,
        payload_name=payload_name,
    )


def parse_rtp_echo(value: str) -> RtpStreamAction:
    """exec rtp_echo="startaudio|updateaudio|stopaudio|startvideo|updatevideo|stopvideo[,pt[,name]]".

    Raises ValueError naming the bad field.
    """
    fields = [part.strip() for part in value.split(",")]
    word = ECHO_WORDS.get(fields[0])
    if word is None:
        raise ValueError(f"rtp_echo: {fields[0]!r} is not one of {', '.join(ECHO_WORDS)}")
    if len(fields) > 3:
        raise ValueError(f"rtp_echo: {fields[0]} takes at most payload_type,payload_name")
    pt_text, name = [*fields[1:], "", ""][:2]
    payload_type, payload_name = _payload(pt_text, name, "rtp_echo")
    kind, video = word
    return RtpStreamAction(kind=kind, payload_type=payload_type, payload_name=payload_name, video=video)


def parse_rtp_echo_switch(value: str | None, variable: str | None) -> RtpStreamAction:
    """<rtp_echo value="N"/> or <rtp_echo variable="v"/>: -rtp_echo's echo off when 0, on otherwise."""
    if (value is None) == (variable is None):
        raise ValueError("<rtp_echo> needs exactly one of value= or variable=")
    if value is not None:
        try:
            float(value)
        except ValueError:
            raise ValueError(f"<rtp_echo> value must be a number, got {value!r}") from None
        return RtpStreamAction(kind=StreamKind.ECHO_SWITCH, switch_value=value)
    return RtpStreamAction(kind=StreamKind.ECHO_SWITCH, switch_value=variable, switch_is_variable=True)


def _synthetic(fields: list[str]) -> RtpStreamAction:
    if len(fields) > 6:
        raise ValueError("rtp_stream: synthetic takes at most 6 fields after 'synthetic'")
    loops, pt, codec_text, freq, dur, channels = [*fields, "", "", "", "", "", ""][:6]
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


def _payload(pt_text: str, name: str, what: str) -> tuple[int | None, str | None]:
    """A payload type and name as SIPp reads them; with no type, the run's -rtp_payload decides later."""
    if not pt_text:
        if name:
            raise ValueError(f"{what}: a payload name needs its payload type before it")
        return None, None
    payload_type = _payload_type(pt_text)
    try:
        plan = packet_plan(payload_type, name or None)
    except ValueError as error:
        raise ValueError(f"{what}: {error}") from None
    return payload_type, plan.payload_name


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
