"""What a cluster node runs (run_node_streams): its streams on its port slice, its counts
returned rather than printed, reports each second, and an early end when told to stop."""

from __future__ import annotations

import socket
import threading
import time

from gossipper.cli.ports import LOOPBACK, free_ports_below_ephemeral
from gossipper.media.codecs import CODECS
from gossipper.media.scale.standalone import run_node_streams
from gossipper.media.settings import MediaSettings, StandaloneSettings
from gossipper.media.streams import StreamDefaults
from gossipper.stats.counters import MediaCounters


def _settings(port: int, base: int, streams: int, duration_ms: int) -> StandaloneSettings:
    return StandaloneSettings(
        destination=(LOOPBACK, port),
        streams=streams,
        media=MediaSettings(
            base_port=base,
            max_port=base + 2 * streams - 1,
            scale=True,
            rt_priority=0,
            quiet=True,
            stream_defaults=StreamDefaults(CODECS["PCMU/8000"], duration_ms=duration_ms),
        ),
    )


def test_node_runs_its_streams_and_returns_their_counts() -> None:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind((LOOPBACK, 0))
    base = free_ports_below_ephemeral(10)
    reports: list[MediaCounters] = []
    try:
        counters = run_node_streams(
            _settings(sink.getsockname()[1], base, 5, 1200), threading.Event(), reports.append
        )
    finally:
        sink.close()
    assert counters.media.streams_started == 5
    assert 5 * 60 <= counters.media.rtp_packets_sent <= 5 * 61
    assert counters.finished_at is not None
    assert reports and reports[-1].rtp_packets_sent <= counters.media.rtp_packets_sent


def test_node_ends_early_when_stopped() -> None:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind((LOOPBACK, 0))
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    try:
        counters = run_node_streams(
            _settings(sink.getsockname()[1], free_ports_below_ephemeral(4), 2, 0), stop
        )
    finally:
        sink.close()
    assert time.monotonic() - started < 5.0  # -rtp_dur 0 runs until stopped
    assert counters.media.rtp_packets_sent > 0
