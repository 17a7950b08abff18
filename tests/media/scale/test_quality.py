"""Receive quality of scale streams against a controlled impairment, per backend.

An echoing peer written here sends each stream back as an SBC would, impairing each stream
its own known way: dropping every 10th packet, delaying every other one by a known time,
sending every 5th twice, holding every 4th back behind the next, or rewriting the SSRC (a
bridged peer rather than an echo). The peer counts what it did; the engine's figures must
match within the tolerances stated at each check. Timing figures (jitter, round trip) are
checked against the peer's own clock: a loaded machine can stall the peer's thread for
hundreds of milliseconds, and the engine must then report what really happened.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from itertools import pairwise

import pytest

from gossipper.cli.ports import LOOPBACK
from gossipper.media.codecs import CODECS
from gossipper.media.emodel import DEFAULT_R, mos_from_r
from gossipper.media.scale.api import ScaleEngine, StreamSpec
from gossipper.media.scale.factory import create_scale_engine
from gossipper.stats.quality import StreamQuality
from tests.media.scale.backends import Backend
from tests.media.scale.echo_peer import (
    DELAY_S,
    ImpairingEcho,
    delay_every_other,
    double_every_5th,
    drop_every_10th,
    hold_every_4th,
)

BasePort = Callable[[int], int]
PCMU = CODECS["PCMU/8000"]
INTERVAL_MS = 20
PACKETS = 150  # per stream: 3 s at 20 ms
NS_PER_MS = 1_000_000
# Beyond the peer's own turnaround, a round trip holds two loopback hops and the engine's send
# stamp (taken after its send returns): microseconds, bounded here generously.
RTT_SLACK_MS = 50.0
JITTER_TOLERANCE_MS = 0.5  # one misplaced stamp of 8 ms moves RFC 3550's estimate by 0.5 ms


@pytest.fixture
def echo() -> Iterator[ImpairingEcho]:
    peer = ImpairingEcho({})
    yield peer
    peer.close()


def spec(port: int, peer: ImpairingEcho, packets: int = PACKETS, offset_ms: float = 0.0) -> StreamSpec:
    return StreamSpec(
        local_ip=LOOPBACK,
        local_port=port,
        remote_ip=LOOPBACK,
        remote_port=peer.port,
        codec=PCMU,
        interval_ms=INTERVAL_MS,
        duration_ms=packets * INTERVAL_MS,
        start_offset_ms=offset_ms,
    )


def wait_until(done: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def jitter_at_departures_ms(departures: list[tuple[int, int]]) -> float:
    """RFC 3550's interarrival jitter with the peer's departures as the arrival times.

    On loopback the kernel stamps the engine's arrival inside the peer's send, so this is the
    estimate the engine must reach, whatever stalls the peer had.
    """
    jitter = 0.0
    for (before_ns, before_ts), (after_ns, after_ts) in pairwise(departures):
        transit_change = (after_ns - before_ns) - (after_ts - before_ts) * 1e9 / PCMU.clock_rate
        jitter += (abs(transit_change) - jitter) / 16
    return jitter / NS_PER_MS


def run_streams(engine: ScaleEngine, peer: ImpairingEcho, ports: list[int]) -> dict[int, StreamQuality]:
    """Send PACKETS on each port, let the peer answer all of them, and unregister: the final figures."""
    for index, port in enumerate(ports):
        engine.register(f"call-{port}", spec(port, peer, offset_ms=index * INTERVAL_MS / len(ports)))
    wait_until(lambda: sum(peer.done[port].seen for port in ports) == PACKETS * len(ports))
    wait_until(peer.idle)
    time.sleep(0.1)  # the last echoes on their way back
    live = engine.stream_quality(f"call-{ports[0]}")
    assert live is not None and live.expected <= PACKETS
    finals: dict[int, StreamQuality] = {}
    for port in ports:
        counts = engine.unregister(f"call-{port}")
        assert counts is not None and counts.quality is not None
        finals[port] = counts.quality
    return finals


def test_quality_follows_a_controlled_impairment(
    engine: ScaleEngine, echo: ImpairingEcho, base_port: BasePort
) -> None:
    base = base_port(6)
    ports = [base + 2 * i for i in range(6)]
    clean_port, drop_port, jitter_port, double_port, reorder_port, bridged_port = ports
    echo.impairments.update(
        {
            drop_port: drop_every_10th,
            jitter_port: delay_every_other,
            double_port: double_every_5th,
            reorder_port: hold_every_4th,
        }
    )
    echo.foreign.add(bridged_port)
    figures = run_streams(engine, echo, ports)

    # Every sequence number came back once: nothing lost, nothing doubled, all echoed.
    good = figures[clean_port]
    assert (good.expected, good.received, good.lost) == (PACKETS, PACKETS, 0)
    assert good.duplicates == good.reordered == 0
    assert good.echo and good.loss_percent == 0.0
    assert good.rtt_samples == PACKETS and good.rtt_unmatched == 0
    assert good.rtt_min_ms is not None and good.rtt_max_ms is not None and good.rtt_mean_ms is not None
    assert 0.0 <= good.rtt_min_ms <= good.rtt_mean_ms <= good.rtt_max_ms
    # The round trip is the peer's turnaround and little more, stalls included.
    turnaround = echo.done[clean_port]
    assert good.rtt_max_ms <= turnaround.hold_max_ns / NS_PER_MS + RTT_SLACK_MS
    assert good.rtt_mean_ms <= turnaround.hold_sum_ns / PACKETS / NS_PER_MS + RTT_SLACK_MS
    expected_jitter = jitter_at_departures_ms(turnaround.departures)
    assert good.jitter_ms == pytest.approx(expected_jitter, abs=JITTER_TOLERANCE_MS)
    # G.711 without loss or long delay: the E-model's default R and its MOS, 4.41. A peer that
    # stalled long enough adds real delay and jitter, which can only lower them.
    if turnaround.hold_max_ns < 100 * NS_PER_MS:
        assert good.r_factor == pytest.approx(DEFAULT_R) and good.mos == pytest.approx(mos_from_r(DEFAULT_R))
    assert good.r_factor is not None and good.r_factor <= DEFAULT_R + 1e-9

    # Loss: the peer's drops, except one at the very end that no later packet reveals.
    drop = figures[drop_port]
    dropped = echo.done[drop_port].dropped
    assert dropped == PACKETS // 10
    assert drop.lost in (dropped - 1, dropped) and drop.duplicates == 0
    assert drop.loss_percent == pytest.approx(10.0, abs=0.7)
    assert drop.mos is not None and good.mos is not None and drop.mos < good.mos - 0.5

    # Jitter: every other packet DELAY_S late makes each transit differ by DELAY_S from the
    # one before, so RFC 3550's estimate nears DELAY_S; the peer's departures give the exact
    # figure, its own stalls included. A sender late by more than the interval less DELAY_S
    # puts two packets back to back, and the delayed one then leaves behind the next: the
    # peer counts what it really reordered.
    late = figures[jitter_port]
    delayed = echo.done[jitter_port]
    assert late.lost == 0 and late.reordered == delayed.sent_behind
    expected_jitter = jitter_at_departures_ms(delayed.departures)
    assert late.jitter_ms == pytest.approx(expected_jitter, abs=JITTER_TOLERANCE_MS)
    assert late.rtt_max_ms is not None
    assert DELAY_S * 1000 <= late.rtt_max_ms <= delayed.hold_max_ns / NS_PER_MS + RTT_SLACK_MS

    # Duplicates: counted apart, and RFC 3550's cumulative loss goes negative by as many.
    doubled = figures[double_port]
    assert doubled.duplicates == echo.done[double_port].doubled == PACKETS // 5
    assert doubled.lost == -doubled.duplicates and doubled.loss_percent == 0.0
    assert doubled.received == PACKETS + doubled.duplicates

    # Reordering: a held packet arrives after the next one (unless the peer itself was late
    # with that one: it counts what it really sent out of order); none lost, none doubled.
    shuffled = figures[reorder_port]
    done = echo.done[reorder_port]
    assert done.sent_behind >= done.held // 2
    assert shuffled.reordered == done.sent_behind and shuffled.duplicates == 0
    assert shuffled.lost == 0 and shuffled.expected == PACKETS

    # A bridged peer's RTP (another SSRC): loss and jitter, but no round trip.
    bridged = figures[bridged_port]
    assert not bridged.echo and bridged.source_ssrc == 0x5A5A5A5A
    assert bridged.received == PACKETS and bridged.lost == 0
    assert bridged.rtt_samples == 0 and bridged.rtt_mean_ms is None

    summary = engine.quality_summary()
    assert summary is not None
    totals = summary.aggregate
    assert (totals.streams, totals.streams_receiving, totals.streams_echoed) == (6, 6, 5)
    assert totals.duplicates == PACKETS // 5
    assert summary.aggregate.worst[0].local == f"{LOOPBACK}:{drop_port}"  # the lowest MOS
    document = summary.to_dict()
    assert document["streams"] == 6
    assert document["stream_loss_percent"]["max"] == pytest.approx(drop.loss_percent, abs=0.01)  # type: ignore[index]


def test_a_silent_stream_counts_as_measured_but_not_receiving(
    engine: ScaleEngine, echo: ImpairingEcho, base_port: BasePort
) -> None:
    port = base_port(1)
    echo.impairments[port] = lambda index: ()  # swallows everything
    engine.register("silent", spec(port, echo, packets=10))
    wait_until(lambda: echo.done[port].seen == 10)
    live = engine.stream_quality("silent")
    assert live is not None and live.received == 0 and live.mos is None
    summary = engine.quality_summary()
    assert summary is not None and summary.to_dict()["streams_silent"] == 1
    assert "none received RTP" in summary.line()


def test_a_sender_descheduled_as_its_send_returns_still_matches_every_echo(
    echo: ImpairingEcho, base_port: BasePort
) -> None:
    """The round trip starts before the send: a busy machine can deschedule the sender as its
    send returns, by which time the echo may have come back and been stamped by the kernel.
    Here each send is followed by 5 ms asleep, and every echo must still be matched, none
    shorter than 0 nor counted unmatched. (The Python backend, whose send can be wrapped.)"""
    engine = create_scale_engine(prefer="python")
    engine.start()
    try:
        port = base_port(1)
        engine.register("slow", spec(port, echo, packets=20))
        stream = engine._streams["slow"]  # type: ignore[attr-defined]
        send = stream.send

        def send_then_stall(packet: bytearray) -> int:
            sent = int(send(packet))
            time.sleep(0.005)
            return sent

        stream.send = send_then_stall
        wait_until(lambda: echo.done[port].seen == 20)
        wait_until(echo.idle)
        time.sleep(0.1)
        counts = engine.unregister("slow")
        assert counts is not None and counts.quality is not None
        quality = counts.quality
        assert quality.received == 20 and quality.rtt_unmatched == 0 and quality.rtt_samples == 20
        assert quality.rtt_min_ms is not None and quality.rtt_min_ms >= 0.0
    finally:
        engine.close()


def test_quality_off_measures_nothing(backend: Backend, echo: ImpairingEcho, base_port: BasePort) -> None:
    engine = create_scale_engine(prefer=backend.prefer, quality=False)
    engine.start()
    try:
        port = base_port(1)
        engine.register("quiet", spec(port, echo, packets=10))
        wait_until(lambda: echo.done[port].seen == 10)
        wait_until(lambda: engine.snapshot().rtp_packets_received == 10)
        assert engine.stream_quality("quiet") is None
        assert engine.quality_summary() is None
        counts = engine.unregister("quiet")
        assert counts is not None and counts.packets == 10 and counts.quality is None
    finally:
        engine.close()


def test_sequence_numbers_are_placed_as_rfc_3550_places_them(
    engine: ScaleEngine, base_port: BasePort
) -> None:
    """Crafted RTP from the peer's port: a wrap, duplicates, a gap filled late, a lone jump
    (ignored), a jump the next packet confirms (a restart) and a new SSRC taking over."""
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind((LOOPBACK, 0))
    first, second = 0x11111111, 0x22222222
    sequence = [
        (first, seq) for seq in (65533, 65534, 65535, 0, 1, 1, 65535, 3, 2, 40000, 5, 20000, 20001, 20002)
    ] + [(second, 100), (second, 101)]
    try:
        port = base_port(1)
        stream = StreamSpec(LOOPBACK, port, LOOPBACK, peer.getsockname()[1], PCMU, INTERVAL_MS)
        engine.register("crafted", stream)
        for index, (ssrc, seq) in enumerate(sequence):
            header = bytes([0x80, 0]) + seq.to_bytes(2, "big") + (index * 160).to_bytes(4, "big")
            peer.sendto(header + ssrc.to_bytes(4, "big") + bytes(160), (LOOPBACK, port))
        wait_until(lambda: engine.snapshot().rtp_packets_received == len(sequence))
        counts = engine.unregister("crafted")
    finally:
        peer.close()
    assert counts is not None and (figures := counts.quality) is not None
    # 65533..5 expects 9 (4 never came), 20001..20002 two, 100..101 two; 40000 and 20000
    # came alone and count nowhere; 1 and 65535 came twice; 2 came after 3.
    assert (figures.expected, figures.received, figures.lost) == (13, 14, -1)
    assert (figures.duplicates, figures.reordered, figures.seq_jumps, figures.ssrc_changes) == (2, 1, 1, 1)
    assert figures.source_ssrc == second and not figures.echo
    assert figures.loss_percent == pytest.approx(100 / 13)
