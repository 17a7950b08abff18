"""The scale engine contract, checked from real receiving sockets on loopback, per backend."""

from __future__ import annotations

import errno
import itertools
import os
import signal
import socket
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from gossipper.cli.ports import LOOPBACK
from gossipper.errors import BindError
from gossipper.media.codecs import CODECS, Codec
from gossipper.media.rtp import RtpHeader, parse_rtp, rtp_payload
from gossipper.media.scale.api import ScaleEngine, StreamCounts, StreamSpec
from gossipper.media.scale.python_backend import PythonScaleEngine, _Stream
from tests.media.scale.backends import Backend

BasePort = Callable[[int], int]
T = TypeVar("T")


@dataclass
class Received:
    header: RtpHeader
    payload: bytes
    source_port: int
    at: float


class Receiver:
    """A UDP socket standing for the SBC; collect() gathers what arrived, parsed.

    With echo, each datagram goes straight back to its source, as an SBC's or a UAS's
    -rtp_echo return RTP does.
    """

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((LOOPBACK, 0))
        self.port: int = self.sock.getsockname()[1]

    def collect(self, seconds: float, expected: int | None = None, echo: bool = False) -> list[Received]:
        packets: list[Received] = []
        deadline = time.monotonic() + seconds
        while (expected is None or len(packets) < expected) and (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data, source = self.sock.recvfrom(65535)
            except TimeoutError:
                break
            if echo:
                self.sock.sendto(data, source)
            port = source[1]
            header = parse_rtp(data)
            packets.append(Received(header, rtp_payload(data, header), port, time.monotonic()))
        return packets

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver()
    yield rx
    rx.close()


def spec_for(
    receiver: Receiver, port: int, codec: Codec, interval_ms: int | None = None, **extra: Any
) -> StreamSpec:
    return StreamSpec(
        local_ip=LOOPBACK,
        local_port=port,
        remote_ip=LOOPBACK,
        remote_port=receiver.port,
        codec=codec,
        interval_ms=interval_ms or codec.default_interval_ms,
        **extra,
    )


def by_ssrc(packets: list[Received]) -> dict[int, list[Received]]:
    streams: dict[int, list[Received]] = defaultdict(list)
    for packet in packets:
        streams[packet.header.ssrc].append(packet)
    return streams


def port_is_bound(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError as error:
            return error.errno == errno.EADDRINUSE
    return False


def wait_until(done: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def timed_packets(engine: ScaleEngine) -> int:
    """Packets both counted as sent and given a lateness, whichever the sender updates last."""
    totals = engine.snapshot()
    return min(totals.rtp_packets_sent, totals.on_time_1ms + totals.late_packets)


def received_totals(engine: ScaleEngine) -> tuple[int, int, int]:
    totals = engine.snapshot()
    return totals.rtp_packets_received, totals.rtp_octets_received, totals.malformed_rtp


def in_thread(action: Callable[[], T]) -> T:
    """Run one engine call from another thread, as the SIP engine does, and return its result."""
    results: list[T] = []
    worker = threading.Thread(target=lambda: results.append(action()))
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "engine call did not return"
    return results[0]


# (codec label, interval ms, channels, pt override) -> expected (pt, payload bytes, step, silence)
PACKET_CASES = [
    (("PCMU/8000", 20, 1, None), (0, 160, 160, 0xFF)),
    (("PCMA/8000", 20, 1, None), (8, 160, 160, 0xD5)),
    (("PCMU/8000", 10, 1, None), (0, 80, 80, 0xFF)),
    (("G722/8000", 20, 1, None), (9, 160, 160, 0x00)),
    (("ILBC/8000", 30, 1, None), (97, 240, 240, 0x00)),
    (("H264/90000", 33, 1, None), (96, 3000, 3000, 0x00)),
    (("OPUS/48000", 20, 2, None), (111, 1920, 960, 0x00)),
    (("PCMU/8000", 20, 1, 101), (101, 160, 160, 0xFF)),
]


@pytest.mark.parametrize(("case", "expected"), PACKET_CASES, ids=lambda v: "-".join(map(str, v)))
def test_packets_are_well_formed(
    engine: ScaleEngine,
    receiver: Receiver,
    base_port: BasePort,
    case: tuple[str, int, int, int | None],
    expected: tuple[int, int, int, int],
) -> None:
    label, interval, channels, pt = case
    want_pt, want_bytes, want_step, silence = expected
    streams, packets_each = 4, 8
    base = base_port(streams)
    codec = CODECS[label]
    for index in range(streams):
        spec = spec_for(
            receiver,
            base + 2 * index,
            codec,
            interval,
            duration_ms=interval * packets_each,
            payload_type=pt,
            channels=channels,
            start_offset_ms=index * interval / streams,
        )
        engine.register(f"call-{index}", spec)
    received = receiver.collect(interval * packets_each / 1000 + 3, expected=streams * packets_each)
    assert len(received) == streams * packets_each
    flows = by_ssrc(received)
    assert len(flows) == streams, "each stream needs its own SSRC"
    assert sorted({flow[0].source_port for flow in flows.values()}) == [
        base + 2 * index for index in range(streams)
    ]
    for flow in flows.values():
        assert {packet.source_port for packet in flow} == {flow[0].source_port}
        for packet in flow:
            assert packet.header.version == 2
            assert packet.header.payload_type == want_pt
            assert packet.header.csrc_count == 0 and not packet.header.extension and not packet.header.padding
            assert packet.payload == bytes((silence,)) * want_bytes
        assert [packet.header.marker for packet in flow] == [True] + [False] * (packets_each - 1)
        for before, after in itertools.pairwise(flow):
            assert after.header.sequence == (before.header.sequence + 1) & 0xFFFF
            assert after.header.timestamp == (before.header.timestamp + want_step) & 0xFFFFFFFF
    # the sender counts a packet just after send() returns, so the receiver can see it first
    wait_until(lambda: timed_packets(engine) >= streams * packets_each, timeout=2.0)
    totals = engine.snapshot()
    assert totals.rtp_packets_sent == streams * packets_each
    assert totals.rtp_octets_sent == streams * packets_each * want_bytes
    assert totals.streams_started == streams
    assert not totals.send_errors
    assert totals.on_time_1ms + totals.late_packets == totals.rtp_packets_sent
    assert totals.on_time_1ms <= totals.on_time_2ms <= totals.rtp_packets_sent


def test_packet_limit_finishes_stream_but_keeps_it_registered(
    engine: ScaleEngine, receiver: Receiver, base_port: BasePort
) -> None:
    port = base_port(1)
    engine.register("call", spec_for(receiver, port, CODECS["PCMU/8000"], 20, duration_ms=200))
    assert len(receiver.collect(3.0, expected=10)) == 10
    assert receiver.collect(0.3) == [], "a finished stream must send nothing more"
    counts = engine.stream_counts("call")
    assert counts is not None and (counts.packets, counts.octets) == (10, 1600)
    assert port_is_bound(port), "a finished stream keeps its port until unregistered"
    final = engine.unregister("call")
    assert final is not None and final.packets == 10
    assert not port_is_bound(port)
    assert engine.stream_counts("call") is None
    assert engine.snapshot().rtp_packets_sent == 10


def test_pause_resume_unregister_from_another_thread(
    engine: ScaleEngine, receiver: Receiver, base_port: BasePort
) -> None:
    base = base_port(2)
    interval = 20
    step = 160
    engine.register("paused", spec_for(receiver, base, CODECS["PCMU/8000"], interval))
    engine.register("steady", spec_for(receiver, base + 2, CODECS["PCMU/8000"], interval, start_offset_ms=10))
    before = receiver.collect(0.3)
    in_thread(lambda: engine.pause("paused"))
    paused_counts = engine.stream_counts("paused")
    assert paused_counts is not None
    during = receiver.collect(0.4)
    after_pause = engine.stream_counts("paused")
    assert after_pause is not None and after_pause.packets <= paused_counts.packets + 1
    in_thread(lambda: engine.resume("paused"))
    after = receiver.collect(0.3)

    flows = by_ssrc(before + during + after)
    paused_flow = next(flow for flow in flows.values() if flow[0].source_port == base)
    steady_flow = next(flow for flow in flows.values() if flow[0].source_port == base + 2)
    gaps = [(a, b) for a, b in itertools.pairwise(paused_flow) if b.at - a.at > 0.2]
    assert len(gaps) == 1, "exactly one silence: the pause"
    last, first = gaps[0]
    assert first.header.marker, "the first packet after resume carries the marker bit"
    assert first.header.sequence == (last.header.sequence + 1) & 0xFFFF
    slots = ((first.header.timestamp - last.header.timestamp) & 0xFFFFFFFF) / step
    assert slots == int(slots), "resume stays on the original grid"
    assert abs(slots - (first.at - last.at) * 1000 / interval) <= 3, "timestamp follows the wall clock"
    assert sum(packet.header.marker for packet in paused_flow) == 2
    assert not any(p.header.marker for p in steady_flow[1:]), "pausing one stream leaves others alone"
    assert len(steady_flow) >= 40

    counts = in_thread(lambda: engine.unregister("paused"))
    assert counts is not None and counts.packets >= len(paused_flow)
    assert not port_is_bound(base), "unregister closes the socket before it returns"
    assert all(packet.source_port != base for packet in receiver.collect(0.2))
    assert engine.stream_counts("paused") is None
    totals = engine.snapshot()
    assert totals.rtp_packets_sent >= counts.packets + len(steady_flow)
    assert engine.unregister("paused") is None
    engine.pause("unknown-call")  # ignored: the call may have ended already
    engine.resume("unknown-call")


def test_late_stream_skips_to_latest_slot_instead_of_bursting(
    engine: ScaleEngine, receiver: Receiver, base_port: BasePort
) -> None:
    """Freeze the whole process (every sender thread) for 200 ms: streams must not catch up."""
    streams, interval, step = 5, 20, 160
    base = base_port(streams)
    for index in range(streams):
        spec = spec_for(receiver, base + 2 * index, CODECS["PCMU/8000"], interval, start_offset_ms=4 * index)
        engine.register(f"call-{index}", spec)
    received = receiver.collect(0.3)
    waker = subprocess.Popen(["sh", "-c", f"sleep 0.2; kill -CONT {os.getpid()}"])
    os.kill(os.getpid(), signal.SIGSTOP)
    waker.wait()
    resumed_at = time.monotonic()
    received += receiver.collect(0.5)
    flows = by_ssrc(received)
    assert len(flows) == streams
    for flow in flows.values():
        pairs = list(itertools.pairwise(flow))
        assert all(b.header.sequence == (a.header.sequence + 1) & 0xFFFF for a, b in pairs)
        slots = [((b.header.timestamp - a.header.timestamp) & 0xFFFFFFFF) / step for a, b in pairs]
        assert all(slot == int(slot) for slot in slots), "timestamps stay on the grid"
        assert max(slots) >= 5, "the stalled slots are skipped, the timestamp jumps over them"
        soon = [packet for packet in flow if 0 <= packet.at - resumed_at < 2.5 * interval / 1000]
        assert len(soon) <= 4, f"burst after a stall: {len(soon)} packets within 2.5 intervals"
    totals = engine.snapshot()
    assert totals.late_packets >= 1
    assert totals.max_late_ms >= 2.0
    if isinstance(engine, PythonScaleEngine):  # MediaCounters has no field for it (yet)
        assert engine.slots_skipped >= 5 * streams


def _port_nobody_listens_on() -> int:
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind((LOOPBACK, 0))
    port: int = closed.getsockname()[1]
    closed.close()  # nobody listens: the kernel answers each packet with ICMP port unreachable
    return port


def test_every_packet_goes_to_a_closed_port_and_its_icmp_reports_count_apart(
    engine: ScaleEngine, base_port: BasePort
) -> None:
    """Each packet to a port nobody listens on draws an ICMP port unreachable, which the
    stream's connected socket hands to its next send (ECONNREFUSED) instead of sending that
    packet. The packet goes again at once: every packet due is sent, and the reports count
    by errno in icmp_unreachable, not in send_errors. (Before, every other packet was lost.)"""
    streams, packets_each = 5, 30
    base = base_port(streams)
    dead_port = _port_nobody_listens_on()
    for index in range(streams):
        spec = StreamSpec(
            LOOPBACK,
            base + 2 * index,
            LOOPBACK,
            dead_port,
            CODECS["PCMU/8000"],
            10,
            duration_ms=10 * packets_each,
            start_offset_ms=index * 10 / streams,
        )
        engine.register(f"refused-{index}", spec)

    def attempted(index: int) -> int:
        counts = engine.stream_counts(f"refused-{index}")
        return 0 if counts is None else counts.packets + counts.send_errors

    wait_until(lambda: all(attempted(index) == packets_each for index in range(streams)))
    counts = [engine.unregister(f"refused-{index}") for index in range(streams)]  # the last reports too
    totals = engine.snapshot()
    assert all(count is not None and count.packets + count.send_errors == packets_each for count in counts)
    sent, failed = sum(c.packets for c in counts if c), sum(c.send_errors for c in counts if c)
    reports = sum(c.icmp_reports for c in counts if c)
    assert failed <= 1, "a retry fails only if another report lands between the two sends"
    assert totals.rtp_packets_sent == sent == streams * packets_each - failed
    assert sum(totals.send_errors.values()) == failed
    assert totals.icmp_unreachable == {"ECONNREFUSED": reports}
    assert reports >= streams * packets_each // 2  # about one per packet


def test_a_listening_port_gets_every_packet_counted_and_no_icmp_report(
    engine: ScaleEngine, receiver: Receiver, base_port: BasePort
) -> None:
    streams, packets_each = 5, 30
    base = base_port(streams)
    for index in range(streams):
        spec = spec_for(
            receiver,
            base + 2 * index,
            CODECS["PCMU/8000"],
            10,
            duration_ms=10 * packets_each,
            start_offset_ms=index * 10 / streams,
        )
        engine.register(f"call-{index}", spec)
    received = receiver.collect(10.0, expected=streams * packets_each)
    counts = [engine.unregister(f"call-{index}") for index in range(streams)]
    received += receiver.collect(0.1)
    assert counts == [StreamCounts(packets_each, packets_each * 80, 0, 0)] * streams
    totals = engine.snapshot()
    assert len(received) == totals.rtp_packets_sent == streams * packets_each
    assert totals.icmp_unreachable == {} and not totals.send_errors


class _ScriptedSend:
    """Stands for a socket's send(): raises the errors given, in turn, then sends."""

    def __init__(self, *errors: int) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self, packet: bytearray) -> int:
        self.calls += 1
        if self.errors:
            code = self.errors.pop(0)
            raise OSError(code, os.strerror(code))
        return len(packet)


def test_python_backend_sends_once_more_after_an_icmp_report_and_counts_a_second_failure(
    receiver: Receiver, base_port: BasePort
) -> None:
    """What the native core's test under seccomp checks (a send again that fails too), here
    on the Python backend's failure path itself."""
    engine = PythonScaleEngine()  # not started: the failure path is called directly
    stream = _Stream(spec_for(receiver, base_port(1), CODECS["PCMU/8000"]), 0)
    try:
        refused = OSError(errno.ECONNREFUSED, "refused")
        stream.send = again = _ScriptedSend()
        assert engine._send_failed(stream, stream.packet, refused) and again.calls == 1
        stream.send = again = _ScriptedSend(errno.ECONNREFUSED)
        assert not engine._send_failed(stream, stream.packet, refused) and again.calls == 1
        stream.send = again = _ScriptedSend()
        assert not engine._send_failed(stream, stream.packet, OSError(errno.EAGAIN, "full"))
        assert again.calls == 0  # not an ICMP report: not sent again
        assert (stream.icmp_reports, stream.send_errors) == (2, 2)
        totals = engine.snapshot()
        assert totals.icmp_unreachable == {"ECONNREFUSED": 2}
        assert totals.send_errors == {"ECONNREFUSED": 1, "EAGAIN": 1}
    finally:
        stream.sock.close()
        engine.close()


def test_register_rejects_live_call_id_and_taken_port(
    engine: ScaleEngine, receiver: Receiver, base_port: BasePort
) -> None:
    base = base_port(2)
    engine.register("call", spec_for(receiver, base, CODECS["PCMU/8000"]))
    with pytest.raises(ValueError, match="call"):
        engine.register("call", spec_for(receiver, base + 2, CODECS["PCMU/8000"]))
    with pytest.raises(BindError, match=str(base)):
        engine.register("other", spec_for(receiver, base, CODECS["PCMU/8000"]))
    engine.unregister("call")
    engine.register("call", spec_for(receiver, base, CODECS["PCMU/8000"]))  # the id is free again


def test_close_keeps_snapshot_and_releases_ports(
    backend: Backend, receiver: Receiver, base_port: BasePort
) -> None:
    engine = backend.make()
    engine.start()
    base = base_port(3)
    for index in range(3):
        engine.register(f"call-{index}", spec_for(receiver, base + 2 * index, CODECS["PCMA/8000"]))
    time.sleep(0.3)
    engine.close()
    with pytest.raises(RuntimeError):  # a closed engine sends no more
        engine.register("late", spec_for(receiver, base, CODECS["PCMA/8000"]))
    totals = engine.snapshot()
    assert totals.rtp_packets_sent >= 3 * 10
    assert totals.rtp_octets_sent == totals.rtp_packets_sent * 160
    assert not any(port_is_bound(base + 2 * index) for index in range(3))


def _thread_count() -> int:
    return len(os.listdir(f"/proc/{os.getpid()}/task"))


def test_threads_stay_few_with_5000_streams(engine: ScaleEngine, base_port: BasePort) -> None:
    streams = 5000
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # never read: the kernel drops the excess
    sink.bind((LOOPBACK, 0))
    base = base_port(streams)
    threads_before = _thread_count()
    try:
        for index in range(streams):
            spec = StreamSpec(
                LOOPBACK,
                base + 2 * index,
                LOOPBACK,
                sink.getsockname()[1],
                CODECS["PCMU/8000"],
                200,  # 25,000 pps: every backend keeps up, the point is the thread count
                start_offset_ms=index * 200 / streams,
            )
            engine.register(f"call-{index}", spec)
        time.sleep(1.0)
        assert _thread_count() < 64
        assert _thread_count() - threads_before <= max(8, engine.thread_count())
        assert engine.thread_count() <= 2 * (os.cpu_count() or 1) + 2
        totals = engine.snapshot()
        assert totals.streams_started == streams
        assert totals.rtp_packets_sent >= streams  # every stream sent at least once
        assert not totals.send_errors
    finally:
        sink.close()


def test_echoed_rtp_is_counted_as_received_and_survives_unregister_and_close(
    backend: Backend, receiver: Receiver, base_port: BasePort
) -> None:
    streams, packets_each, interval = 10, 25, 20
    total = streams * packets_each
    base = base_port(streams)
    engine = backend.make()
    engine.start()
    try:
        for index in range(streams):
            spec = spec_for(
                receiver,
                base + 2 * index,
                CODECS["PCMU/8000"],
                interval,
                duration_ms=interval * packets_each,
                start_offset_ms=index * interval / streams,
            )
            engine.register(f"call-{index}", spec)
        echoed = receiver.collect(interval * packets_each / 1000 + 5, expected=total, echo=True)
        assert len(echoed) == total
        if isinstance(engine, PythonScaleEngine):  # its sender polls before every sleep, even idle
            wait_until(lambda: received_totals(engine) == (total, total * 160, 0))
        for index in range(streams):
            counts = engine.unregister(f"call-{index}")
            assert counts is not None and counts.packets == packets_each
        totals = engine.snapshot()
        assert totals.streams_active == 0
        assert totals.rtp_packets_sent == total
        assert received_totals(engine) == (total, total * 160, 0), "unregister drains what is left"
    finally:
        engine.close()
    assert received_totals(engine) == (total, total * 160, 0)


def test_non_rtp_from_the_peer_counts_as_malformed_and_strangers_are_not_heard(
    engine: ScaleEngine, receiver: Receiver, base_port: BasePort
) -> None:
    port = base_port(1)
    engine.register("call", spec_for(receiver, port, CODECS["PCMU/8000"], 20, duration_ms=40))
    assert len(receiver.collect(3.0, expected=2)) == 2
    malformed = [b"", b"\x80", b"\x40" + bytes(11), b"hello, world", b"SIP/2.0 200 OK\r\n\r\n"]
    rtp = [bytes(RtpHeader(0, 1, 2, 3)) + bytes(20), bytes(RtpHeader(8, 4, 5, 6))]  # 20 and 0 payload octets
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
        for datagram in [*rtp, b"hello"]:  # the socket is connected: the kernel drops these
            stranger.sendto(datagram, (LOOPBACK, port))
    for datagram in malformed + rtp:
        receiver.sock.sendto(datagram, (LOOPBACK, port))
    engine.unregister("call")  # no waiting: unregister itself counts what is queued
    assert received_totals(engine) == (2, 20, 5)
    assert engine.snapshot().rtp_packets_sent == 2
