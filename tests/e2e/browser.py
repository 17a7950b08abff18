"""A page as a person sees it: Debian's headless Chromium renders it to a PNG screenshot (read
with Pillow), and, with a probe script appended to a copy of the page, dumps the DOM with
what each chart's canvas holds.

scripts/test.sh and .ci/run install the `chromium` package; where it is missing the tests
that need it skip, saying so.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image, ImageChops

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WINDOW = (1280, 2400)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (scripts/test.sh installs it when root)"
)

# Appended to a copy of the page: once the page's charts are drawn, each chart's section gets
# the number of its canvas pixels with ink (not transparent, not white) and the canvas' place.
_PROBE = """
<script>
document.querySelectorAll("section.chart").forEach(function (box) {
  var canvas = box.querySelector("canvas");
  if (!canvas) { box.setAttribute("data-ink", "0"); return; }
  var pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  var ink = 0;
  for (var i = 0; i < pixels.length; i += 4) {
    if (pixels[i + 3] > 0 && (pixels[i] < 240 || pixels[i + 1] < 240 || pixels[i + 2] < 240)) ink += 1;
  }
  var rect = canvas.getBoundingClientRect();
  box.setAttribute("data-ink", String(ink));
  box.setAttribute("data-rect", [rect.left, rect.top, rect.width, rect.height].map(Math.round).join(","));
});
document.body.setAttribute("data-probed", "yes");
</script>
"""


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        "--force-device-scale-factor=1", f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--virtual-time-budget=5000", *args,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@dataclass(frozen=True)
class ChartBox:
    """One chart as the browser drew it."""

    chart_id: str
    ink: int  # canvas pixels that are not background
    rect: tuple[int, int, int, int]  # left, top, width, height in page pixels


@dataclass(frozen=True)
class Probed:
    charts_drawn: int | None  # the page's own marker: body[data-charts-drawn]
    charts: list[ChartBox]


def probe(page: Path, work: Path) -> Probed:
    """The page rendered with the probe appended: its marker, and each chart's ink and place."""
    copy = work / f"probe-{page.name}"
    copy.write_text(page.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    result = _chromium("--dump-dom", copy.as_uri())
    dom = result.stdout
    assert 'data-probed="yes"' in dom, result.stderr[-2000:]
    marker = re.search(r'<body[^>]*data-charts-drawn="(\d+)"', dom)
    charts = []
    for tag in re.findall(r'<section class="chart"[^>]*>', dom):
        attributes = dict(re.findall(r'([\w-]+)="([^"]*)"', tag))
        left, top, width, height = (int(value) for value in attributes.get("data-rect", "0,0,0,0").split(","))
        ink = int(attributes.get("data-ink", "0"))
        charts.append(ChartBox(attributes["id"], ink, (left, top, width, height)))
    return Probed(int(marker[1]) if marker else None, charts)


def screenshot(page: Path, png: Path) -> Screenshot:
    result = _chromium(f"--screenshot={png}", page.as_uri())
    assert png.exists(), result.stderr[-2000:]
    return Screenshot(Image.open(png).convert("RGB"))


@dataclass(frozen=True)
class Screenshot:
    image: Image.Image

    def count(self, rect: tuple[int, int, int, int], colored: bool = False) -> int:
        """Pixels in the rectangle that are not white; with colored, only those of a hue (a
        series' line), not the greys of axes, grid and text."""
        left, top, width, height = rect
        region = self.image.crop((left, top, left + width, top + height))
        if colored:
            hsv = region.convert("HSV")
            saturated = hsv.getchannel("S").point(lambda level: 255 if level > 90 else 0)
            lit = hsv.getchannel("V").point(lambda level: 255 if level > 60 else 0)
            return ImageChops.multiply(saturated, lit).histogram()[255]
        return region.convert("L").point(lambda level: 255 if level < 235 else 0).histogram()[255]
