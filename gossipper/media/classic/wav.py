"""Audio files for rtp_stream=FILE: WAV holding G.711/G.722, or raw codec bytes.

Like SIPp, nothing is transcoded: the file must already be in the codec the RTP
carries, 8 kHz mono (G.722's RTP clock is 8 kHz too, whatever its WAV header says).
A file that cannot be played fails at load with one line naming it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from gossipper.errors import FileProblem

FRAME_MS = 20
RTP_CLOCK_HZ = 8000
SAMPLES_PER_FRAME = RTP_CLOCK_HZ * FRAME_MS // 1000


@dataclass(frozen=True)
class _Codec:
    name: str
    frame_bytes: int  # bytes per 20 ms
    silence_byte: int


# The payload types a raw file may declare: the 8 kHz codecs SIPp's rtp_stream plays.
RAW_CODECS = {
    0: _Codec("PCMU", 160, 0xFF),
    8: _Codec("PCMA", 160, 0xD5),
    9: _Codec("G722", 160, 0x00),
    18: _Codec("G729", 20, 0x00),
}
_WAV_FORMATS = {0x0007: 0, 0x0006: 8, 0x0065: 9, 0x028F: 9}  # WAV format tag -> payload type
_WAV_EXTENSIBLE = 0xFFFE
_CHUNK = struct.Struct("<4sI")
_FMT = struct.Struct("<HHIIHH")  # tag, channels, sample rate, byte rate, block align, bits


@dataclass(frozen=True)
class AudioFile:
    """A whole file's payload, cut into frames on the fly by the sender."""

    path: str
    payload: bytes
    payload_type: int  # what the file holds; an rtp_stream payload type overrides it on the wire
    frame_bytes: int
    silence_byte: int

    @property
    def frame_count(self) -> int:
        return -(-len(self.payload) // self.frame_bytes)

    def frame(self, index: int) -> bytes:
        """Frame index of the file; the last one padded with silence to a whole frame."""
        chunk = self.payload[index * self.frame_bytes : (index + 1) * self.frame_bytes]
        return chunk + bytes((self.silence_byte,)) * (self.frame_bytes - len(chunk))


def load_audio_file(path: str, raw_payload_type: int) -> AudioFile:
    """WAV when the file says RIFF/WAVE or is named *.wav, else raw bytes of raw_payload_type."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise FileProblem(f"{path}: cannot read audio file ({error.strerror})") from None
    if data[:4] == b"RIFF" or path.lower().endswith(".wav"):
        payload_type, payload = _parse_wav(path, data)
    else:
        if raw_payload_type not in RAW_CODECS:
            choices = ", ".join(f"{pt} ({codec.name})" for pt, codec in RAW_CODECS.items())
            raise FileProblem(
                f"{path}: raw audio needs payload type {choices}, got {raw_payload_type} (or give a WAV file)"
            )
        payload_type, payload = raw_payload_type, data
    if not payload:
        raise FileProblem(f"{path}: the audio file holds no audio")
    codec = RAW_CODECS[payload_type]
    return AudioFile(path, payload, payload_type, codec.frame_bytes, codec.silence_byte)


def _parse_wav(path: str, data: bytes) -> tuple[int, bytes]:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise FileProblem(f"{path}: not a WAV file (no RIFF/WAVE header)")
    fmt: tuple[int, ...] | None = None
    offset = 12
    while offset + _CHUNK.size <= len(data):
        chunk_id, size = _CHUNK.unpack_from(data, offset)
        body = data[offset + _CHUNK.size : offset + _CHUNK.size + size]
        if chunk_id == b"fmt ":
            if len(body) < _FMT.size:
                raise FileProblem(f"{path}: WAV fmt chunk is truncated")
            fmt = _FMT.unpack_from(body)
            if fmt[0] == _WAV_EXTENSIBLE and len(body) >= 26:
                fmt = (struct.unpack_from("<H", body, 24)[0], *fmt[1:])  # sub-format GUID's first word
        elif chunk_id == b"data":
            if fmt is None:
                raise FileProblem(f"{path}: WAV data chunk comes before any fmt chunk")
            return _check_format(path, fmt), body  # a short data chunk plays what is there
        offset += _CHUNK.size + size + (size & 1)  # chunks are padded to an even size
    raise FileProblem(f"{path}: WAV file has no {'data' if fmt else 'fmt'} chunk")


def _check_format(path: str, fmt: tuple[int, ...]) -> int:
    tag, channels, rate = fmt[0], fmt[1], fmt[2]
    payload_type = _WAV_FORMATS.get(tag)
    if payload_type is None:
        raise FileProblem(
            f"{path}: WAV format 0x{tag:04x} is not G.711 mu-law, G.711 A-law or G.722; "
            "rtp_stream sends the file's bytes as they are (convert it, e.g. sox -e u-law -r 8000 -c 1)"
        )
    if channels != 1:
        raise FileProblem(f"{path}: WAV has {channels} channels, rtp_stream plays mono only")
    allowed_rates = (8000, 16000) if payload_type == 9 else (8000,)
    if rate not in allowed_rates:
        raise FileProblem(f"{path}: WAV sample rate is {rate} Hz, rtp_stream plays 8 kHz audio only")
    return payload_type
