"""What a scenario may ask of media (an rtp_stream value), and the one place its gaps are filled.

A synthetic stream names only what differs from the run's defaults; `StreamDefaults`
fills the rest the same way for the scale engine, the classic path and `-rtp_send`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from gossipper.media.codecs import Codec


class StreamKind(StrEnum):
    SYNTHETIC = "synthetic"  # codec silence, generated
    FILE = "file"  # a WAV/raw audio file (classic path)
    PATTERN = "pattern"  # SIPp's apattern/vpattern: one byte repeated, echo-checked (classic path)
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    ECHO = "echo"  # send back what arrives (classic path)
    ECHO_START = "echo_start"  # exec rtp_echo="startaudio|updateaudio|startvideo|updatevideo,..."
    ECHO_STOP = "echo_stop"  # exec rtp_echo="stopaudio|stopvideo": fails the call if the echo broke
    ECHO_SWITCH = "echo_switch"  # <rtp_echo value=|variable=>: the run's -rtp_echo on or off

    @property
    def controls_a_stream(self) -> bool:
        """pause, resume and stop act on the call's running stream instead of starting one."""
        return self in (StreamKind.PAUSE, StreamKind.RESUME, StreamKind.STOP)


@dataclass(frozen=True)
class RtpStreamAction:
    """A parsed rtp_stream value (SPEC section 3); None fields are left to the run's defaults."""

    kind: StreamKind
    file: str | None = None
    loops: int = 0  # -1 forever
    payload_type: int | None = None
    codec: Codec | None = None
    freq_ms: int | None = None
    dur_ms: int | None = None
    channels: int | None = None
    payload_name: str | None = None  # FILE/PATTERN: SIPp's NAME/RATE; None: implied by the type
    pattern_id: int = 1  # PATTERN: 1..6, the byte 0xAA..0xFF
    video: bool = False  # PATTERN and its controls, rtp_echo: the video stream, not audio
    switch_value: str | None = None  # ECHO_SWITCH: a number, or a variable's name
    switch_is_variable: bool = False


class MediaAction(Protocol):
    """What one scenario action asks of media (the scenario's exec element is one)."""

    @property
    def rtp(self) -> RtpStreamAction | None: ...
    @property
    def play_pcap_audio(self) -> str | None: ...
    @property
    def play_pcap_video(self) -> str | None: ...


@dataclass(frozen=True)
class SyntheticStream:
    """Everything a synthetic stream needs, no field left open."""

    codec: Codec
    interval_ms: int
    duration_ms: int  # 0: until stopped
    payload_type: int  # on the wire
    channels: int


@dataclass(frozen=True)
class StreamDefaults:
    """The run's choices for what a stream does not say. interval_ms None: the codec's own."""

    codec: Codec
    interval_ms: int | None = None
    duration_ms: int = 0
    payload_type: int | None = None  # None: the codec's own
    channels: int = 1

    def synthetic(self, request: RtpStreamAction | None = None) -> SyntheticStream:
        """The stream `request` asks for, its unset fields taken from these defaults."""
        codec = (request.codec if request else None) or self.codec
        interval = (request.freq_ms if request else None) or self.interval_ms or codec.default_interval_ms
        payload_type = request.payload_type if request and request.payload_type is not None else None
        if payload_type is None:
            payload_type = self.payload_type if self.payload_type is not None else codec.payload_type
        return SyntheticStream(
            codec=codec,
            interval_ms=interval,
            duration_ms=(request.dur_ms if request else None) or self.duration_ms,
            payload_type=payload_type,
            channels=(request.channels if request else None) or self.channels,
        )
