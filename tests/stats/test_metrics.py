"""The Prometheus view of a run's counters, read as Prometheus would: over HTTP from the
endpoint, through prometheus_client's own text parser."""

from __future__ import annotations

import re
import socket
import urllib.request
from collections import Counter
from collections.abc import Iterator

import pytest
from prometheus_client.core import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from gossipper.cli.ports import LOOPBACK
from gossipper.errors import BindError
from gossipper.stats.counters import FAILURE_CLASSES, MediaCounters, RunCounters
from gossipper.stats.metrics import EXPOSED_BOUNDS_MS, MetricsServer, RunCollector, histogram_buckets


def _counters() -> RunCounters:
    counters = RunCounters(started_at=1000.0, finished_at=1010.0)
    counters.calls_created = 40
    counters.calls_succeeded = 33
    counters.call_failed("timeout")
    counters.call_failed("timeout")
    counters.call_failed("unexpected_sip")
    counters.calls_active = 4
    counters.offered_cps = 5.0
    counters.retransmissions = 7
    counters.messages_sent = 120
    counters.messages_received = 118
    counters.malformed_messages = 2
    for value_ms in (0.2, 0.3, 0.3, 4.0, 80.0, 120_000.0):
        counters.invite_rtt.add(value_ms)
    counters.media = MediaCounters(
        engine="native-send",
        rtp_packets_sent=5000,
        rtp_packets_received=4990,
        rtp_octets_sent=800_000,
        late_packets=12,
        max_late_ms=3.5,
        send_errors=Counter({"ENOBUFS": 3}),
        streams_started=10,
        streams_active=8,
    )
    return counters


def _families(collector: RunCollector) -> dict[str, list[Sample]]:
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    matching = [sample.value for sample in samples if sample.name == name and sample.labels == labels]
    assert len(matching) == 1, (name, labels, samples)
    return matching[0]


def test_every_counter_reads_the_run_and_follows_prometheus_naming() -> None:
    families = _families(RunCollector(_counters()))
    assert _value(families["gossipper_calls_created"], "gossipper_calls_created_total") == 40
    assert _value(families["gossipper_calls_succeeded"], "gossipper_calls_succeeded_total") == 33
    failed = families["gossipper_calls_failed"]
    assert {sample.labels["class"] for sample in failed} == set(FAILURE_CLASSES)
    assert _value(failed, "gossipper_calls_failed_total", **{"class": "timeout"}) == 2
    assert _value(failed, "gossipper_calls_failed_total", **{"class": "unexpected_sip"}) == 1
    assert _value(families["gossipper_calls_active"], "gossipper_calls_active") == 4
    assert _value(families["gossipper_retransmissions"], "gossipper_retransmissions_total") == 7
    assert _value(families["gossipper_sip_messages_sent"], "gossipper_sip_messages_sent_total") == 120
    assert _value(families["gossipper_sip_malformed_messages"], "gossipper_sip_malformed_messages_total") == 2
    target = families["gossipper_target_call_rate_per_second"]
    assert _value(target, "gossipper_target_call_rate_per_second") == 5
    achieved = families["gossipper_achieved_call_rate_per_second"]
    assert _value(achieved, "gossipper_achieved_call_rate_per_second") == pytest.approx(4.0)
    assert _value(families["gossipper_rtp_packets_sent"], "gossipper_rtp_packets_sent_total") == 5000
    assert _value(families["gossipper_rtp_packets_received"], "gossipper_rtp_packets_received_total") == 4990
    assert _value(families["gossipper_rtp_late_packets"], "gossipper_rtp_late_packets_total") == 12
    assert _value(families["gossipper_rtp_max_late_seconds"], "gossipper_rtp_max_late_seconds") == 0.0035
    errors = families["gossipper_rtp_send_errors"]
    assert _value(errors, "gossipper_rtp_send_errors_total", errno="ENOBUFS") == 3
    assert _value(families["gossipper_rtp_streams_active"], "gossipper_rtp_streams_active") == 8
    assert all(name.startswith("gossipper_") for name in families)


def test_every_metric_has_help_text() -> None:
    registry = CollectorRegistry()
    registry.register(RunCollector(_counters()))
    text = generate_latest(registry).decode()
    for family in text_string_to_metric_families(text):
        assert len(family.documentation) > 10, family.name


def test_response_time_histogram_is_cumulative_in_seconds() -> None:
    counters = _counters()
    samples = _families(RunCollector(counters))["gossipper_invite_response_seconds"]
    buckets = {
        sample.labels["le"]: sample.value
        for sample in samples
        if sample.name == "gossipper_invite_response_seconds_bucket"
    }
    assert len(buckets) == len(EXPOSED_BOUNDS_MS) + 1
    assert buckets["0.00025"] == 1  # 0.2 ms
    assert buckets["0.0005"] == 3  # and both 0.3 ms
    assert buckets["0.005"] == 4  # 4 ms
    assert buckets["0.1"] == 5  # 80 ms
    assert buckets["50"] == 5  # 120 s is past the last bound
    assert buckets["+Inf"] == 6
    assert _value(samples, "gossipper_invite_response_seconds_count") == 6
    total = sum((0.2, 0.3, 0.3, 4.0, 80.0, 120_000.0)) / 1000
    assert _value(samples, "gossipper_invite_response_seconds_sum") == pytest.approx(total)
    values = list(buckets.values())
    assert values == sorted(values)


def test_histogram_count_always_equals_its_infinite_bucket() -> None:
    counters = RunCounters()
    for value_ms in range(1, 2000, 7):
        counters.invite_rtt.add(value_ms / 3)
    buckets, _ = histogram_buckets(counters.invite_rtt)
    assert buckets[-1] == ("+Inf", float(counters.invite_rtt.count))


def test_standalone_collector_has_no_call_metrics_and_reads_media_at_scrape_time() -> None:
    reads = []

    def media() -> MediaCounters:
        reads.append(1)
        return MediaCounters(rtp_packets_sent=len(reads) * 100)

    collector = RunCollector(RunCounters(), media, sip=False)
    first = _families(collector)
    second = _families(collector)
    assert not any(name.startswith("gossipper_calls") for name in first)
    assert _value(first["gossipper_rtp_packets_sent"], "gossipper_rtp_packets_sent_total") == 100
    assert _value(second["gossipper_rtp_packets_sent"], "gossipper_rtp_packets_sent_total") == 200


def test_a_failing_read_is_counted_never_raised() -> None:
    def broken() -> MediaCounters:
        raise ValueError("engine gone")

    collector = RunCollector(RunCounters(), broken)
    families = _families(collector)
    assert set(families) == {"gossipper_scrape_errors"}
    assert _value(families["gossipper_scrape_errors"], "gossipper_scrape_errors_total") == 1


def test_a_dict_resized_under_a_scrape_is_read_again() -> None:
    attempts = []

    def resized_once() -> MediaCounters:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("dictionary changed size during iteration")
        return MediaCounters(rtp_packets_sent=9)

    families = _families(RunCollector(RunCounters(), resized_once))
    assert _value(families["gossipper_rtp_packets_sent"], "gossipper_rtp_packets_sent_total") == 9
    assert _value(families["gossipper_scrape_errors"], "gossipper_scrape_errors_total") == 0


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    endpoint = MetricsServer.open((LOOPBACK, 0), RunCollector(_counters()))
    try:
        yield endpoint
    finally:
        endpoint.close()


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        return response.read().decode()


def test_endpoint_serves_the_counters_over_http(server: MetricsServer) -> None:
    families = {family.name: family for family in text_string_to_metric_families(_scrape(server.port))}
    created = families["gossipper_calls_created"]
    assert created.type == "counter"
    assert created.samples[0].value == 40
    assert families["gossipper_calls_active"].type == "gauge"
    assert families["gossipper_invite_response_seconds"].type == "histogram"
    assert families["gossipper_process_resident_memory_bytes"].samples[0].value > 0
    assert all(name.startswith("gossipper_") for name in families)


def test_endpoint_port_in_use_is_a_bind_error_naming_the_setting(server: MetricsServer) -> None:
    with pytest.raises(BindError, match=f"cannot listen on {LOOPBACK}:{server.port}: ") as caught:
        MetricsServer.open((LOOPBACK, server.port), RunCollector(RunCounters()))
    assert caught.value.setting == "metrics_address"


def test_endpoint_on_an_address_not_of_this_host_is_a_bind_error() -> None:
    with pytest.raises(BindError, match=re.escape("cannot listen on 192.0.2.1:")) as caught:
        MetricsServer.open(("192.0.2.1", 0), RunCollector(RunCounters()))
    assert caught.value.setting == "metrics_address"


def test_endpoint_closes_its_port(server: MetricsServer) -> None:
    port = server.port
    server.close()
    with socket.socket() as probe:
        probe.bind((LOOPBACK, port))
