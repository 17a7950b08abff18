"""The E-model (gossipper/media/emodel.py) at points worked out by hand from G.107's formulas."""

from __future__ import annotations

import pytest

from gossipper.media import emodel
from gossipper.media.emodel import CODEC_IMPAIRMENTS, CodecImpairment


def test_default_r_gives_the_g711_mos_of_4_41() -> None:
    assert emodel.mos_from_r(93.2) == pytest.approx(4.409, abs=0.001)
    rating = emodel.rate(CODEC_IMPAIRMENTS["PCMU"], loss_percent=0.0, one_way_ms=40.0)
    assert rating.r == pytest.approx(93.2) and rating.mos == pytest.approx(4.409, abs=0.001)


@pytest.mark.parametrize(
    ("r", "mos"),
    [(-5.0, 1.0), (0.0, 1.0), (50.0, 2.575), (60.0, 3.1), (80.0, 4.024), (100.0, 4.5), (120.0, 4.5)],
)
def test_mos_from_r_follows_annex_b_and_is_clamped(r: float, mos: float) -> None:
    # 50: 1 + 1.75 + 7e-6 x 50 x (-10) x 50; 80: 1 + 2.8 + 7e-6 x 80 x 20 x 20
    assert emodel.mos_from_r(r) == pytest.approx(mos, abs=1e-4)


def test_delay_costs_nothing_up_to_100_ms_then_grows() -> None:
    assert emodel.delay_impairment(0.0) == emodel.delay_impairment(100.0) == 0.0
    # X = 1 at 200 ms: 25 x ((2)^(1/6) - 3 (1 + 1/729)^(1/6) + 2)
    expected = 25 * (2 ** (1 / 6) - 3 * (1 + 1 / 729) ** (1 / 6) + 2)
    assert emodel.delay_impairment(200.0) == pytest.approx(expected)
    samples = [emodel.delay_impairment(ms) for ms in (150.0, 200.0, 300.0, 400.0, 600.0)]
    assert samples == sorted(samples) and samples[0] > 0


def test_loss_raises_the_equipment_impairment_by_the_codecs_robustness() -> None:
    g711 = CODEC_IMPAIRMENTS["PCMA"]
    assert emodel.effective_equipment_impairment(g711, 0.0) == 0.0
    # 95 x 10 / (10 + 25.1) = 27.07
    assert emodel.effective_equipment_impairment(g711, 10.0) == pytest.approx(27.066, abs=0.001)
    fragile = CodecImpairment(ie=0.0, bpl=4.3)  # G.711 without concealment
    assert emodel.effective_equipment_impairment(fragile, 10.0) > 60.0
    assert emodel.effective_equipment_impairment(g711, 250.0) == pytest.approx(95 * 100 / 125.1)  # clamped
    mos = [emodel.rate(g711, loss, 40.0).mos for loss in (0.0, 1.0, 5.0, 10.0, 20.0)]
    assert mos == sorted(mos, reverse=True) and mos[-1] < 3.0


def test_mouth_to_ear_delay_adds_packetisation_and_a_jitter_buffer() -> None:
    assert emodel.mouth_to_ear_ms(10.0, 20, 5.0) == 10.0 + 20 + 2 * 5.0
    assert emodel.mouth_to_ear_ms(None, 20, 0.0) == emodel.ASSUMED_ONE_WAY_MS + 20
