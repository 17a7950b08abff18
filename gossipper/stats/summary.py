"""The end-of-run summary: a human block for the terminal and the JSON that CI scripts parse.

The JSON field names are a contract with the seed tool's users (SPEC §5), so they are
spelled out here once and never derived from attribute names that might be renamed.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime

from gossipper.stats.atomic_file import write_atomically
from gossipper.stats.counters import FAILURE_CLASSES, DurationStat, MediaCounters, RunCounters
from gossipper.stats.health import HealthGates, HealthReport, evaluate

SCHEMA_VERSION = "gossipper_summary_v1"


def iso_utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _duration_dict(stat: DurationStat) -> dict[str, object]:
    return {
        "count": stat.count,
        "average_ms": stat.average_ms,
        "min_ms": stat.min_ms,
        "max_ms": stat.max_ms,
        "stddev_ms": stat.stddev_ms,
        "buckets": dict(zip(stat.bucket_labels(), stat.bucket_counts, strict=True)),
    }


def _media_dict(media: MediaCounters) -> dict[str, object]:
    return {
        "rtp_packets_sent": media.rtp_packets_sent,
        "rtp_octets_sent": media.rtp_octets_sent,
        "rtp_packets_received": media.rtp_packets_received,
        "rtp_octets_received": media.rtp_octets_received,
        "rtcp_sender_reports": media.rtcp_sender_reports,
        "rtcp_receiver_reports": media.rtcp_receiver_reports,
        "rtcp_packets_received": media.rtcp_packets_received,
        "streams_started": media.streams_started,
        "streams_active_max": media.streams_active_max,
        "send_errors": dict(sorted(media.send_errors.items())),
        "rtp_icmp_unreachable": dict(sorted(media.icmp_unreachable.items())),
        "late_packets": media.late_packets,
        "max_late_ms": media.max_late_ms,
        "on_time_1ms": media.on_time_1ms,
        "on_time_2ms": media.on_time_2ms,
        "malformed_rtp": media.malformed_rtp,
        "malformed_rtcp": media.malformed_rtcp,
        "rtp_kernel_drops": media.rtp_kernel_drops,
        "engine": media.engine,
        "receive": {
            "streams": media.receive.streams,
            "packets": media.receive.packets,
            "lost": media.receive.lost,
            "duplicates": media.receive.duplicates,
            "out_of_order": media.receive.out_of_order,
            "jitter_avg_ms": round(media.receive.jitter_avg_ms, 3),
            "jitter_max_ms": round(media.receive.jitter_max_ms, 3),
            "echoed_packets": media.receive.echoed_packets,
            "srtp_rejected": dict(sorted(media.receive.srtp_rejected.items())),
        },
        "quality": _quality_dict(media),
    }


def _quality_dict(media: MediaCounters) -> dict[str, object] | None:
    """The scale streams' receive quality (README, "Output"); null without a scale engine."""
    if media.quality is not None:
        return media.quality.to_dict()
    if media.quality_enabled is False:
        return {"enabled": False}
    return None


def _success_ratio(counters: RunCounters) -> float:
    ended = counters.calls_succeeded + counters.calls_failed
    return counters.calls_succeeded / ended if ended else 0.0


def summary_dict(
    counters: RunCounters, tool_version: str, gates: HealthGates | None = None
) -> dict[str, object]:
    """The JSON document of SPEC §5, with the health gates' verdict; a run still in progress
    is summarised as of now."""
    now = time.time()
    finished_at = counters.finished_at if counters.finished_at is not None else now
    elapsed_s = counters.elapsed_s(now)
    created_cps = counters.calls_created / elapsed_s if elapsed_s > 0 else 0.0
    document: dict[str, object] = {
        "schema_version": SCHEMA_VERSION,
        "tool_version": tool_version,
        "started_at": iso_utc(counters.started_at),
        "finished_at": iso_utc(finished_at),
        "duration_ms": int(elapsed_s * 1000),
        "cpu_s": round(counters.process_cpu_s, 3),
        "total_calls": counters.calls_created,
        "success_calls": counters.calls_succeeded,
        "failed_calls": counters.calls_failed,
        "active_calls": counters.calls_active,
        "success_ratio": _success_ratio(counters),
        "calls_per_second": created_cps,
        "offered_rate_cps": counters.offered_cps,
        "achieved_rate_cps": created_cps,
        "throttle_reason": counters.throttle_reason,
        "throttled_s": round(counters.throttled_s, 3),
        "retransmits": counters.retransmissions,
        "timeouts": counters.timeouts,
        "call_length": _duration_dict(counters.call_length),
        "invite_rtt": _duration_dict(counters.invite_rtt),
        "rtd": {name: _duration_dict(stat) for name, stat in counters.rtd.items()},
        "failure_classes": {name: counters.failure_classes[name] for name in FAILURE_CLASSES},
        "unexpected_messages": counters.unexpected_messages,
        "malformed_messages": counters.malformed_messages,
        "truncated_messages": counters.truncated_messages,
        "messages_too_large": counters.messages_too_large,
        "keepalives_received": counters.keepalives_received,
        "connections_refused": counters.connections_refused,
        "connections_closed_quiet": counters.connections_closed_quiet,
        "messages_sent": counters.messages_sent,
        "messages_received": counters.messages_received,
        "out_of_call_messages": counters.out_of_call_messages,
        "dead_call_messages": counters.dead_call_messages,
        "media": _media_dict(counters.media),
    }
    document["health"] = evaluate(document, gates or HealthGates()).as_dict()
    return document


def health_report(counters: RunCounters, tool_version: str, gates: HealthGates) -> HealthReport:
    """The gates' verdict on the run, as the summary document shows it."""
    return evaluate(summary_dict(counters, tool_version), gates)


def write_summary_json(
    path: str,
    counters: RunCounters,
    tool_version: str,
    gates: HealthGates | None = None,
    extra: Mapping[str, object] | None = None,
) -> None:
    """Write via a temp file and rename so a CI script polling the path never reads half a file.
    `extra` adds sections of the run's own (a cluster run's `nodes`)."""
    document = summary_dict(counters, tool_version, gates)
    document.update(extra or {})
    text = json.dumps(document, indent=2) + "\n"
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    write_atomically(path, text, "summary_json")


def _duration_line(label: str, stat: DurationStat) -> str:
    if not stat.count:
        return f"{label}: none measured"
    return (
        f"{label}: avg {stat.average_ms:.3f} ms, min {stat.min_ms:.3f} ms, "
        f"max {stat.max_ms:.3f} ms ({stat.count} samples)"
    )


def by_errno(counts: Counter[str]) -> str:
    """'ECONNREFUSED 12, ENOBUFS 1', or 'none'."""
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items())) or "none"


def _media_lines(media: MediaCounters, elapsed_s: float) -> list[str]:
    pps = media.rtp_packets_sent / elapsed_s if elapsed_s > 0 else 0.0
    unreadable = _unreadable(media)
    return [
        f"Media ({media.engine}): sent {media.rtp_packets_sent} packets / {media.rtp_octets_sent} octets "
        f"({pps:.1f} pps avg), received {media.rtp_packets_received} packets / "
        f"{media.rtp_octets_received} octets",
        f"  Send errors: {by_errno(media.send_errors)}; "
        f"ICMP unreachable: {by_errno(media.icmp_unreachable)}; late packets: {media.late_packets} "
        f"(max lateness {media.max_late_ms:.3f} ms); streams: {media.streams_started}",
        *_receive_lines(media),
        *_quality_lines(media),
        *([f"  Not counted as received: {', '.join(unreadable)}"] if unreadable else []),
    ]


WORST_PRINTED = 3  # of the summary's worst streams, those the printed summary names


def _quality_lines(media: MediaCounters) -> list[str]:
    if media.quality_enabled is False:
        return ["  Receive quality: not measured (-rtp_quality off)"]
    if media.quality is None:
        return []
    lines = [f"  Receive quality: {media.quality.line()}"]
    for stream in media.quality.aggregate.worst[:WORST_PRINTED]:
        mos = "no MOS" if stream.mos is None else f"MOS {stream.mos:.2f}"
        rtt = "" if stream.rtt_mean_ms is None else f", RTT {stream.rtt_mean_ms:.2f} ms"
        lines.append(
            f"    worst: {stream.local} <- {stream.remote}: {mos}, loss {stream.loss_percent:.2f} %, "
            f"jitter {stream.jitter_ms:.2f} ms{rtt}"
        )
    return lines


def _unreadable(media: MediaCounters) -> list[str]:
    """What reached the media ports and was not taken as RTP or RTCP, by why."""
    return _nonzero(
        " ",
        ("malformed RTP", media.malformed_rtp),
        ("malformed RTCP", media.malformed_rtcp),
        ("dropped by the kernel (receive buffer full)", media.rtp_kernel_drops),
    )


def _nonzero(separator: str, *counts: tuple[str, int]) -> list[str]:
    """ "label<separator>count" for each count that is not zero."""
    return [f"{label}{separator}{value}" for label, value in counts if value]


def _receive_lines(media: MediaCounters) -> list[str]:
    quality = media.receive
    if not quality.streams:
        return []
    rejected = sum(quality.srtp_rejected.values())
    return [
        f"  Received streams: {quality.streams}; lost {quality.lost}, duplicates {quality.duplicates}, "
        f"out of order {quality.out_of_order}; jitter avg {quality.jitter_avg_ms:.3f} ms, "
        f"max {quality.jitter_max_ms:.3f} ms; echoed {quality.echoed_packets}"
        + (f"; SRTP rejected {rejected}" if rejected else "")
    ]


def _input_lines(counters: RunCounters) -> list[str]:
    """What arrived besides calls' messages, when anything did."""
    parts = _nonzero(
        ": ",
        ("Messages cut off at close", counters.truncated_messages),
        ("Messages too large", counters.messages_too_large),
        ("Keep-alives received", counters.keepalives_received),
        ("Connections refused", counters.connections_refused),
        ("Connections closed quiet", counters.connections_closed_quiet),
    )
    return ["  ".join(parts)] if parts else []


def format_summary_text(counters: RunCounters) -> str:
    """The final block the user reads on the terminal, in the spirit of SIPp's last screen."""
    elapsed_s = counters.elapsed_s()
    rate = counters.calls_created / elapsed_s if elapsed_s > 0 else 0.0
    failures = ", ".join(
        f"{name} {counters.failure_classes[name]}"
        for name in FAILURE_CLASSES
        if counters.failure_classes[name]
    )
    lines = [
        "----------------------------- Summary -----------------------------",
        f"Elapsed time: {elapsed_s:.3f} s",
        f"Calls created: {counters.calls_created}  successful: {counters.calls_succeeded}  "
        f"failed: {counters.calls_failed}" + (f" ({failures})" if failures else ""),
        f"Success ratio: {_success_ratio(counters) * 100:.2f} %   Call rate: {rate:.3f} cps",
        f"Retransmissions: {counters.retransmissions}  Timeouts: {counters.timeouts}  "
        f"Unexpected messages: {counters.unexpected_messages}  "
        f"Malformed messages: {counters.malformed_messages}",
        *_input_lines(counters),
        _duration_line("INVITE response time", counters.invite_rtt),
        f"Call length: avg {counters.call_length.average_ms:.3f} ms ({counters.call_length.count} calls)",
    ]
    media = counters.media
    if media.rtp_packets_sent or media.rtp_packets_received or _unreadable(media):
        lines.extend(_media_lines(media, elapsed_s))
    return "\n".join(lines)
