"""What a synthetic stream gets from the command line: codec intervals unless -rtp_freq, -rtp_payload."""

from __future__ import annotations

import pytest

from gossipper.cli.compile import run_settings, standalone_settings
from gossipper.cli.errors import UsageError
from gossipper.cli.options import parse_args
from gossipper.cli.validate import validate
from gossipper.media.streams import SyntheticStream
from gossipper.scenario.rtp_stream import parse_rtp_stream

SEND = ["-rtp_send", "-rtp_addr", "127.0.0.1:4000"]


def _standalone(*flags: str) -> SyntheticStream:
    return standalone_settings(parse_args([*SEND, *flags])).media.stream_defaults.synthetic()


def _in_call(value: str, *flags: str) -> SyntheticStream:
    defaults = run_settings(parse_args(["-sn", "uac", "127.0.0.1", *flags])).media.stream_defaults
    return defaults.synthetic(parse_rtp_stream(value))


@pytest.mark.parametrize(
    ("codec", "interval", "step", "size"),
    [("ILBC/8000", 30, 240, 240), ("H264/90000", 33, 3000, 3000), ("PCMU/8000", 20, 160, 160)],
)
def test_codec_keeps_its_own_interval_without_rtp_freq(
    codec: str, interval: int, step: int, size: int
) -> None:
    for stream in (_standalone("-rtp_codec", codec), _in_call(f"synthetic,0,,{codec}")):
        assert stream.interval_ms == interval
        assert stream.codec.samples_per_packet(stream.interval_ms) == step
        assert stream.codec.payload_bytes(stream.interval_ms) == size


def test_rtp_freq_when_given_wins_for_every_codec() -> None:
    stream = _standalone("-rtp_codec", "ILBC/8000", "-rtp_freq", "20")
    assert (stream.interval_ms, stream.codec.samples_per_packet(20)) == (20, 160)
    assert _in_call("synthetic,0,,H264/90000", "-rtp_freq", "40").interval_ms == 40
    assert _in_call("synthetic,0,,H264/90000,10", "-rtp_freq", "40").interval_ms == 10  # the value's own


def test_rtp_payload_applies_to_synthetic_streams() -> None:
    assert _in_call("synthetic").payload_type == 0
    assert _in_call("synthetic", "-rtp_payload", "101").payload_type == 101
    assert _in_call("synthetic,0,8", "-rtp_payload", "101").payload_type == 8  # the value's own
    assert _standalone("-rtp_payload", "98").payload_type == 98
    assert _standalone("-rtp_payload", "98", "-rtp_pt", "99").payload_type == 99


def test_rtpcheck_flags_reach_media_settings() -> None:
    media = run_settings(
        parse_args(
            ["-sn", "uac", "127.0.0.1", "-rtpcheck_debug", "-audiotolerance", "0.25", "-videotolerance", "0"]
        )
    ).media
    assert (media.rtpcheck_debug, media.audio_tolerance, media.video_tolerance) == (True, 0.25, 0.0)
    assert run_settings(parse_args(["-sn", "uac", "127.0.0.1"])).media.audio_tolerance == 1.0


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["-audiotolerance", "1.5"], "-audiotolerance: must be 0.0..1.0, got 1.5"),
        (["-videotolerance", "-0.1"], "-videotolerance: must be at least 0"),
        (["-audiotolerance", "x"], "-audiotolerance: expected a number"),
    ],
)
def test_bad_tolerances_are_one_line_usage_errors(flags: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        validate(parse_args(["-sn", "uac", "127.0.0.1", *flags]))
