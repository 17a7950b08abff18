"""The codec table of synthetic RTP: payload type, clock, packet size and silence.

Packet size follows the interval, not a fixed frame: samples per packet =
clock x interval, so PCMU at 10 ms carries 80 bytes and steps the timestamp by 80.
"""

from __future__ import annotations

from dataclasses import dataclass

from gossipper.errors import InvalidValue


@dataclass(frozen=True)
class Codec:
    name: str
    clock_rate: int
    payload_type: int
    default_interval_ms: int
    silence_byte: int
    # Samples per packet at the default interval, where clock x interval is not exact
    # (H.264 at 30 fps: 33 ms stands for 1/30 s, i.e. 3000 ticks of 90 kHz).
    nominal_samples: int | None = None

    @property
    def label(self) -> str:
        return f"{self.name}/{self.clock_rate}"

    def samples_per_packet(self, interval_ms: int) -> int:
        if self.nominal_samples is not None and interval_ms == self.default_interval_ms:
            return self.nominal_samples
        return self.clock_rate * interval_ms // 1000

    def payload_bytes(self, interval_ms: int, channels: int = 1) -> int:
        """Payload size per packet: samples per packet x channels (SPEC section 1)."""
        return self.samples_per_packet(interval_ms) * channels


CODECS: dict[str, Codec] = {
    codec.label.upper(): codec
    for codec in (
        Codec("PCMU", 8000, 0, 20, 0xFF),
        Codec("PCMA", 8000, 8, 20, 0xD5),
        Codec("G722", 8000, 9, 20, 0x00),
        Codec("ILBC", 8000, 97, 30, 0x00),
        Codec("H264", 90000, 96, 33, 0x00, nominal_samples=3000),
        Codec("OPUS", 48000, 111, 20, 0x00),
    )
}


@dataclass(frozen=True)
class PacketPlan:
    """How SIPp's rtp_stream cuts a file or pattern into packets for one payload type."""

    payload_name: str
    interval_ms: int
    payload_bytes: int
    timestamp_step: int
    video: bool = False


# SIPp's rtp_stream (actions.cpp setRTPStreamActInfo): the payload name a static payload type
# implies when the value names none, and the packet plan of each (payload type, name) it plays.
# H.264's 160 ms / 1280 bytes are SIPp's own arbitrary choice, kept so packet counts match.
DEFAULT_PAYLOAD_NAMES = {0: "PCMU/8000", 8: "PCMA/8000", 9: "G722/8000", 18: "G729/8000"}
_STATIC_PLANS = {
    (0, "PCMU/8000"): PacketPlan("PCMU/8000", 20, 160, 160),
    (8, "PCMA/8000"): PacketPlan("PCMA/8000", 20, 160, 160),
    (9, "G722/8000"): PacketPlan("G722/8000", 20, 160, 160),
    (18, "G729/8000"): PacketPlan("G729/8000", 20, 20, 160),
}
_COMFORT_NOISE = 13  # SIPp plays CN whatever name it is given
_DYNAMIC_PLANS = {
    "H264/90000": PacketPlan("H264/90000", 160, 1280, 1280, video=True),
    "iLBC/8000": PacketPlan("iLBC/8000", 30, 50, 240),
}


def default_payload_name(payload_type: int) -> str:
    """The name SIPp assumes for a payload type given alone; ValueError where it assumes none."""
    name = DEFAULT_PAYLOAD_NAMES.get(payload_type)
    if name is None:
        raise ValueError(
            f"payload type {payload_type} needs a payload name (e.g. ...,{payload_type},iLBC/8000); "
            f"only {', '.join(f'{pt} ({n})' for pt, n in DEFAULT_PAYLOAD_NAMES.items())} imply one"
        )
    return name


def packet_plan(payload_type: int, payload_name: str | None) -> PacketPlan:
    """SIPp's packet plan for a payload type and name; ValueError for a pair SIPp cannot play.

    SIPp itself accepts a static type with a mismatched name and then sends nothing; a
    load error says so instead.
    """
    name = payload_name or default_payload_name(payload_type)
    if payload_type == _COMFORT_NOISE:
        return PacketPlan(name, 150, 1, 1200)
    if 96 <= payload_type <= 127:
        plan = _DYNAMIC_PLANS.get(name)
        if plan is None:
            raise ValueError(
                f"dynamic payload type {payload_type}: payload name {name!r} is not one rtp_stream "
                f"plays (expected one of {', '.join(_DYNAMIC_PLANS)})"
            )
        return plan
    plan = _STATIC_PLANS.get((payload_type, name))
    if plan is None:
        known = DEFAULT_PAYLOAD_NAMES.get(payload_type)
        expected = f"payload type {payload_type} is {known}" if known else "rtp_stream plays 0, 8, 9, 13, 18"
        raise ValueError(f"payload type {payload_type} with name {name!r}: {expected}")
    return plan


MIN_INTERVAL_MS = 1
MAX_INTERVAL_MS = 1000
MAX_DURATION_MS = 7 * 24 * 3600 * 1000


def lookup_codec(text: str) -> Codec:
    """NAME/RATE (or NAME alone) to a Codec; an unknown name's error lists the choices."""
    key = text.strip().upper()
    if "/" not in key:
        matches = [codec for label, codec in CODECS.items() if label.split("/")[0] == key]
        if len(matches) == 1:
            return matches[0]
    codec = CODECS.get(key)
    if codec is None:
        choices = ", ".join(c.label for c in CODECS.values())
        raise InvalidValue(f"unknown codec {text!r} (expected one of {choices})", setting="codec")
    return codec


def check_interval(interval_ms: int) -> int:
    if not MIN_INTERVAL_MS <= interval_ms <= MAX_INTERVAL_MS:
        raise InvalidValue(
            f"packet interval must be {MIN_INTERVAL_MS}..{MAX_INTERVAL_MS} ms, got {interval_ms}",
            setting="interval_ms",
        )
    return interval_ms


def check_duration(duration_ms: int) -> int:
    if not 0 <= duration_ms <= MAX_DURATION_MS:
        raise InvalidValue(
            f"duration must be 0..{MAX_DURATION_MS} ms (0 = until stopped), got {duration_ms}",
            setting="duration_ms",
        )
    return duration_ms
