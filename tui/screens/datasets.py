"""The datasets screen: every version of the current workspace's datasets (rows, files, size,
when and from where), and for the highlighted version a grid of sample photos (in real pixels
where the terminal shows them, else half blocks), each with its description, under the version's
columns. `f` marks a version to diff from; `f` on another version shows what changed between them
(added, removed, changed and relabelled files, rows whose other metadata changed, columns)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from appliance.datasets.columns import describe_columns, describe_schema
from tui import figures
from tui.images import ImagePreview
from tui.screens.base import ApplianceScreen
from tui.tables import fill, key_at_cursor

SAMPLES = 9
THUMB_CELLS = 16
THUMB_ROWS = 8
THUMB_PIXELS = 160  # shrunk to this in the worker: 16 cells of real pixels (half blocks: fewer)
FIRST_NAMES = 3  # file names listed per kind of change in the diff panel
MARK = "◆"


@dataclass(frozen=True)
class Sample:
    file_name: str
    text: str
    image: Image.Image | None  # None when the file could not be read as an image


@dataclass(frozen=True)
class Samples:
    ref: str
    rows: int
    columns: dict[str, int]
    samples: list[Sample]


class SampleGrid(VerticalScroll):
    """Tiles in as many columns as fit its width."""

    def on_resize(self, event: events.Resize) -> None:
        self.styles.grid_size_columns = max(1, event.size.width // (THUMB_CELLS + 1))


class DatasetsScreen(ApplianceScreen):
    BINDINGS = [
        Binding("f", "diff", "Diff from/to"),
        Binding("escape", "close_diff", "Close diff", show=False),
    ]
    DEFAULT_CSS = """
    DatasetsScreen #body { height: 1fr; }
    DatasetsScreen #versions { width: 44; height: 1fr; }
    DatasetsScreen #detail { width: 1fr; height: 1fr; padding-left: 1; }
    DatasetsScreen #diff {
        height: auto; max-height: 10; border: round $primary; padding: 0 1; display: none;
    }
    DatasetsScreen #samples-title { height: auto; color: $text-muted; }
    DatasetsScreen #samples {
        layout: grid; grid-size: 2; grid-gutter: 1 1; grid-rows: auto; height: 1fr;
    }
    DatasetsScreen .tile { width: 1fr; height: auto; }
    DatasetsScreen .caption { height: auto; max-height: 3; color: $text-muted; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._versions: list[dict[str, Any]] = []
        self._diff_from: str | None = None  # the version `f` marked
        self._shown: str | None = None  # the version whose samples are shown (or loading)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Loading datasets…", id="empty", classes="empty")
        with Horizontal(id="body"):
            table: DataTable[str] = DataTable(id="versions", cursor_type="row", zebra_stripes=True)
            table.add_column("", key="mark", width=1)
            for label in ("version", "rows", "files", "size", "created", "source"):
                table.add_column(label, key=label)
            yield table
            with Vertical(id="detail"):
                yield Static(id="diff")
                yield Static("Highlight a version to see its photos.", id="samples-title")
                yield SampleGrid(id="samples")
        yield Footer()

    def reload(self) -> None:
        self._load(self.workspace)

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load(self, workspace: str | None) -> None:
        versions: list[dict[str, Any]] = []
        if workspace is not None:
            for dataset in self.services.datasets.list(workspace):
                versions.extend(self.services.datasets.versions(workspace, dataset["name"]))
        self.deliver(self._show, (workspace, versions))

    def _show(self, loaded: tuple[str | None, list[dict[str, Any]]]) -> None:
        workspace, versions = loaded
        if workspace != self.workspace:
            return  # a load for the workspace before; the current one is on its way
        self._versions = versions
        refs = [ref_of(v) for v in versions]
        if self._diff_from not in refs:
            self._diff_from = None
        if self._shown not in refs:
            self._shown = None
            self._clear_samples()
        self._fill()
        empty = self.query_one("#empty", Static)
        if workspace is None:
            empty.update("No workspace chosen: press w to pick one.")
        else:
            empty.update(
                f"No datasets in workspace {workspace} (add one with `appliance dataset add`)."
            )
        empty.display = not versions
        self.query_one("#body").display = bool(versions)
        table = self.query_one("#versions", DataTable)
        if versions and self._shown is None:
            self._select(key_at_cursor(table))

    def _fill(self) -> None:
        rows = [
            (
                ref_of(v),
                (
                    MARK if ref_of(v) == self._diff_from else "",
                    ref_of(v),
                    figures.number(v["row_count"]),
                    figures.number(v["file_count"]),
                    size(v["total_bytes"]),
                    figures.moment(v["created_at"]),
                    v["source"] or figures.DASH,
                ),
            )
            for v in self._versions
        ]
        fill(self.query_one("#versions", DataTable), rows)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._select(event.row_key.value)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self._select(event.row_key.value, again=True)

    def _select(self, ref: str | None, again: bool = False) -> None:
        """Show the samples of version `ref` (again: even when they are already shown)."""
        if ref is None or self.workspace is None or (ref == self._shown and not again):
            return
        self._shown = ref
        self.query_one("#samples-title", Static).update(f"Loading {ref}…")
        self._load_samples(self.workspace, ref)

    @work(thread=True, exclusive=True, group="samples", exit_on_error=False)
    def _load_samples(self, workspace: str, ref: str) -> None:
        version = self.services.datasets.get(workspace, ref)
        rows = self.services.datasets.rows(version)
        folder = self.services.datasets.materialize(version)
        samples = [
            Sample(row["file_name"], str(row.get("text") or ""), thumbnail(folder, row))
            for row in spread(rows, SAMPLES)
        ]
        self.deliver(self._show_samples, Samples(ref, len(rows), version["columns"], samples))

    async def _show_samples(self, loaded: Samples) -> None:
        if loaded.ref != self._shown:
            return
        shown = len(loaded.samples)
        self.query_one("#samples-title", Static).update(
            f"{loaded.ref} · {figures.number(loaded.rows)} rows"
            + (f" · {shown} samples" if shown < loaded.rows else "")
            + f"\ncolumns: {describe_columns(loaded.columns, loaded.rows)}"
        )
        grid = self.query_one("#samples", SampleGrid)
        await grid.remove_children()
        await grid.mount_all(tile(sample) for sample in loaded.samples)

    def _clear_samples(self) -> None:
        self.query_one("#samples-title", Static).update("Highlight a version to see its photos.")
        self.query_one("#samples", SampleGrid).remove_children()

    # -- diff ----------------------------------------------------------------------------------

    def action_diff(self) -> None:
        ref = key_at_cursor(self.query_one("#versions", DataTable))
        if ref is None or self.workspace is None:
            return
        if self._diff_from is None or self._diff_from == ref:
            self._diff_from = None if self._diff_from == ref else ref
            self._fill()
            if self._diff_from is not None:
                self.notify(f"Diff from {ref}: press f on another version")
            return
        start, self._diff_from = self._diff_from, None
        self._fill()
        self._load_diff(self.workspace, start, ref)

    @work(thread=True, exclusive=True, group="diff", exit_on_error=False)
    def _load_diff(self, workspace: str, start: str, end: str) -> None:
        self.deliver(self._show_diff, self.services.datasets.diff(workspace, start, end))

    def _show_diff(self, diff: dict[str, Any]) -> None:
        panel = self.query_one("#diff", Static)
        panel.update(describe_diff(diff))
        panel.border_title = "diff (esc closes)"
        panel.display = True

    def action_close_diff(self) -> None:
        self.query_one("#diff", Static).display = False

    def _workspace_changed(self) -> None:
        self._diff_from = self._shown = None  # refs repeat across workspaces
        self.action_close_diff()
        super()._workspace_changed()


def ref_of(version: dict[str, Any]) -> str:
    return f"{version['name']}@v{version['version']}"


def size(total: int | None) -> str:
    """A byte count in B, KB, MB or GB (powers of 1000)."""
    if total is None:
        return figures.DASH
    value = float(total)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def spread(rows: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """Up to `count` rows spread evenly over `rows` (the same ones every time)."""
    if len(rows) <= count:
        return rows
    return [rows[i * len(rows) // count] for i in range(count)]


def thumbnail(folder: Path, row: dict[str, Any]) -> Image.Image | None:
    """The row's photo shrunk for a thumbnail; None when it cannot be read."""
    try:
        with Image.open(folder / row["file_name"]) as image:
            image.thumbnail((THUMB_PIXELS, THUMB_PIXELS))
            return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def tile(sample: Sample) -> Vertical:
    return Vertical(
        ImagePreview(
            sample.image, cells=THUMB_CELLS, max_rows=THUMB_ROWS, placeholder="(unreadable)"
        ),
        Static(Text(sample.text or sample.file_name), classes="caption"),
        classes="tile",
    )


def describe_diff(diff: dict[str, Any]) -> Text:
    """The diff panel: which versions, counts per kind of change, and the first names."""
    start, end = diff["from"], diff["to"]
    text = Text()
    text.append(f"{start['name']}@v{start['version']} → {end['name']}@v{end['version']}\n", "bold")
    kinds = (
        ("added", "green"), ("removed", "red"), ("changed", "yellow"), ("relabelled", "cyan"),
        ("rows_changed", "magenta"),
    )  # fmt: skip
    text.append_text(
        Text("  ").join(
            Text(f"{len(diff[kind])} {kind.replace('_', ' ')}", style) for kind, style in kinds
        )
    )
    for kind, _ in kinds:
        names = diff[kind]
        if names:
            more = f" (+{len(names) - FIRST_NAMES} more)" if len(names) > FIRST_NAMES else ""
            text.append(f"\n{kind.replace('_', ' ')}: {', '.join(names[:FIRST_NAMES])}{more}")
    if schema := describe_schema(diff["schema"]):
        text.append(f"\nschema: {', '.join(schema)}")
    if not any(diff[kind] for kind, _ in kinds):
        text.append("\nthe same content")
    return text
