"""Audio files for rtp_stream=FILE: WAV holding G.711/G.722, or raw codec bytes.

Like SIPp, nothing is transcoded: the file must already be in the codec the RTP
carries, 8 kHz mono (G.722's RTP clock is 8 kHz too, whatever its WAV header says).
How many bytes go in a packet is the stream's payload type's (codecs.packet_plan).
A file that cannot be played fails at load with one line naming it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from gossipper.errors import FileProblem

_SILENCE = {0: 0xFF, 8: 0xD5}  # G.711's silence; every other codec's is zero bytes
_WAV_FORMATS = {0x0007: 0, 0x0006: 8, 0x0065: 9, 0x028F: 9}  # WAV format tag -> payload type
_WAV_EXTENSIBLE = 0xFFFE
_CHUNK = struct.Struct("<4sI")
_FMT = struct.Struct("<HHIIHH")  # tag, channels, sample rate, byte rate, block align, bits


@dataclass(frozen=True)
class AudioFile:
    """A whole file's payload, cut into packets on the fly by the sender."""

    path: str
    payload: bytes
    payload_type: int | None  # what a WAV header says it holds; None: raw bytes, the stream says

    def silence_byte(self, payload_type: int) -> int:
        return _SILENCE.get(payload_type, 0x00)

    def frame_count(self, frame_bytes: int) -> int:
        return -(-len(self.payload) // frame_bytes)

    def frame(self, index: int, frame_bytes: int, payload_type: int) -> bytes:
        """Packet index of the file; the last one padded with the codec's silence to a whole packet."""
        chunk = self.payload[index * frame_bytes : (index + 1) * frame_bytes]
        return chunk + bytes((self.silence_byte(payload_type),)) * (frame_bytes - len(chunk))


def load_audio_file(path: str) -> AudioFile:
    """WAV when the file says RIFF/WAVE or is named *.wav, else raw bytes of the stream's payload type."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise FileProblem(f"{path}: cannot read audio file ({error.strerror})") from None
    payload_type: int | None = None
    payload = data
    if data[:4] == b"RIFF" or path.lower().endswith(".wav"):
        payload_type, payload = _parse_wav(path, data)
    if not payload:
        raise FileProblem(f"{path}: the audio file holds no audio")
    return AudioFile(path, payload, payload_type)


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
