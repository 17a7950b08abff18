"""An estimated MOS for a received stream: the E-model of ITU-T G.107, simplified.

Why an estimate and not a listening score: the scale engine sends codec silence, so the
only thing that can degrade a call here is the transport (loss, jitter, delay), which is
exactly what the E-model rates. It turns impairments into a transmission rating R on a
0..100 scale and maps R to a MOS (G.107's annex B):

    R = R0 - Is - Id - Ie,eff + A

Simplifications, each chosen so the figure depends only on what the engine measures:

- R0 - Is and A at G.107's default values, which give R = 93.2 for a perfect G.711 call
  (no loss, short delay): DEFAULT_R.
- Id, the delay impairment, is its pure-delay term Idd only: talker and listener echo are
  taken as cancelled. Idd is 0 up to 100 ms of one-way (mouth-to-ear) delay Ta, and above
  it 25 x ((1 + X^6)^(1/6) - 3 (1 + (X/3)^6)^(1/6) + 2) with X = log2(Ta / 100 ms).
- Ie,eff, the equipment impairment under packet loss, is Ie + (95 - Ie) x Ppl /
  (Ppl / BurstR + Bpl), with Ppl the loss in percent and BurstR = 1 (random loss: the
  engine counts losses, not their bursts). Ie and Bpl come from ITU-T G.113 Appendix I for
  the codec; G.711 (PCMU, PCMA) with packet loss concealment as its Appendix I describes
  (Ie 0, Bpl 25.1), since a receiver without concealment is rare today; without it, G.113
  gives Bpl 4.3, which rates the same loss far lower. Codecs without a G.113 narrowband
  value here (G.722 and Opus are wideband and need G.107.1's scale; iLBC and H.264 are not
  rated) get no MOS rather than a guess.
- Ta, the one-way delay: the network's (half the echo's round trip when the stream is
  echoed, else ASSUMED_ONE_WAY_MS) plus one packet interval (packetisation) plus a jitter
  buffer of JITTER_BUFFER_FACTOR times the measured jitter.

MOS from R (G.107 annex B): 1 below R = 0, 4.5 above R = 100, else
1 + 0.035 R + 7e-6 R (R - 60) (100 - R).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_R = 93.2  # R0 - Is + A at G.107's default parameter values
RANDOM_LOSS_BURST_RATIO = 1.0
ASSUMED_ONE_WAY_MS = 20.0  # network delay of a stream not echoed, which the engine cannot measure
JITTER_BUFFER_FACTOR = 2.0  # a receiver's jitter buffer holds this many times the jitter
DELAY_FREE_MS = 100.0  # Idd is 0 up to this one-way delay


@dataclass(frozen=True)
class CodecImpairment:
    """G.113 Appendix I's equipment impairment (Ie) and packet-loss robustness (Bpl)."""

    ie: float
    bpl: float


# By codec name as gossipper/media/codecs.py spells it; G.711 with packet loss concealment.
CODEC_IMPAIRMENTS = {
    "PCMU": CodecImpairment(ie=0.0, bpl=25.1),
    "PCMA": CodecImpairment(ie=0.0, bpl=25.1),
}


@dataclass(frozen=True)
class Rating:
    r: float
    mos: float


def delay_impairment(one_way_ms: float) -> float:
    """Idd for a one-way (mouth-to-ear) delay: 0 up to 100 ms, growing beyond."""
    if one_way_ms <= DELAY_FREE_MS:
        return 0.0
    x = math.log2(one_way_ms / DELAY_FREE_MS)
    return 25.0 * ((1 + x**6) ** (1 / 6) - 3 * (1 + (x / 3) ** 6) ** (1 / 6) + 2)


def effective_equipment_impairment(codec: CodecImpairment, loss_percent: float) -> float:
    """Ie,eff: the codec's own impairment raised by random packet loss."""
    loss = min(100.0, max(0.0, loss_percent))
    return codec.ie + (95.0 - codec.ie) * loss / (loss / RANDOM_LOSS_BURST_RATIO + codec.bpl)


def mos_from_r(r: float) -> float:
    """G.107 annex B's mapping of R to an estimated MOS (1 .. 4.5)."""
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r)


def rate(codec: CodecImpairment, loss_percent: float, one_way_ms: float) -> Rating:
    r = DEFAULT_R - delay_impairment(one_way_ms) - effective_equipment_impairment(codec, loss_percent)
    return Rating(r=r, mos=mos_from_r(r))


def mouth_to_ear_ms(network_one_way_ms: float | None, interval_ms: float, jitter_ms: float) -> float:
    """Ta as the module docstring builds it; None for the network part: ASSUMED_ONE_WAY_MS."""
    network = ASSUMED_ONE_WAY_MS if network_one_way_ms is None else network_one_way_ms
    return network + interval_ms + JITTER_BUFFER_FACTOR * jitter_ms


def describe() -> str:
    """The model's assumptions in one line, for the summary's `mos_model`."""
    return (
        f"ITU-T G.107 E-model, simplified: R = {DEFAULT_R} - Idd(Ta) - Ie,eff(loss, random), "
        f"G.711 with PLC (Ie 0, Bpl 25.1, G.113 App. I); Ta = network one-way (echo RTT/2, "
        f"else {ASSUMED_ONE_WAY_MS:g} ms assumed) + interval + {JITTER_BUFFER_FACTOR:g} x jitter; "
        f"other codecs unrated"
    )
