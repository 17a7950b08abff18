"""Health gates: limits a CI sets on a run's results (`-health_*`), checked once it ends.

A gate reads the run's summary document, not the live counters, so that what it judged is
exactly what `-summary_json` shows beside the verdict, and a summary merged from several
engines is judged the same way as one engine's. A gate whose figure could not be measured
(no call ended, no RTP came back) fails: a CI that asks for a floor on MOS wants to hear
that there was nothing to score, not a pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

Document = Mapping[str, Any]


@dataclass(frozen=True)
class HealthGates:
    """The limits asked for; None leaves a gate out."""

    min_success_ratio: float | None = None  # successful / ended calls, 0..1
    max_failed_calls: int | None = None
    max_timeouts: int | None = None
    max_rtp_loss_pct: float | None = None  # lost / expected over every received stream
    max_jitter_ms: float | None = None  # mean of the received streams' interarrival jitter
    min_mos: float | None = None  # mean of the received streams' estimated MOS
    min_rtp_packets: int | None = None  # RTP packets received
    max_late_pct: float | None = None  # packets sent later than 1 ms past their slot

    def asked(self) -> list[tuple[str, float]]:
        """(gate name, limit) for each gate given, in a fixed order."""
        return [
            (item.name, value) for item in fields(self) if (value := getattr(self, item.name)) is not None
        ]


@dataclass(frozen=True)
class GateResult:
    name: str  # as the flag says it, without "-health_": "max_failed_calls"
    limit: float
    value: float | None  # None: there was nothing to measure
    passed: bool
    what: str  # the figure in words, for the line a person reads

    def line(self) -> str:
        bound = "at least" if self.name.startswith("min_") else "at most"
        measured = "not measured" if self.value is None else f"{_number(self.value)}"
        return (
            f"health gate -health_{self.name} failed: {self.what} {measured}, "
            f"where {bound} {_number(self.limit)} was asked"
        )


@dataclass(frozen=True)
class HealthReport:
    gates: tuple[GateResult, ...]

    @property
    def passed(self) -> bool:
        return all(gate.passed for gate in self.gates)

    def as_dict(self) -> dict[str, object]:
        return {
            "passed": self.passed,
            "gates": [
                {"name": gate.name, "limit": gate.limit, "value": gate.value, "passed": gate.passed}
                for gate in self.gates
            ],
        }

    def failure_lines(self) -> list[str]:
        return [gate.line() for gate in self.gates if not gate.passed]


def evaluate(document: Document, gates: HealthGates) -> HealthReport:
    """Judge a summary document (summary_dict's, without its health section) by the gates."""
    results = []
    for name, limit in gates.asked():
        what, measure = _MEASURES[name.split("_", 1)[1]]
        value = measure(document)
        if value is None:
            passed = False
        elif name.startswith("min_"):
            passed = value >= limit
        else:
            passed = value <= limit
        results.append(GateResult(name, limit, None if value is None else round(value, 6), passed, what))
    return HealthReport(tuple(results))


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _success_ratio(document: Document) -> float | None:
    ended = document["success_calls"] + document["failed_calls"]
    return document["success_calls"] / ended if ended else None


def _classic(document: Document) -> Mapping[str, Any]:
    """What the classic media path received (media.receive)."""
    receive: Mapping[str, Any] = document["media"]["receive"]
    return receive


def _scale(document: Document) -> Mapping[str, Any] | None:
    """What the scale engine's streams measured (media.quality), when it measured anything."""
    quality: Mapping[str, Any] | None = document["media"].get("quality")
    return quality if quality and quality.get("enabled") and quality["streams_receiving"] else None


def _rtp_loss_pct(document: Document) -> float | None:
    """Sequence numbers that never came over those expected, both media paths together."""
    classic, scale = _classic(document), _scale(document)
    expected = missing = 0.0
    if classic["streams"]:
        expected += classic["packets"] + max(0, classic["lost"])
        missing += max(0, classic["lost"])
    if scale is not None:
        expected += scale["packets_expected"]
        missing += scale["packets_expected"] * scale["loss_percent"] / 100.0
    return 100.0 * missing / expected if expected > 0 else None


def _mean_over_streams(pairs: list[tuple[float, float]]) -> float | None:
    """The mean of per-stream figures given as (streams, their mean) for each media path."""
    streams = sum(count for count, _ in pairs)
    return sum(count * mean for count, mean in pairs) / streams if streams else None


def _jitter_ms(document: Document) -> float | None:
    classic, scale = _classic(document), _scale(document)
    pairs = [(classic["streams"], float(classic["jitter_avg_ms"]))] if classic["streams"] else []
    if scale is not None and scale["stream_jitter_ms"]["count"]:
        pairs.append((scale["stream_jitter_ms"]["count"], scale["stream_jitter_ms"]["mean"]))
    return _mean_over_streams(pairs)


def _mos(document: Document) -> float | None:
    """The scale streams' estimated MOS (the classic path estimates none)."""
    scale = _scale(document)
    if scale is None or not scale["stream_mos"]["count"]:
        return None
    return float(scale["stream_mos"]["mean"])


def _late_pct(document: Document) -> float | None:
    media = document["media"]
    sent = media["rtp_packets_sent"]
    return 100.0 * media["late_packets"] / sent if sent else None


_MEASURES: dict[str, tuple[str, Callable[[Document], float | None]]] = {
    "success_ratio": ("success ratio", _success_ratio),
    "failed_calls": ("failed calls", lambda document: document["failed_calls"]),
    "timeouts": ("timeouts", lambda document: document["timeouts"]),
    "rtp_loss_pct": ("RTP loss %", _rtp_loss_pct),
    "jitter_ms": ("mean jitter (ms)", _jitter_ms),
    "mos": ("mean estimated MOS", _mos),
    "rtp_packets": ("RTP packets received", lambda document: document["media"]["rtp_packets_received"]),
    "late_pct": ("late packets %", _late_pct),
}
