"""Live metrics for Prometheus (-metrics_addr): one more view of the run's counters.

The collector reads RunCounters (and the media counters, through a callable so the
standalone generator can hand the scale engine's live snapshot) when Prometheus scrapes,
so nothing is counted twice and a call costs nothing more. No label names a call or a
stream: the failure class and the errno are the only labels, both from small fixed sets.

The HTTP server is prometheus_client's, on a thread of its own; the counters it reads are
written by the event loop (or the scale engine's workers, behind snapshot()). Reading an
int is atomic under the GIL; dicts are read by known key or copied, and a scrape that meets
a dict resized under it is tried again, so a scrape never fails the run and a collector
error is counted (gossipper_scrape_errors_total) rather than raised into the server.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from prometheus_client.core import CollectorRegistry, Metric
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.process_collector import ProcessCollector

from gossipper.errors import BindError
from gossipper.stats.counters import FAILURE_CLASSES, FINE_BOUNDS_MS, DurationStat, MediaCounters, RunCounters

# Histogram buckets exposed, in ms: 1, 2.5 and 5 a decade from 0.1 ms to 50 s. Each is one of
# FINE_BOUNDS_MS, so its cumulative count is exact, and 18 buckets keep a scrape small.
EXPOSED_BOUNDS_MS: tuple[float, ...] = tuple(
    round(step * 10.0**exponent, 6) for exponent in range(-1, 5) for step in (1.0, 2.5, 5.0)
)
_FINE_INDEX = {bound: index for index, bound in enumerate(FINE_BOUNDS_MS)}
_SCRAPE_ATTEMPTS = 3
DEFAULT_METRICS_HOST = "127.0.0.1"


def histogram_buckets(stat: DurationStat) -> tuple[list[tuple[str, float]], float]:
    """Prometheus' cumulative (le, count) pairs in seconds, +Inf last, and the sum in seconds,
    from one copy of the fine counts so the buckets and the count always agree."""
    fine = list(stat.fine_counts)
    total_s = stat.total_ms / 1000.0
    buckets: list[tuple[str, float]] = []
    cumulative = 0
    start = 0
    for bound in EXPOSED_BOUNDS_MS:
        end = _FINE_INDEX[bound] + 1
        cumulative += sum(fine[start:end])
        start = end
        buckets.append((_seconds_label(bound), float(cumulative)))
    buckets.append(("+Inf", float(cumulative + sum(fine[start:]))))
    return buckets, total_s


def _seconds_label(bound_ms: float) -> str:
    return f"{bound_ms / 1000.0:.10g}"


class RunCollector:
    """A prometheus_client collector over a run's counters, read at scrape time.

    `sip` is False for the standalone RTP generator, which has no calls: its metrics are
    the media ones only, rather than call counters that would always read 0.
    """

    def __init__(
        self,
        counters: RunCounters,
        media: Callable[[], MediaCounters] | None = None,
        *,
        sip: bool = True,
    ) -> None:
        self.counters = counters
        self._media = media if media is not None else (lambda: counters.media)
        self.sip = sip
        self.scrape_errors = 0

    def collect(self) -> Iterator[Metric]:
        metrics = self._read()
        if metrics is None:
            self.scrape_errors += 1
        errors = CounterMetricFamily(
            "gossipper_scrape_errors", "Scrapes whose gossipper metrics could not be read (none shown then)"
        )
        errors.add_metric([], self.scrape_errors)
        yield from metrics or []
        yield errors

    def _read(self) -> list[Metric] | None:
        for _ in range(_SCRAPE_ATTEMPTS):
            try:
                return self._metrics()
            except RuntimeError:  # a dict resized while read: the next attempt reads a settled one
                continue
            except Exception:  # a scrape must never take the run (or the server) down
                return None
        return None

    def _metrics(self) -> list[Metric]:
        metrics = self._sip_metrics() if self.sip else []
        return metrics + self._media_metrics(self._media())

    def _sip_metrics(self) -> list[Metric]:
        counters = self.counters
        failed = CounterMetricFamily(
            "gossipper_calls_failed",
            "Calls that ended failed, by failure class (as failure_classes in -summary_json)",
            labels=["class"],
        )
        for name in FAILURE_CLASSES:
            failed.add_metric([name], counters.failure_classes[name])
        elapsed_s = counters.elapsed_s()
        buckets, total_s = histogram_buckets(counters.invite_rtt)
        response_time = HistogramMetricFamily(
            "gossipper_invite_response_seconds",
            "Time from sending an INVITE to its final response (invite_rtt in -summary_json)",
        )
        response_time.add_metric([], buckets, total_s)
        return [
            _counter("gossipper_calls_created", "Calls created (outgoing, or started by a peer)",
                     counters.calls_created),
            _counter("gossipper_calls_succeeded", "Calls that ended successfully", counters.calls_succeeded),
            failed,
            _gauge("gossipper_calls_active", "Calls in progress now", counters.calls_active),
            _gauge("gossipper_target_call_rate_per_second",
                   "Call rate asked for (-r per -rp, as changed live), calls per second",
                   counters.offered_cps),
            _gauge("gossipper_achieved_call_rate_per_second",
                   "Calls created per second since the run started (rate() of "
                   "gossipper_calls_created_total gives the recent rate)",
                   counters.calls_created / elapsed_s if elapsed_s > 0 else 0.0),
            _counter("gossipper_retransmissions", "SIP retransmissions sent", counters.retransmissions),
            _counter("gossipper_timeouts", "Receive or retransmission timeouts", counters.timeouts),
            _counter("gossipper_sip_messages_sent", "SIP messages sent", counters.messages_sent),
            _counter("gossipper_sip_messages_received", "SIP messages received", counters.messages_received),
            _counter("gossipper_sip_malformed_messages", "Received SIP that did not parse",
                     counters.malformed_messages),
            _counter("gossipper_sip_unexpected_messages", "SIP messages a call did not expect",
                     counters.unexpected_messages),
            response_time,
        ]  # fmt: skip

    def _media_metrics(self, media: MediaCounters) -> list[Metric]:
        send_errors = CounterMetricFamily(
            "gossipper_rtp_send_errors", "RTP sends that failed, by errno", labels=["errno"]
        )
        for name, count in sorted(dict(media.send_errors).items()):
            send_errors.add_metric([name], count)
        unreachable = CounterMetricFamily(
            "gossipper_rtp_icmp_unreachable",
            "ICMP errors reported to the scale engine's sockets, by errno (each packet was sent again)",
            labels=["errno"],
        )
        for name, count in sorted(dict(media.icmp_unreachable).items()):
            unreachable.add_metric([name], count)
        return [
            _counter("gossipper_rtp_packets_sent", "RTP packets sent", media.rtp_packets_sent),
            _counter("gossipper_rtp_packets_received", "RTP packets received", media.rtp_packets_received),
            _counter("gossipper_rtp_sent_payload_bytes", "RTP payload octets sent", media.rtp_octets_sent),
            _counter("gossipper_rtp_late_packets", "RTP packets sent more than 1 ms after their slot",
                     media.late_packets),
            _gauge("gossipper_rtp_max_late_seconds", "Largest lateness of an RTP packet so far",
                   media.max_late_ms / 1000.0),
            send_errors,
            unreachable,
            _counter("gossipper_rtp_malformed_packets", "Received RTP that did not parse",
                     media.malformed_rtp),
            _counter("gossipper_rtp_streams_started", "RTP streams started", media.streams_started),
            _gauge("gossipper_rtp_streams_active", "RTP streams sending now", media.streams_active),
        ]  # fmt: skip


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    """prometheus_client adds the _total suffix of a counter's samples."""
    return CounterMetricFamily(name, documentation, value=value)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


@dataclass
class MetricsServer:
    """The HTTP endpoint (/metrics) serving one run's collector, until closed."""

    server: WSGIServer
    thread: threading.Thread

    @classmethod
    def open(cls, address: tuple[str, int], collector: RunCollector) -> MetricsServer:
        """Bind and serve now, so a port in use or an address not of this host fails the run
        before its first call (BindError naming the metrics address)."""
        host, port = address
        registry = CollectorRegistry()
        registry.register(collector)
        # CPU seconds, resident memory, open descriptors: gossipper_process_*, as every name here
        ProcessCollector(namespace="gossipper", registry=registry)
        try:
            server, thread = start_http_server(port, host, registry=registry)
        except socket.gaierror as error:
            raise BindError(
                f"unknown address {host!r} ({error.strerror})", setting="metrics_address"
            ) from None
        except OSError as error:
            raise BindError(
                f"cannot listen on {_endpoint(host, port)}: {error.strerror or error}",
                setting="metrics_address",
            ) from None
        return cls(server, thread)

    @property
    def port(self) -> int:
        """The port bound (what port 0 became)."""
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
