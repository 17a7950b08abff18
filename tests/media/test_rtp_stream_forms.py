"""Every rtp_stream / rtp_echo form SIPp's scenario.cpp and actions.cpp take, read at load."""

from __future__ import annotations

import re

import pytest

from gossipper.errors import FileProblem
from gossipper.media.codecs import packet_plan
from gossipper.media.streams import RtpStreamAction, StreamKind
from gossipper.scenario import model
from gossipper.scenario.loader import parse_scenario
from gossipper.scenario.rtp_stream import parse_rtp_echo, parse_rtp_stream


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("hello.wav", RtpStreamAction(StreamKind.FILE, file="hello.wav", loops=1)),
        ("hello.wav,-1", RtpStreamAction(StreamKind.FILE, file="hello.wav", loops=-1)),
        (
            "hello.wav,2,8",
            RtpStreamAction(
                StreamKind.FILE, file="hello.wav", loops=2, payload_type=8, payload_name="PCMA/8000"
            ),
        ),
        (
            "speech.ilbc,1,97,iLBC/8000",
            RtpStreamAction(
                StreamKind.FILE, file="speech.ilbc", loops=1, payload_type=97, payload_name="iLBC/8000"
            ),
        ),
        ("apattern", RtpStreamAction(StreamKind.PATTERN, loops=-1)),
        (
            "apattern,3,18",
            RtpStreamAction(
                StreamKind.PATTERN, loops=-1, payload_type=18, payload_name="G729/8000", pattern_id=3
            ),
        ),
        (
            "vpattern,6,99,H264/90000",
            RtpStreamAction(
                StreamKind.PATTERN,
                loops=-1,
                payload_type=99,
                payload_name="H264/90000",
                pattern_id=6,
                video=True,
            ),
        ),
        ("pause", RtpStreamAction(StreamKind.PAUSE)),
        ("pauseapattern", RtpStreamAction(StreamKind.PAUSE)),
        ("resumeapattern", RtpStreamAction(StreamKind.RESUME)),
        ("pausevpattern", RtpStreamAction(StreamKind.PAUSE, video=True)),
        ("resumevpattern", RtpStreamAction(StreamKind.RESUME, video=True)),
    ],
)
def test_rtp_stream_forms(value: str, expected: RtpStreamAction) -> None:
    assert parse_rtp_stream(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("hello.wav,1,97", "payload type 97 needs a payload name"),
        ("hello.wav,1,0,PCMA/8000", "payload type 0 is PCMU/8000"),
        ("hello.wav,1,98,OPUS/48000", "'OPUS/48000' is not one rtp_stream plays"),
        ("hello.wav,1,3", "payload type 3 needs a payload name"),
        ("hello.wav,1,,PCMU/8000", "needs its payload type before it"),
        ("hello.wav,1,0,PCMU/8000,extra", "FILE[,loops[,payload_type[,payload_name]]]"),
        ("apattern,7", "pattern_id must be 1..6"),
        ("vpattern,1,0,PCMU/8000,x", "vpattern[,pattern_id"),
    ],
)
def test_rtp_stream_errors_name_the_field(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_rtp_stream(value)


@pytest.mark.parametrize(
    ("value", "kind", "video", "name"),
    [
        ("startaudio", StreamKind.ECHO_START, False, None),
        ("startaudio,0,PCMU/8000", StreamKind.ECHO_START, False, "PCMU/8000"),
        ("updateaudio,8", StreamKind.ECHO_START, False, "PCMA/8000"),
        ("stopaudio", StreamKind.ECHO_STOP, False, None),
        ("startvideo,96,H264/90000", StreamKind.ECHO_START, True, "H264/90000"),
        ("stopvideo", StreamKind.ECHO_STOP, True, None),
    ],
)
def test_rtp_echo_forms(value: str, kind: StreamKind, video: bool, name: str | None) -> None:
    echo = parse_rtp_echo(value)
    assert (echo.kind, echo.video, echo.payload_name) == (kind, video, name)


def test_rtp_echo_errors() -> None:
    with pytest.raises(ValueError, match="'startsomething' is not one of startaudio"):
        parse_rtp_echo("startsomething")
    with pytest.raises(ValueError, match="dynamic payload type 100"):
        parse_rtp_echo("startaudio,100,SPEEX/8000")


def test_sipp_packet_plans() -> None:
    """actions.cpp's table: interval, payload bytes and timestamp step per payload."""
    plans = {
        (0, None): (20, 160, 160),
        (8, None): (20, 160, 160),
        (9, "G722/8000"): (20, 160, 160),
        (18, None): (20, 20, 160),
        (13, "CN/8000"): (150, 1, 1200),
        (97, "iLBC/8000"): (30, 50, 240),
        (96, "H264/90000"): (160, 1280, 1280),
    }
    for (pt, name), expected in plans.items():
        plan = packet_plan(pt, name)
        assert (plan.interval_ms, plan.payload_bytes, plan.timestamp_step) == expected
    assert packet_plan(96, "H264/90000").video and not packet_plan(97, "iLBC/8000").video


SCENARIO = """<scenario>
<nop><action>
  <exec rtp_stream="apattern,2,97,iLBC/8000"/>
  <exec rtp_echo="startaudio,0,PCMU/8000"/>
  <rtp_echo value="0"/>
  <rtp_echo variable="echo_on"/>
  <exec rtp_echo="stopaudio"/>
</action></nop>
<Reference variables="echo_on"/>
</scenario>"""


def test_loader_reads_exec_rtp_echo_and_the_rtp_echo_action() -> None:
    scenario = parse_scenario(SCENARIO.encode(), "media.xml")
    actions = [action for step in scenario.steps for action in step.actions]
    assert all(isinstance(action, model.Exec) and action.rtp is not None for action in actions)
    kinds = [action.rtp.kind for action in actions if isinstance(action, model.Exec) and action.rtp]
    assert kinds == [
        StreamKind.PATTERN,
        StreamKind.ECHO_START,
        StreamKind.ECHO_SWITCH,
        StreamKind.ECHO_SWITCH,
        StreamKind.ECHO_STOP,
    ]
    switches = [
        a.rtp for a in actions if isinstance(a, model.Exec) and a.rtp and a.rtp.kind is StreamKind.ECHO_SWITCH
    ]
    assert [(s.switch_value, s.switch_is_variable) for s in switches] == [("0", False), ("echo_on", True)]


@pytest.mark.parametrize(
    ("element", "message"),
    [
        ('<exec rtp_echo="startaudio,97"/>', "media.xml:2: rtp_echo: payload type 97 needs a payload name"),
        ('<exec rtp_echo="stopaudio" rtp_stream="pause"/>', r"<exec> has 2 commands \(rtp_echo, "),
        ("<rtp_echo/>", "exactly one of value= or variable="),
        ('<rtp_echo value="1" variable="v"/>', "takes value= or variable=, not both"),
        ('<rtp_echo value="on"/>', "value must be a number"),
        ('<rtp_echo value="1" loud="yes"/>', "unknown attribute loud="),
        ('<exec rtp_stream="apattern,1,96,H264/9000"/>', "media.xml:2: rtp_stream: dynamic payload type 96"),
    ],
)
def test_loader_errors_name_file_and_line(element: str, message: str) -> None:
    text = f"<scenario>\n<nop><action>{element}</action></nop>\n</scenario>"
    with pytest.raises(FileProblem, match=message) as error:
        parse_scenario(text.encode(), "media.xml")
    assert "\n" not in str(error.value)
