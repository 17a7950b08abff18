"""SIPp's media forms on the classic path, on loopback: patterns, SIPp's packet plans, rtp_echo,
and the rtpcheck of echoed RTP against an echoing, a silent and a corrupting peer."""

from __future__ import annotations

import asyncio
import errno
import itertools
from pathlib import Path
from typing import Any, cast

import pytest

from gossipper.cli.ports import LOOPBACK, free_port
from gossipper.errors import FileProblem
from gossipper.media.classic.manager import ClassicMedia
from gossipper.media.rtp import parse_rtp
from gossipper.scenario import model
from gossipper.scenario.rtp_stream import parse_rtp_echo
from tests.media.classic.helpers import (
    RUNNERS,
    Peer,
    Runner,
    manager,
    open_peer,
    rtp_stream,
    sdp,
    until,
    write_wav,
)


def rtp_echo(value: str) -> model.Exec:
    return model.Exec(line=1, rtp_stream=f"rtp_echo={value}", rtp=parse_rtp_echo(value))


class Mangler(asyncio.DatagramProtocol):
    """A scripted peer that echoes RTP as SIPp's echo does, but spoils the payload of chosen packets."""

    def __init__(self, spoil: Any) -> None:
        self.spoil = spoil  # sequence number -> bool
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.transport is not None
        if self.spoil(parse_rtp(data).sequence):
            data = data[:12] + bytes(b ^ 0xFF for b in data[12:])
        self.transport.sendto(data, addr)


async def open_mangler(port: int, spoil: Any) -> Mangler:
    _, mangler = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: Mangler(spoil), local_addr=(LOOPBACK, port)
    )
    return mangler


def headers(peer: Peer) -> list[Any]:
    return [parse_rtp(data) for data in peer.datagrams]


@RUNNERS
@pytest.mark.parametrize(
    ("value", "pt", "payload", "step", "interval"),
    [
        ("apattern", 0, b"\xaa" * 160, 160, 0.020),
        ("apattern,2,97,iLBC/8000", 97, b"\xbb" * 50, 240, 0.030),
        ("apattern,6,18", 18, b"\xff" * 20, 160, 0.020),
    ],
)
def test_audio_pattern_follows_sipps_packet_plan(
    run: Runner, value: str, pt: int, payload: bytes, step: int, interval: float
) -> None:
    port = free_port(count=4)

    async def scenario() -> None:
        media = manager()
        media.start(LOOPBACK)
        peer = await open_peer(port + 2)
        assert media.action("c", port, sdp(port + 2), rtp_stream(value)) is None
        await until(lambda: len(peer.items) >= 8)
        media.call_ended("c")
        media.close()
        peer.close()
        rtp = headers(peer)
        assert {h.payload_type for h in rtp} == {pt}
        assert all(data[12:] == payload for data in peer.datagrams)
        for previous, current in itertools.pairwise(rtp):
            assert (current.timestamp - previous.timestamp) % (1 << 32) == step
        span = peer.items[-1][1] - peer.items[0][1]
        assert (len(peer.items) - 1) * interval * 0.8 <= span <= (len(peer.items) - 1) * interval * 1.3

    run(scenario())


@RUNNERS
def test_video_pattern_goes_to_the_video_port_and_pauses_alone(run: Runner) -> None:
    port = free_port(count=6)

    async def scenario() -> None:
        media = manager()
        media.start(LOOPBACK)
        audio, video = await open_peer(port + 2), await open_peer(port + 4)
        remote = sdp(port + 2, video_port=port + 4)
        assert media.action("c", port, remote, rtp_stream("vpattern,3,96,H264/90000")) is None
        assert media.action("c", port, remote, rtp_stream("apattern")) is None
        await until(lambda: len(video.items) >= 2 and len(audio.items) >= 10)
        assert {h.payload_type for h in headers(video)} == {96}
        assert all(data[12:] == b"\xcc" * 1280 for data in video.datagrams)  # SIPp's H.264 plan
        assert all(data[12:] == b"\xaa" * 160 for data in audio.datagrams)
        assert media.action("c", port, remote, rtp_stream("pausevpattern")) is None
        held = len(video.items)
        await asyncio.sleep(0.4)
        assert len(video.items) <= held + 1 and len(audio.items) >= 25  # audio goes on
        assert media.action("c", port, remote, rtp_stream("resumevpattern")) is None
        await until(lambda: len(video.items) >= held + 2)
        assert media.action("c", port, sdp(port + 2), rtp_stream("apattern")) is None  # no m=video
        failure = media.action("d", port + 200, sdp(port + 2), rtp_stream("vpattern,1,96,H264/90000"))
        assert failure is not None and "m=video" in failure[1]
        media.close()
        audio.close()
        video.close()

    run(scenario())


@RUNNERS
def test_rtp_payload_applies_to_wav_streams(run: Runner, tmp_path: Path) -> None:
    """SIPp sends a file with -rtp_payload's type; without the flag a WAV says its own (here PCMA)."""
    wav = write_wav(tmp_path / "alaw.wav", bytes(range(160)) * 4, format_tag=6)
    first = free_port(count=8)

    async def scenario() -> None:
        for port, config, pt in (
            (first, {}, 8),
            (first + 4, {"rtp_payload": 0, "given": {"rtp_payload"}}, 0),
        ):
            media = manager(**config)
            media.start(LOOPBACK)
            peer = await open_peer(port + 2)
            assert media.action("c", port, sdp(port + 2), rtp_stream(f"{wav},1")) is None
            await until(lambda peer=peer: len(peer.items) == 4)
            assert {h.payload_type for h in headers(peer)} == {pt}
            media.close()
            peer.close()

    run(scenario())


async def _checked_call(uac: ClassicMedia, port: int, value: str, packets: int, counts: Any) -> None:
    """Play `value` from `port` toward port + 2 until `packets` went out, then end the call."""
    assert uac.action("uac", port, sdp(port + 2), rtp_stream(value)) is None
    await until(lambda: uac.totals.rtp_packets_sent >= packets)
    check = uac._calls["uac"].checks[False]
    counts.append((check.sent, check.failed))
    uac.call_ended("uac")


@RUNNERS
def test_rtpcheck_passes_when_the_peer_echoes_with_rtp_echo(run: Runner) -> None:
    port = free_port(count=4)

    async def scenario() -> None:
        uac, uas = manager(), manager()
        uac.start(LOOPBACK)
        uas.start(LOOPBACK)
        assert uas.action("uas", port + 2, sdp(port), rtp_echo("startaudio,0,PCMU/8000")) is None
        counts: list[tuple[int, int]] = []
        await _checked_call(uac, port, "apattern,1,0,PCMU/8000", 25, counts)
        [(sent, failed)] = counts
        assert sent >= 25 and failed <= 2  # the first packet has no echo before it
        assert uac.totals.rtp_check_failures == 0
        assert uas.action("uas", port + 2, None, rtp_echo("stopaudio")) is None
        assert uas.totals.echoed_packets >= 24 and uas.totals.rtp_check_failures == 0
        uac.close()
        uas.close()

    run(scenario())


@RUNNERS
def test_rtpcheck_fails_when_nothing_comes_back(run: Runner) -> None:
    port = free_port(count=4)

    async def scenario() -> None:
        uac = manager()
        uac.start(LOOPBACK)
        silent = await open_peer(port + 2)
        counts: list[tuple[int, int]] = []
        await _checked_call(uac, port, "apattern", 10, counts)
        [(sent, failed)] = counts
        assert sent == failed >= 10
        assert uac.totals.rtp_check_failures == 1
        media_counts = uac.totals
        assert media_counts.rtp_packets_sent >= 10
        silent.close()
        uac.close()

    run(scenario())


@RUNNERS
@pytest.mark.parametrize(("tolerance", "fails"), [(1.0, 0), (0.75, 0), (0.25, 1)])
def test_rtpcheck_tolerance_against_a_peer_spoiling_every_other_echo(
    run: Runner, tolerance: float, fails: int
) -> None:
    port = free_port(count=4)

    async def scenario() -> None:
        uac = manager(audio_tolerance=tolerance)
        uac.start(LOOPBACK)
        mangler = await open_mangler(port + 2, lambda sequence: sequence % 2 == 0)
        counts: list[tuple[int, int]] = []
        await _checked_call(uac, port, "apattern,4", 30, counts)
        [(sent, failed)] = counts
        assert 0.35 <= failed / sent <= 0.65
        assert uac.totals.rtp_check_failures == fails
        assert mangler.transport is not None
        mangler.transport.close()
        uac.close()

    run(scenario())


@RUNNERS
def test_rtpcheck_compares_a_file_echo_with_the_packet_it_echoes(run: Runner, tmp_path: Path) -> None:
    """A ramp changes every packet: echoes are matched by sequence number, so all but the first pass."""
    wav = write_wav(tmp_path / "ramp.wav", bytes(index % 251 for index in range(160 * 30)))
    port = free_port(count=4)

    async def scenario() -> None:
        uac = manager()
        uac.start(LOOPBACK)
        mangler = await open_mangler(port + 2, lambda _sequence: False)
        counts: list[tuple[int, int]] = []
        await _checked_call(uac, port, f"{wav},1", 25, counts)
        [(sent, failed)] = counts
        assert sent >= 25 and failed <= 2
        assert uac.totals.rtp_check_failures == 0
        assert mangler.transport is not None
        mangler.transport.close()
        uac.close()

    run(scenario())


@RUNNERS
def test_rtpcheck_debug_writes_every_check(
    run: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    port = free_port(count=4)

    async def scenario() -> None:
        uac = manager(rtpcheck_debug=True)
        uac.start(LOOPBACK)
        silent = await open_peer(port + 2)
        await _checked_call(uac, port, "apattern", 5, [])
        uac.close()
        silent.close()

    run(scenario())
    lines = (tmp_path / "debugafile").read_text().splitlines()
    assert lines[0].startswith("uac audio sent seq ") and lines[0].endswith(": no echo (1/1 failed)")
    assert lines[-1].startswith("uac audio rtpcheck FAILED: ") and "(tolerance 1)" in lines[-1]
    assert not (tmp_path / "debugvfile").exists()


@RUNNERS
def test_synthetic_and_pcap_streams_are_not_checked(run: Runner) -> None:
    port = free_port(count=4)

    async def scenario() -> None:
        uac = manager()
        uac.start(LOOPBACK)
        silent = await open_peer(port + 2)
        assert uac.action("c", port, sdp(port + 2), rtp_stream("synthetic")) is None
        await until(lambda: len(silent.items) >= 5)
        uac.call_ended("c")
        assert uac.totals.rtp_check_failures == 0
        uac.close()
        silent.close()

    run(scenario())


@RUNNERS
def test_rtp_echo_stop_fails_the_call_after_a_broken_echo(run: Runner) -> None:
    port = free_port(count=4)

    async def scenario() -> None:
        uas = manager()
        uas.start(LOOPBACK)
        assert uas.action("uas", port, None, rtp_echo("startaudio")) is None
        session = uas._calls["uas"].session
        assert session is not None
        await until(lambda: session._rtp is not None)
        assert session._rtp is not None
        # What the kernel reports when an echo went to a port that has gone (ICMP unreachable).
        session._rtp.get_protocol().error_received(ConnectionRefusedError(errno.ECONNREFUSED, "refused"))
        failure = uas.action("uas", port, None, rtp_echo("stopaudio"))
        assert failure == ("transport_error", "rtp_echo audio: the echo hit 1 socket error(s)")
        assert uas.totals.rtp_check_failures == 1 and not session.echo
        assert uas.action("uas", port, None, rtp_echo("stopaudio")) is None  # once told, cleared
        uas.close()

    run(scenario())


@RUNNERS
def test_rtp_echo_switch_silences_flag_echo_only(run: Runner) -> None:
    """<rtp_echo value=0> turns -rtp_echo's echo off run-wide; an exec rtp_echo call keeps echoing."""
    port = free_port(count=8)

    async def scenario() -> None:
        uas = manager(rtp_echo=True)
        uas.start(LOOPBACK)
        uas.call_started("flag", port)
        assert uas.action("own", port + 2, None, rtp_echo("startaudio")) is None
        probe = await open_peer(port + 4)
        assert probe.transport is not None
        await asyncio.sleep(0.05)

        async def echoed(target: int, sequence: int) -> bool:
            assert probe.transport is not None
            before = len(probe.items)
            probe.transport.sendto(
                bytes([0x80, 0, 0, sequence, 0, 0, 0, 0, 0, 0, 0, 1]) + b"x", (LOOPBACK, target)
            )
            await asyncio.sleep(0.1)
            return len(probe.items) > before

        assert await echoed(port, 1) and await echoed(port + 2, 2)
        uas.switch_flag_echo(False)
        assert not await echoed(port, 3) and await echoed(port + 2, 4)
        uas.call_started("later", port + 6)  # a call started while the switch is off stays silent
        assert not await echoed(port + 6, 5)
        uas.switch_flag_echo(True)
        assert await echoed(port, 6) and await echoed(port + 6, 7)
        probe.close()
        uas.close()

    run(scenario())


def test_preload_checks_patterns_against_rtp_payload() -> None:
    """-rtp_payload 97 leaves `apattern` without a payload name: the run stops before any call."""

    async def scenario() -> None:
        manager().preload([rtp_stream("apattern")])
        with pytest.raises(FileProblem, match="rtp_stream: payload type 97 needs a payload name"):
            manager(rtp_payload=97, given={"rtp_payload"}).preload([rtp_stream("apattern")])
        manager(rtp_payload=97, given={"rtp_payload"}).preload([rtp_stream("apattern,1,97,iLBC/8000")])

    asyncio.run(scenario())
