"""`-rtp_send`: the standalone RTP generator, N synthetic streams and no SIP.

Stream i binds BASE + 2i and starts i/N of an interval after the first, so the packets
of all streams spread evenly over each period instead of leaving in one burst. The run
ends when the duration is over (plus one interval for the last packets) or on SIGINT,
SIGTERM or SIGUSR1, and the summary is the same either way. -metrics_addr serves the
engine's counters as they are at each scrape, -stats_jsonl writes a row each -fd, and
-summary_html charts a sample a second.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import FrameType

from gossipper import __version__
from gossipper.errors import InvalidValue
from gossipper.media.scale.api import NS_PER_MS, ScaleEngine, StreamSpec
from gossipper.media.scale.factory import create_scale_engine
from gossipper.media.scale.preflight import PORT_STEP, ensure_open_files, preflight
from gossipper.media.settings import StandaloneSettings
from gossipper.outcome import RunOutcome
from gossipper.stats.counters import MediaCounters, RunCounters
from gossipper.stats.live import LiveOutputs
from gossipper.stats.summary import by_errno, health_report, write_summary_json

LIVE_PERIOD_S = 1.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


def run_standalone(settings: StandaloneSettings) -> RunOutcome:
    """Run the generator: succeeded when packets went out without send errors."""
    specs, engine = _prepared(settings)
    counters = RunCounters()
    cpu_at_start = time.process_time()
    engine_media = _EngineMedia(engine)
    outputs = LiveOutputs(settings.live, counters, engine_media, sip=False)
    stop = threading.Event()
    with stop_on_signals(stop):
        try:
            outputs.open()
            engine.start()
            try:
                outputs.start(time.time())
                periods = LivePeriods(outputs, counters, engine_media, settings.stat_period_s)
                registered_at = _register_all(engine, specs, stop)
                _print_start_line(engine, specs)
                _wait_for_end(settings, engine, stop, registered_at, specs[0].interval_ms, periods)
            finally:
                engine.close()
                finished_at = counters.finished_at = time.time()
                counters.process_cpu_s = time.process_time() - cpu_at_start
                counters.media = engine_media.close()
        except BaseException:
            outputs.close()
            raise
    outputs.finish(finished_at)
    healthy = _report(settings, counters)
    outputs.write_report(__version__, settings.health)
    return _outcome(counters.media).gated(healthy)


class _EngineMedia:
    """The engine's counters for whoever reads them live (the metrics endpoint's thread too):
    its snapshot while it runs, then the final one, never a closed engine's."""

    def __init__(self, engine: ScaleEngine) -> None:
        self.engine = engine
        self.final: MediaCounters | None = None

    def __call__(self) -> MediaCounters:
        return self.final if self.final is not None else self._read()

    def close(self) -> MediaCounters:
        """The engine has stopped: its last counters, with the streams' quality, kept from now on."""
        final = self.final = self._read()
        final.quality_enabled = self.engine.quality
        final.quality = self.engine.quality_summary()
        return final

    def _read(self) -> MediaCounters:
        media = self.engine.snapshot()
        media.engine = self.engine.name
        return media


class LivePeriods:
    """The live outputs' samples each second and rows each -fd, read from the media counters
    of that moment: one engine's, or a cluster's nodes' merged."""

    def __init__(
        self,
        outputs: LiveOutputs,
        counters: RunCounters,
        media: Callable[[], MediaCounters],
        period_s: float,
    ) -> None:
        self.outputs = outputs
        self.counters = counters
        self.media = media
        self.period_s = period_s if period_s > 0 else LIVE_PERIOD_S
        self.next_at = time.monotonic() + self.period_s

    def second(self) -> None:
        self.counters.media = self.media()
        self.outputs.tick(time.time())

    def run(self) -> None:
        self.counters.media = self.media()
        self.outputs.period(time.time())
        self.next_at = time.monotonic() + self.period_s


def _resolve(address: tuple[str, int]) -> tuple[str, int]:
    host, port = address
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as error:
        raise InvalidValue(
            f"cannot resolve {host!r} ({error.strerror})", setting="stream_destination"
        ) from None
    return str(infos[0][4][0]), port


def _source_address(remote_ip: str) -> str:
    """Loopback for a loopback peer, else the address the kernel's route to the peer uses."""
    remote = ipaddress.ip_address(remote_ip)
    if remote.is_loopback:
        return "::1" if remote.version == 6 else "127.0.0.1"
    family = socket.AF_INET6 if remote.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((remote_ip, 9))  # a UDP connect only picks a route; nothing is sent
        except OSError as error:
            raise InvalidValue(
                f"no route to {remote_ip} ({error.strerror}); name the local address to send from",
                setting="stream_destination",
            ) from None
        return str(probe.getsockname()[0])


def _stream_specs(
    settings: StandaloneSettings, local_ip: str, remote_ip: str, remote_port: int
) -> list[StreamSpec]:
    stream = settings.media.stream_defaults.synthetic()
    streams = settings.streams
    base = settings.media.base_port
    interval = stream.interval_ms
    return [
        StreamSpec.carrying(
            stream,
            (local_ip, base + PORT_STEP * index),
            (remote_ip, remote_port),
            start_offset_ms=index * interval / streams,
        )
        for index in range(streams)
    ]


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C and friends end the run through the normal path, so the summary is whole."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; its caller owns the signals then
        return
    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _print_start_line(engine: ScaleEngine, specs: list[StreamSpec]) -> None:
    first, last = specs[0], specs[-1]
    duration = f"for {first.duration_ms / 1000:g} s" if first.duration_ms else "until interrupted"
    print(
        f"gossipper: rtp_send: {len(specs)} stream(s) of {first.codec.label} (PT {first.pt}, "
        f"{first.payload_bytes}-byte payload every {first.interval_ms} ms) to "
        f"{_endpoint(first.remote_ip, first.remote_port)} from {_endpoint(first.local_ip, first.local_port)}"
        f"{f'..{last.local_port}' if len(specs) > 1 else ''} {duration}; "
        f"engine {engine.name} ({engine.reason}); {engine.thread_count()} sender thread(s)",
        file=sys.stderr,
        flush=True,
    )


def _endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _register_all(engine: ScaleEngine, specs: list[StreamSpec], stop: threading.Event) -> float:
    """Register every stream (or until stopped); returns when the last one was registered.

    Opening thousands of sockets takes a while, so phases measured from each
    stream's own registration would drift with it and bunch up. Every phase is instead
    placed on one grid that starts when registration starts, moved forward by whole
    intervals when that moment has already passed: the spread over the interval stays even.
    """
    grid_start_ns = time.monotonic_ns()
    for index, spec in enumerate(specs):
        if stop.is_set():
            break
        try:
            engine.register(f"rtp-{index}", _on_common_grid(spec, grid_start_ns))
        except OSError as error:
            raise InvalidValue(
                f"cannot open the socket of stream {index} (port {spec.local_port}): "
                f"{error.strerror or error}",
                setting="streams",
            ) from None
    return time.monotonic()


def _on_common_grid(spec: StreamSpec, grid_start_ns: int) -> StreamSpec:
    interval_ns = spec.interval_ms * NS_PER_MS
    due_ns = grid_start_ns + round(spec.start_offset_ms * NS_PER_MS)
    now_ns = time.monotonic_ns()
    if due_ns < now_ns:
        due_ns += -(-(now_ns - due_ns) // interval_ns) * interval_ns  # whole intervals, rounded up
    return replace(spec, start_offset_ms=(due_ns - now_ns) / NS_PER_MS)


def _wait_for_end(
    settings: StandaloneSettings,
    engine: ScaleEngine,
    stop: threading.Event,
    registered_at: float,
    interval_ms: int,
    periods: LivePeriods | None,
    each_second: Callable[[], None] | None = None,
) -> None:
    """Until the last stream's last slot plus one interval has passed, or a stop signal.

    Each second the live line is shown and the live outputs sampled; a cluster node has
    neither (its driver shows and writes them) and is told of each second instead.
    """
    duration_ms = settings.media.stream_defaults.duration_ms
    deadline = registered_at + (duration_ms + interval_ms) / 1000 if duration_ms else None
    live = _LiveLine(settings.media.quiet, engine) if each_second is None else None
    next_second = time.monotonic() + LIVE_PERIOD_S
    while not stop.is_set():
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            break
        next_tick = next_second if periods is None else min(next_second, periods.next_at)
        if deadline is not None:
            next_tick = min(next_tick, deadline)
        if stop.wait(max(0.0, next_tick - now)):
            break
        now = time.monotonic()
        if now >= next_second:
            next_second = now + LIVE_PERIOD_S
            if live is not None:
                live.show()
            if each_second is not None:
                each_second()
            if periods is not None:
                periods.second()
        if periods is not None and now >= periods.next_at:
            periods.run()
    if live is not None:
        live.finish()


def _prepared(settings: StandaloneSettings) -> tuple[list[StreamSpec], ScaleEngine]:
    """The streams a run sends (the preflight's warnings printed) and the engine to send them."""
    media = settings.media
    remote_ip, remote_port = _resolve(settings.destination)
    local_ip = media.ip or settings.local_ip or _source_address(remote_ip)
    specs = _stream_specs(settings, local_ip, remote_ip, remote_port)
    for warning in preflight(len(specs), media.base_port, media.max_port):
        print(f"gossipper: {warning}", file=sys.stderr)
    engine = create_scale_engine(
        prefer="iouring" if media.iouring else "auto", rt_priority=media.rt_priority, quality=media.quality
    )
    return specs, engine


def run_node_streams(
    settings: StandaloneSettings,
    stop: threading.Event,
    each_second: Callable[[MediaCounters], None] | None = None,
) -> RunCounters:
    """One cluster node's share of a standalone run (gossipper/cluster): the same streams as
    run_standalone, but no signal handlers, live outputs, result line or summary, which are
    the driver's; `stop` ends it early, and `each_second` is handed the engine's counters so
    the driver keeps a node's counts up to its last report should the node die.
    """
    specs, engine = _prepared(settings)
    ensure_open_files(len(specs))
    counters = RunCounters()
    cpu_at_start = time.process_time()
    engine_media = _EngineMedia(engine)
    engine.start()
    try:
        registered_at = _register_all(engine, specs, stop)
        report = None if each_second is None else (lambda: each_second(engine_media()))
        _wait_for_end(settings, engine, stop, registered_at, specs[0].interval_ms, None, report)
    finally:
        engine.close()
        counters.finished_at = time.time()
        counters.process_cpu_s = time.process_time() - cpu_at_start
        counters.media = engine_media.close()
    return counters


@dataclass
class _Previous:
    at: float
    packets: int = 0


class _LiveLine:
    """A SIPp-like status line each second: rewritten in place on a terminal, appended elsewhere."""

    def __init__(self, quiet: bool, engine: ScaleEngine) -> None:
        self.engine = engine
        self.started = time.monotonic()
        self.next_at = self.started + LIVE_PERIOD_S
        self.in_place = sys.stdout.isatty() and not quiet
        self.out = sys.stdout if self.in_place else sys.stderr
        self.previous = _Previous(self.started)
        self.shown = False

    def show(self) -> None:
        now = time.monotonic()
        media = self.engine.snapshot()
        pps = (media.rtp_packets_sent - self.previous.packets) / max(1e-9, now - self.previous.at)
        self.previous = _Previous(now, media.rtp_packets_sent)
        line = (
            f"{now - self.started:7.1f} s  {pps:9.0f} pps  {media.rtp_packets_sent:>11} packets  "
            f"{sum(media.send_errors.values())} send errors  "
            f"{sum(media.icmp_unreachable.values())} ICMP unreachable  {media.late_packets} late  "
            f"{media.streams_active} active streams"
        )
        if self.in_place:
            self.out.write(f"\r{line}\x1b[K")
        else:
            self.out.write(f"gossipper: {line}\n")
        self.out.flush()
        self.shown = True
        self.next_at = now + LIVE_PERIOD_S

    def finish(self) -> None:
        if self.in_place and self.shown:
            self.out.write("\n")
            self.out.flush()


def _report(settings: StandaloneSettings, counters: RunCounters) -> bool:
    """Print the result line and write the summary; -> whether the health gates passed."""
    media = counters.media
    elapsed = counters.elapsed_s()
    on_time = 100.0 * media.on_time_1ms / media.rtp_packets_sent if media.rtp_packets_sent else 0.0
    line = (
        f"gossipper: rtp_send done: {media.rtp_packets_sent} packets, {media.rtp_octets_sent} payload octets "
        f"in {elapsed:.3f} s ({media.rtp_packets_sent / elapsed if elapsed else 0.0:.1f} pps); "
        f"send errors: {by_errno(media.send_errors)}; ICMP unreachable (each packet sent again): "
        f"{by_errno(media.icmp_unreachable)}; "
        f"late (>1 ms): {media.late_packets}, max late {media.max_late_ms:.3f} ms; "
        f"on time within 1 ms: {on_time:.2f} %; engine {media.engine}"
    )
    out = sys.stderr if settings.summary_json == "-" else sys.stdout
    print(line, file=out, flush=True)
    if media.quality is not None:
        print(f"gossipper: rtp_send quality: {media.quality.line()}", file=out, flush=True)
    report = health_report(counters, __version__, settings.health)
    for failure in report.failure_lines():
        print(f"gossipper: {failure}", file=sys.stderr)
    if settings.summary_json:
        write_summary_json(settings.summary_json, counters, __version__, settings.health)
    return report.passed


def _outcome(media: MediaCounters) -> RunOutcome:
    if sum(media.send_errors.values()):
        return RunOutcome.SOME_FAILED
    return RunOutcome.ALL_SUCCEEDED if media.rtp_packets_sent else RunOutcome.NOTHING_DONE
