"""The maturity report's HTML page: self-contained (no address outside the page, no script), its
SVG plots carry their bars and lines, and it opens in headless Chromium with the plots drawn (a
screenshot in the test's output folder, checked for the plots' colours)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from PIL import Image
from test_maturity import build_mature
from test_quality_estimate import ago

from appliance.maturity import render, svg
from appliance.maturity.report import maturity_report
from appliance.platform.feedback import PlatformFeedback
from appliance.services import Services


class Shapes(HTMLParser):
    """The page's SVGs and, per SVG, its shapes by tag; every tag and attribute seen."""

    def __init__(self) -> None:
        super().__init__()
        self.svgs: list[dict[str, list[dict[str, str | None]]]] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.append((tag, found))
        if tag == "svg":
            self.svgs.append({})
        elif self.svgs:
            self.svgs[-1].setdefault(tag, []).append(found)

    handle_startendtag = handle_starttag


def parse(page: str) -> Shapes:
    shapes = Shapes()
    shapes.feed(page)
    return shapes


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if found := shutil.which(name):
            return found
    return None


def test_the_svg_plots_draw_their_points() -> None:
    drawn = parse(svg.bars("d", ["a", "b", "c"], [2, 0, 4], "none")).svgs[0]
    bars = [r for r in drawn["rect"] if r.get("fill") == svg.BAR_COLOUR]
    assert len(bars) == 2  # the zero draws nothing
    assert float(bars[1]["height"] or 0) == pytest.approx(2 * float(bars[0]["height"] or 0))
    line = parse(svg.line("l", ["a", "b", "c", "d"], [1.0, None, 3.0, 2.0], "none")).svgs[0]
    points = (line["polyline"][0]["points"] or "").split()
    assert len(points) == 3 and len(line["circle"]) == 3  # the gap is skipped
    empty = svg.line("l", ["a"], [None], "no platform ratings")
    assert "no platform ratings" in empty and "<polyline" not in empty
    with pytest.raises(ValueError, match="2 labels for 1 values"):
        svg.bars("d", ["a", "b"], [1], "none")


def test_a_title_cannot_break_out_of_the_page(services: Services) -> None:
    page = svg.bars("<script>alert(1)</script>", ["x"], [1], "none")
    assert "<script>" not in page and "&lt;script&gt;" in page


def make_page(services: Services, folder: Path) -> tuple[Path, dict[str, Any]]:
    build_mature(services)
    rated = ((2, 6), (3, 4), (4, 2), (5, 0))  # (rating, days ago): four days of the seven
    for rating, _ in rated:
        PlatformFeedback(services.registry).add(rating, source="cli")

    def backdate(db: sqlite_utils.Database) -> None:
        for rating, days in rated:
            db.execute(
                "UPDATE platform_feedback SET created_at = ? WHERE rating = ?",
                [ago(days=days, hours=1), rating],
            )

    services.registry.write(backdate)
    report = maturity_report(services, "ads", "7d")
    page = folder / "maturity.html"
    page.write_text(render.html(report), encoding="utf-8")
    return page, report


def test_the_page_is_self_contained_with_its_plots(services: Services, tmp_path: Path) -> None:
    page, report = make_page(services, tmp_path)
    text = page.read_text()
    shapes = parse(text)
    assert report["trends"]["happiness_source"] == "appliance.platform.report"
    assert [p["count"] for p in report["trends"]["happiness"] if p["count"]] == [1, 1, 1, 1]
    assert not [t for t, _ in shapes.tags if t in ("script", "link", "img", "iframe")]
    addresses = [
        value for _, attrs in shapes.tags for key, value in attrs.items()
        if key in ("href", "src") or (value and re.match(r"\s*(https?:|//)", value))
    ]  # fmt: skip
    assert addresses == [] or all(a == "http://www.w3.org/2000/svg" for a in addresses)
    assert len(shapes.svgs) == 3
    deployments, lead_time, happiness = shapes.svgs
    assert len([r for r in deployments["rect"] if r.get("fill") == svg.BAR_COLOUR]) == 2
    assert len((lead_time["polyline"][0]["points"] or "").split()) == 2  # two days had a deploy
    assert len((happiness["polyline"][0]["points"] or "").split()) == 4  # four rated days
    rows = [a for t, a in shapes.tags if t == "tr" and a.get("class") == "indicator"]
    assert len(rows) == 13


def test_the_page_opens_in_headless_chromium_with_its_plots_drawn(
    services: Services, tmp_path: Path
) -> None:
    browser = chromium()
    if browser is None:
        pytest.skip("no chromium binary on PATH (apt-get install chromium)")
    page, _ = make_page(services, tmp_path)
    shot = tmp_path / "maturity.png"
    env = {**os.environ, "HOME": str(tmp_path)}  # Chromium writes its profile under HOME
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
         "--window-size=1000,1400", page.as_uri()],
        check=True, capture_output=True, timeout=120, env=env,
    )  # fmt: skip
    assert shot.is_file() and shot.stat().st_size > 0
    image = Image.open(shot).convert("RGB")
    assert image.size == (1000, 1400)
    # The plots sit under the headline, side by side: the top third of the page holds them.
    region = image.crop((0, 0, 1000, 600))
    colours = region.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50  # text, axes and plots, not a blank page
    present = {rgb for _, rgb in colours}
    for colour in (svg.BAR_COLOUR, svg.LINE_COLOUR):
        rgb = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
        assert rgb in present, f"{colour} is not drawn in the screenshot"
