"""Per-stream reception reports: ours (summary, stream_reports) and Homer's QoS JSON.

Two shapes of the same ReceiveStats: our snake_case names for gossipper's own views,
and the upper-case field names Homer's QoS views read from a HEP type 0x22 report.
"""

from __future__ import annotations

import time

from gossipper.media.classic.receive_stats import ReceiveStats

Address = tuple[str, int]


def stream_report(
    call_id: str, stats: ReceiveStats, source: Address | None, local: Address
) -> dict[str, object]:
    return {
        "call_id": call_id,
        "ssrc": stats.ssrc,
        "payload_type": stats.payload_type,
        "source": f"{source[0]}:{source[1]}" if source else "",
        "local_port": local[1],
        "packets": stats.packets,
        "expected": stats.expected,
        "lost": stats.lost,
        "duplicates": stats.duplicates,
        "out_of_order": stats.out_of_order,
        "jitter_ms": round(stats.jitter_ms, 3),
        "max_jitter_ms": round(stats.max_jitter_ms, 3),
    }


def homer_qos_report(
    call_id: str, stats: ReceiveStats, source: Address | None, local: Address
) -> dict[str, object]:
    """The field names Homer's QoS views read from a JSON report (protocol type 0x22)."""
    report: dict[str, object] = {
        "CORRELATION_ID": call_id,
        "RTP_SIP_CALL_ID": call_id,
        "REPORT_TS": time.time(),
        "TYPE": "HANGUP",
        "SSRC": stats.ssrc,
        "CODEC_PT": stats.payload_type,
        "CLOCK": stats.clock_rate,
        "TOTAL_PK": stats.packets,
        "EXPECTED_PK": stats.expected,
        "PACKET_LOSS": stats.lost,
        "DUPLICATE_PK": stats.duplicates,
        "OUT_ORDER": stats.out_of_order,
        "JITTER": round(stats.jitter_ms, 3),
        "MAX_JITTER": round(stats.max_jitter_ms, 3),
        "TL_BYTE": stats.octets,
        "DST_IP": local[0],
        "DST_PORT": local[1],
    }
    if source is not None:
        report["SRC_IP"], report["SRC_PORT"] = source
    return report
