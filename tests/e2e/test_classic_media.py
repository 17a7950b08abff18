"""Classic per-call media end to end: a WAV stream echoed by SIPp's or gossipper's UAS,
SRTP between two gossippers, and HEP copies of every SIP message."""

from __future__ import annotations

import json
import socket
import struct
from pathlib import Path

import pytest

from gossipper.cli.ports import LOOPBACK, free_port, free_ports_below_ephemeral
from gossipper.hep.hep3 import HepPacket
from gossipper.scenario.builtins import dump_builtin
from gossipper.sip.message import SipMessage
from tests.e2e.processes import GossipperUas, Server, SippUas, needs_sipp, read_json, run_gossipper

CALLS = 4
SECONDS = 2
PACKETS = SECONDS * 50


def _write_wav(path: Path) -> None:
    """SECONDS of 8 kHz mu-law (format 7), a ramp so payloads differ packet to packet."""
    samples = bytes(index % 256 for index in range(8000 * SECONDS))
    fmt = struct.pack("<HHIIHH", 7, 1, 8000, 8000, 1, 8)
    data = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(samples))
    path.write_bytes(b"RIFF" + struct.pack("<I", len(data) + len(samples)) + data + samples)


def _wav_scenario(tmp_path: Path) -> Path:
    """The uac built-in with a WAV stream played after the ACK, then a hold long enough for it."""
    wav = tmp_path / "tone.wav"
    _write_wav(wav)
    text = dump_builtin("uac").replace(
        "<pause/>",
        f'<nop><action><exec rtp_stream="{wav},1,0"/></action></nop>\n'
        f'  <pause milliseconds="{SECONDS * 1000 + 500}"/>',
    )
    path = tmp_path / "uac_wav.xml"
    path.write_text(text)
    return path


def _run_uac(tmp_path: Path, port: int, *extra: str) -> dict[str, object]:
    summary = tmp_path / "uac.json"
    result = run_gossipper(
        "-sf",
        str(_wav_scenario(tmp_path)),
        f"{LOOPBACK}:{port}",
        "-i",
        LOOPBACK,
        "-m",
        str(CALLS),
        "-r",
        "10",
        "-mp",
        str(free_ports_below_ephemeral(2 * CALLS, start=24000)),
        "-summary_json",
        str(summary),
        "-trace_err",
        "-error_file",
        str(tmp_path / "uac_errors.log"),
        *extra,
    )
    errors = tmp_path / "uac_errors.log"
    assert result.returncode == 0, errors.read_text() if errors.exists() else result.stderr
    return read_json(summary)


def _assert_echoed(data: dict[str, object]) -> None:
    assert data["success_calls"] == CALLS
    media = data["media"]
    assert isinstance(media, dict)
    assert media["rtp_packets_sent"] == CALLS * PACKETS
    assert media["rtp_packets_received"] == CALLS * PACKETS
    receive = media["receive"]
    assert receive["streams"] == CALLS and receive["lost"] == 0 and receive["duplicates"] == 0
    assert 0 <= receive["jitter_avg_ms"] < 20


@needs_sipp
def test_wav_stream_echoed_by_sipp(tmp_path: Path, sipp_uas: SippUas) -> None:
    sipp = sipp_uas(
        "-sn",
        "uas",
        "-i",
        LOOPBACK,
        "-rtp_echo",
        "-mp",
        str(free_ports_below_ephemeral(4)),
        cwd=tmp_path,
    )
    records = tmp_path / "calls.jsonl"
    data = _run_uac(tmp_path, sipp.port, "-call_records", str(records))
    _assert_echoed(data)
    # each call's record carries the stream it received back, as the summary counts it
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    assert len(lines) == CALLS
    for line in lines:
        [stream] = line["media"]["streams"]
        assert stream["engine"] == "classic"
        assert (stream["packets_received"], stream["packets_lost"], stream["duplicates"]) == (PACKETS, 0, 0)
        assert 0 <= stream["jitter_ms"] < 20


def _echoing_uas(gossipper_uas: GossipperUas, tmp_path: Path, *extra: str) -> tuple[Server, Path]:
    summary = tmp_path / "uas.json"
    uas = gossipper_uas(
        "-sn",
        "uas",
        "-i",
        LOOPBACK,
        "-rtp_echo",
        "-mp",
        str(free_ports_below_ephemeral(2 * CALLS)),
        "-m",
        str(CALLS),
        "-summary_json",
        str(summary),
        *extra,
    )
    return uas, summary


def test_wav_stream_echoed_by_gossipper_uas(tmp_path: Path, gossipper_uas: GossipperUas) -> None:
    uas, uas_summary = _echoing_uas(gossipper_uas, tmp_path)
    data = _run_uac(tmp_path, uas.port)
    assert uas.wait(timeout=30) == 0
    _assert_echoed(data)
    uas_media = read_json(uas_summary)["media"]
    assert isinstance(uas_media, dict)
    assert uas_media["receive"]["echoed_packets"] == CALLS * PACKETS


def test_srtp_between_two_gossippers(tmp_path: Path, gossipper_uas: GossipperUas) -> None:
    uas, uas_summary = _echoing_uas(gossipper_uas, tmp_path, "-media_srtp")
    data = _run_uac(tmp_path, uas.port, "-media_srtp")
    assert uas.wait(timeout=30) == 0
    _assert_echoed(data)
    for summary in (data, read_json(uas_summary)):
        media = summary["media"]
        assert isinstance(media, dict)
        assert media["receive"]["srtp_rejected"] == {}


def test_hep_copies_every_sip_message(tmp_path: Path, gossipper_uas: GossipperUas) -> None:
    collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    collector.bind((LOOPBACK, 0))
    collector.settimeout(2)
    uas, _ = _echoing_uas(gossipper_uas, tmp_path)
    trace = tmp_path / "messages.log"
    data = _run_uac(
        tmp_path,
        uas.port,
        "-hep_addr",
        f"{LOOPBACK}:{collector.getsockname()[1]}",
        "-hep_id",
        "77",
        "-trace_msg",
        "-message_file",
        str(trace),
    )
    assert uas.wait(timeout=30) == 0
    packets = []
    try:
        while True:
            packets.append(HepPacket.parse(collector.recv(65535)))
    except TimeoutError:
        pass
    finally:
        collector.close()
    sip = [packet for packet in packets if packet.protocol_type == 1]
    assert len(sip) == int(data["messages_sent"]) + int(data["messages_received"])
    assert all(packet.capture_id == 77 for packet in sip)
    messages = [SipMessage.parse(packet.payload) for packet in sip]
    assert len({message.call_id for message in messages}) == CALLS
    assert sum(message.method == "INVITE" for message in messages) == CALLS


@pytest.mark.parametrize("content", [b"not a wav file", b"RIFF\x00\x00\x00\x00WAVEjunk"])
def test_bad_media_file_fails_at_load(tmp_path: Path, content: bytes) -> None:
    scenario = _wav_scenario(tmp_path)
    (tmp_path / "tone.wav").write_bytes(content)
    result = run_gossipper("-sf", str(scenario), f"{LOOPBACK}:{free_port()}", "-m", "1", timeout=30)
    assert result.returncode == 255
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "tone.wav" in result.stderr
