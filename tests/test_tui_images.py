"""Image previews in real pixels or half blocks: which protocol APPLIANCE_TUI_IMAGES and the
terminal choose, and through Textual's pilot at 80×24 that the datasets screen and the
playground draw their pictures with textual-image's TGP or Sixel widget when one is chosen and
with half blocks otherwise. The terminal running the tests is never asked: `_is_terminal` says
no, and what TGP writes straight to the terminal goes to a buffer instead."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Static
from textual_image.widget import SixelImage, TGPImage
from tui_pilot import Notes, drive, errors, press

from appliance.datasets.synthetic import generate
from appliance.services import Services
from tui import graphics
from tui.app import ApplianceApp
from tui.graphics import ENV, HALFBLOCKS, SIXEL, TGP, image_protocol, named
from tui.images import ImagePreview, cells_for

PIXEL_WIDGETS = {SIXEL: SixelImage, TGP: TGPImage}
SIXEL_START = "\x1bP0;0;0q"  # the DCS that opens a Sixel image, as textual-image writes it


@pytest.mark.parametrize(
    ("env", "detected", "chosen"),
    [
        (None, SIXEL, SIXEL),  # unset: what the terminal answered
        ("auto", TGP, TGP),
        ("", HALFBLOCKS, HALFBLOCKS),
        ("halfblocks", SIXEL, HALFBLOCKS),  # named: whatever the terminal says
        ("sixel", HALFBLOCKS, SIXEL),
        (" TGP ", SIXEL, TGP),  # case and spaces do not matter
        ("kitty", SIXEL, SIXEL),  # names no protocol: as auto, silently
        ("half-blocks", TGP, TGP),
    ],
)
def test_the_environment_names_a_protocol_or_leaves_it_to_the_terminal(
    env: str | None, detected: str, chosen: str
) -> None:
    assert image_protocol(env, detected) == chosen


@pytest.mark.parametrize(
    ("version", "drawn"),
    [
        ("kitty(0.26.5)", False),  # Debian 12's: answers TGP, draws placeholders as boxes
        ("kitty(0.27.1)", False),
        ("kitty(0.28.0)", True),
        ("kitty(0.42.1)", True),
        ("ghostty 1.1.3", True),
        ("", True),  # says nothing: trust its TGP answer
    ],
)
def test_tgp_is_used_only_where_its_placeholders_are_drawn(version: str, drawn: bool) -> None:
    assert graphics.draws_placeholders(version) is drawn


def test_start_asks_no_terminal_for_half_blocks_and_loads_a_named_protocol(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str] = []
    monkeypatch.setattr(graphics, "ask_terminal", lambda: asked.append("asked") or SIXEL)
    assert graphics.start({ENV: "halfblocks"})() == HALFBLOCKS
    assert asked == []
    assert graphics.start({ENV: "tgp"})() == TGP  # asked (its answer unused), then loaded
    assert graphics.start({ENV: "bogus"})() == SIXEL
    assert named("bogus") is None and named("Sixel") == SIXEL


def test_without_a_terminal_auto_is_half_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graphics, "_is_terminal", lambda stream: False)
    assert graphics.start({})() == HALFBLOCKS
    assert graphics.start({ENV: "sixel"})() == SIXEL  # named: drawn even so


def test_cells_keep_the_aspect_of_the_terminals_cells() -> None:
    assert cells_for((100, 100), 16) == (16, 8)  # half blocks: a cell is two pixels tall
    assert cells_for((100, 100), 16, cell_ratio=16 / 8) == (16, 8)
    assert cells_for((100, 100), 16, cell_ratio=20 / 9) == (16, 7)
    assert cells_for((100, 100), 16, max_rows=4, cell_ratio=2.5) == (10, 4)


def screen_output(app: ApplianceApp) -> str:
    """What the app would write to the terminal for the whole screen, escape codes included."""
    out = io.StringIO()
    console = Console(file=out, width=80, height=24, force_terminal=True, color_system="truecolor")
    console.print(app.screen._compositor.render_update(full=True))
    return out.getvalue()


@pytest.fixture
def no_terminal(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """Nothing asks the terminal; what textual-image writes to it lands in the buffer returned."""
    written = io.StringIO()
    monkeypatch.setattr(graphics, "_is_terminal", lambda stream: False)
    monkeypatch.setattr(sys, "__stdout__", written)
    return written


@pytest.mark.parametrize("protocol", [SIXEL, TGP])
def test_a_pixel_protocol_draws_the_samples_with_textual_image(
    services: Services, tmp_path: Path, no_terminal: io.StringIO, protocol: str
) -> None:
    services.workspaces.create("ads")
    services.datasets.add("ads", "photos", generate(tmp_path / "p", count=12, seed=1).path)
    drawn = graphics.start({ENV: protocol})()
    assert drawn == protocol

    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "2")
        previews = list(app.screen.query(ImagePreview).results())
        assert len(previews) == 9
        for preview in previews:
            pixels = preview.query_one(PIXEL_WIDGETS[protocol])
            assert preview.image is not None and pixels.image is preview.image
            assert pixels.display and not preview.query_one(Static).display
            box = cells_for(preview.image.size, 16, 8, graphics.cell_ratio())  # 16×8 at most
            assert (pixels.size.width, pixels.size.height) == box
            assert "▀" not in str(preview.render())
        output = screen_output(app)
        assert "▀" not in output
        if protocol == SIXEL:
            assert output.count(SIXEL_START) >= 2  # a Sixel image per tile in view
        else:
            assert output.count(chr(0x10EEEE)) >= 2 * 16 * 8  # kitty's image placeholders
            assert "a=p" in no_terminal.getvalue()  # placed, after the PNG was sent

    assert errors(drive(services, scenario, workspace="ads", image_protocol=drawn)) == []


def test_half_blocks_named_keep_the_text_rendering(
    services: Services, tmp_path: Path, no_terminal: io.StringIO
) -> None:
    services.workspaces.create("ads")
    services.datasets.add("ads", "photos", generate(tmp_path / "p", count=12, seed=1).path)
    drawn = graphics.start({ENV: HALFBLOCKS})()

    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "2")
        previews = list(app.screen.query(ImagePreview).results())
        assert len(previews) == 9
        assert all("▀" in str(p.render()) and not p.children for p in previews)
        assert "\x1bP" not in screen_output(app)

    assert errors(drive(services, scenario, workspace="ads", image_protocol=drawn)) == []
    assert no_terminal.getvalue() == ""


def test_the_playground_shows_its_placeholder_then_the_picture_in_pixels(
    services: Services, tmp_path: Path, no_terminal: io.StringIO
) -> None:
    services.workspaces.create("ads")
    services.datasets.add("ads", "photos", generate(tmp_path / "p", count=12, seed=1).path)

    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "8")
        preview = app.screen.query_one("#preview", ImagePreview)
        pixels, placeholder = preview.query_one(SixelImage), preview.query_one(Static)
        assert not pixels.display and placeholder.display
        assert str(placeholder.render()) == "no image yet"
        await press(app, pilot, "s")  # a sample
        assert preview.image is not None and pixels.image is preview.image
        assert pixels.display and not placeholder.display
        assert SIXEL_START in screen_output(app)

    drawn = graphics.start({ENV: SIXEL})()
    assert errors(drive(services, scenario, workspace="ads", image_protocol=drawn)) == []
