"""Audio files load as SIPp's rtp_stream plays them; bad ones fail at load naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from gossipper.errors import FileProblem
from gossipper.media.classic.wav import load_audio_file
from tests.media.classic.helpers import write_wav


@pytest.mark.parametrize(
    ("tag", "rate", "pt"), [(7, 8000, 0), (6, 8000, 8), (0x0065, 16000, 9), (0x028F, 8000, 9)]
)
def test_wav_codecs(tmp_path: Path, tag: int, rate: int, pt: int) -> None:
    path = write_wav(tmp_path / "a.wav", bytes(range(200)) * 2, tag, rate=rate)
    audio = load_audio_file(str(path), 0)
    assert audio.payload_type == pt
    assert audio.payload == bytes(range(200)) * 2
    assert audio.frame_count == 3
    assert audio.frame(0) == audio.payload[:160]
    assert len(audio.frame(2)) == 160 and audio.frame(2)[:80] == audio.payload[320:]


def test_last_frame_padded_with_codec_silence(tmp_path: Path) -> None:
    audio = load_audio_file(str(write_wav(tmp_path / "u.wav", b"\x01" * 170)), 0)
    assert audio.frame(1) == b"\x01" * 10 + b"\xff" * 150


def test_raw_file_uses_the_payload_type(tmp_path: Path) -> None:
    path = tmp_path / "audio.g729"
    path.write_bytes(bytes(45))
    audio = load_audio_file(str(path), 18)
    assert (audio.payload_type, audio.frame_bytes, audio.frame_count) == (18, 20, 3)


@pytest.mark.parametrize(
    ("name", "content", "raw_pt", "message"),
    [
        ("bad.wav", b"not a wav at all", 0, "not a WAV file"),
        ("pcm.wav", None, 0, "WAV format 0x0001 is not G.711"),
        ("stereo.wav", None, 0, "2 channels"),
        ("wide.wav", None, 0, "sample rate is 16000"),
        ("raw.bin", b"\x00" * 10, 96, "raw audio needs payload type"),
        ("empty.raw", b"", 0, "holds no audio"),
        ("nodata.wav", b"RIFF\x04\x00\x00\x00WAVE", 0, "has no fmt chunk"),
    ],
)
def test_bad_files(tmp_path: Path, name: str, content: bytes | None, raw_pt: int, message: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    elif name == "pcm.wav":
        write_wav(path, bytes(320), format_tag=1)
    elif name == "stereo.wav":
        write_wav(path, bytes(320), channels=2)
    else:
        write_wav(path, bytes(320), rate=16000)
    with pytest.raises(FileProblem, match=message) as error:
        load_audio_file(str(path), raw_pt)
    assert str(error.value).startswith(f"{path}: ")
    assert "\n" not in str(error.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileProblem, match=r"missing\.wav: cannot read audio file"):
        load_audio_file(str(tmp_path / "missing.wav"), 0)
