import re
from datetime import datetime

import pytest

from gossipper.stats.sipp_time import format_time, hhmmss, hhmmss_us

MOMENT = 1_700_000_000.012345


def test_default_format_is_date_time_and_epoch_tab_separated() -> None:
    local = datetime.fromtimestamp(MOMENT)
    assert format_time(MOMENT) == f"{local:%Y-%m-%d}\t{local:%H:%M:%S}.012345\t1700000000.012345"


def test_rfc3339_has_the_local_offset_or_z(monkeypatch: pytest.MonkeyPatch) -> None:
    text = format_time(MOMENT, rfc3339=True)
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.012345)(Z|[+-]\d\d:\d\d)", text)
    assert match is not None, text
    assert datetime.fromisoformat(
        match.group(1) + ("+00:00" if match.group(2) == "Z" else match.group(2))
    ).timestamp() == (pytest.approx(MOMENT, abs=1e-6))


@pytest.mark.parametrize(
    "ms, short, long",
    [
        (0, "00:00:00", "00:00:00:000000"),
        (1999.9, "00:00:01", "00:00:01:999000"),
        (3_723_004, "01:02:03", "01:02:03:004000"),
        (400 * 3_600_000, "400:00:00", "400:00:00:000000"),
    ],
)
def test_durations_truncate_to_the_millisecond(ms: float, short: str, long: str) -> None:
    assert (hhmmss(ms), hhmmss_us(ms)) == (short, long)
