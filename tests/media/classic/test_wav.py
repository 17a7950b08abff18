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
    audio = load_audio_file(str(path))
    assert audio.payload_type == pt
    assert audio.payload == bytes(range(200)) * 2
    assert audio.frame_count(160) == 3
    assert audio.frame(0, 160, pt) == audio.payload[:160]
    assert len(audio.frame(2, 160, pt)) == 160 and audio.frame(2, 160, pt)[:80] == audio.payload[320:]


@pytest.mark.parametrize(("pt", "silence"), [(0, b"\xff"), (8, b"\xd5"), (97, b"\x00")])
def test_last_frame_padded_with_codec_silence(tmp_path: Path, pt: int, silence: bytes) -> None:
    audio = load_audio_file(str(write_wav(tmp_path / "u.wav", b"\x01" * 170)))
    assert audio.frame(1, 160, pt) == b"\x01" * 10 + silence * 150


def test_raw_file_is_cut_by_the_streams_packet_size(tmp_path: Path) -> None:
    path = tmp_path / "audio.ilbc"
    path.write_bytes(bytes(120))
    audio = load_audio_file(str(path))
    assert audio.payload_type is None  # raw: the stream's payload type decides
    assert (audio.frame_count(50), audio.frame_count(20)) == (3, 6)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.wav", b"not a wav at all", "not a WAV file"),
        ("pcm.wav", None, "WAV format 0x0001 is not G.711"),
        ("stereo.wav", None, "2 channels"),
        ("wide.wav", None, "sample rate is 16000"),
        ("empty.raw", b"", "holds no audio"),
        ("nodata.wav", b"RIFF\x04\x00\x00\x00WAVE", "has no fmt chunk"),
    ],
)
def test_bad_files(tmp_path: Path, name: str, content: bytes | None, message: str) -> None:
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
        load_audio_file(str(path))
    assert str(error.value).startswith(f"{path}: ")
    assert "\n" not in str(error.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileProblem, match=r"missing\.wav: cannot read audio file"):
        load_audio_file(str(tmp_path / "missing.wav"))
