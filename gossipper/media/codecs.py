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
