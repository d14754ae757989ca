"""The datasets screen through Textual's pilot at 80×24 over a real registry: versions listed with
their figures, samples drawn with half blocks under their descriptions, and `f` … `f` diffing
two versions; plus the half-block conversion itself."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from PIL import Image
from rich.style import Style
from test_tui import Notes, drive, errors, press, settle, table
from textual.pilot import Pilot
from textual.widgets import Static

from appliance.datasets.synthetic import generate
from appliance.services import Services
from tui.app import ApplianceApp
from tui.images import ImagePreview, cells_for, half_blocks


def two_versions(services: Services, tmp_path: Path) -> list[dict]:
    """ads/photos v1 (12 generated photos) and v2 (the same plus 3 more); v2's metadata rows."""
    services.workspaces.create("ads")
    folder = generate(tmp_path / "p", count=12, seed=1).path
    services.datasets.add("ads", "photos", folder)
    more = generate(tmp_path / "more", count=3, seed=2).path
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    for row in (json.loads(line) for line in (more / "metadata.jsonl").read_text().splitlines()):
        name = f"extra-{row['file_name'].rsplit('/', 1)[-1]}"
        shutil.copyfile(more / row["file_name"], folder / name)
        rows.append({**row, "file_name": name})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    services.datasets.add("ads", "photos", folder)
    return rows


def captions(app: ApplianceApp) -> list[str]:
    return [str(caption.render()) for caption in app.screen.query(".caption").results(Static)]


def test_versions_are_listed_and_a_version_shows_its_samples(
    services: Services, tmp_path: Path
) -> None:
    rows = two_versions(services, tmp_path)

    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "2")
        assert app.current_mode == "datasets"
        await settle(app, pilot)
        listed = table(app, "#versions")
        assert list(listed) == ["photos@v1", "photos@v2"]
        assert listed["photos@v1"][1:4] == ["photos@v1", "12", "13"]  # 12 photos + metadata
        assert listed["photos@v2"][2] == "15"

        # the first version is highlighted, so its samples show
        assert captions(app) == [rows[i * 12 // 9]["text"] for i in range(9)]
        previews = list(app.screen.query(ImagePreview).results())
        assert all(p.image is not None and "▀" in str(p.render()) for p in previews)

        await press(app, pilot, "down")
        await settle(app, pilot)
        title = str(app.screen.query_one("#samples-title", Static).render())
        assert "photos@v2" in title and "15 rows" in title
        assert f"\ncolumns: {', '.join(sorted(rows[-1]))}" in title  # every row has them all
        assert captions(app) == [rows[i * 15 // 9]["text"] for i in range(9)]  # 13: an extra

    assert errors(drive(services, scenario)) == []


def test_f_then_f_diffs_two_versions(services: Services, tmp_path: Path) -> None:
    two_versions(services, tmp_path)

    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "2")
        await settle(app, pilot)
        await press(app, pilot, "f")
        assert table(app, "#versions")["photos@v1"][0] == "◆"
        assert any("Diff from photos@v1" in message for _, message in notes)
        await press(app, pilot, "down", "f")
        panel = app.screen.query_one("#diff", Static)
        assert panel.display
        text = str(panel.render())
        assert "photos@v1 → photos@v2" in text
        assert "3 added" in text and "0 removed" in text and "0 relabelled" in text
        assert "0 rows changed" in text and "schema:" not in text  # the same columns
        assert "added: extra-" in text
        assert table(app, "#versions")["photos@v1"][0] == ""  # the mark is used up
        await press(app, pilot, "escape")
        assert not panel.display

    assert errors(drive(services, scenario)) == []


def test_no_datasets_says_how_to_add_one(services: Services) -> None:
    services.workspaces.create("ads")

    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "2")
        empty = app.screen.query_one("#empty", Static)
        assert empty.display and "No datasets in workspace ads" in str(empty.render())

    assert errors(drive(services, scenario)) == []


def test_half_blocks_keep_colours_and_aspect() -> None:
    image = Image.new("RGB", (64, 32), (255, 0, 0))
    image.paste((0, 0, 255), (0, 16, 64, 32))  # bottom half blue
    text = half_blocks(image, 16)
    lines = text.plain.split("\n")
    assert [len(line) for line in lines] == [16] * 4 and set(text.plain) == {"▀", "\n"}
    first, last = (Style.parse(str(span.style)) for span in (text.spans[0], text.spans[-1]))
    assert first.color and first.color.triplet == (255, 0, 0)  # top row: red over red
    assert last.bgcolor and last.bgcolor.triplet == (0, 0, 255)  # bottom row: blue under blue
    assert cells_for((64, 128), 16) == (16, 16)
    assert cells_for((64, 128), 16, max_rows=8) == (8, 8)
    assert half_blocks(Image.new("RGBA", (4, 4)), 2).plain == "▀▀"  # transparent: the matte
