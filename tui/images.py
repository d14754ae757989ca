"""Pictures in the terminal: real pixels where the terminal speaks the Terminal Graphics Protocol
or Sixel (textual-image draws them; `tui.graphics` says which, if any), else half blocks: each
cell shows two pixels, one above the other, as "▀" drawn in the top pixel's colour on the bottom
pixel's colour. Half blocks work in every terminal with true colour (Textual downgrades them
elsewhere), and are what tests and snapshots see.

`half_blocks` is the pure conversion; `ImagePreview` is a Static that shows one image (or a
placeholder line) at a fixed width in cells, keeping the image's aspect ratio."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PIL import Image
from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from tui.graphics import HALFBLOCKS, SIXEL, TGP, cell_ratio, pixel_widget

if TYPE_CHECKING:
    from textual_image.widget import SixelImage, TGPImage

UPPER_HALF = "▀"
MATTE = (32, 32, 36)
"""What shows through transparent pixels."""


def cells_for(
    size: tuple[int, int], width: int, max_rows: int | None = None, cell_ratio: float = 2.0
) -> tuple[int, int]:
    """(columns, rows) of cells showing an image of `size` pixels `width` cells wide, keeping
    its aspect ratio (a cell is `cell_ratio` times as tall as wide: two half blocks); narrower
    when `max_rows` would be exceeded."""
    pixels_wide, pixels_high = max(1, size[0]), max(1, size[1])
    width = max(1, width)
    rows = max(1, round(pixels_high * width / pixels_wide / cell_ratio))
    if max_rows is not None and rows > max_rows:
        rows = max(1, max_rows)
        width = max(1, min(width, round(rows * cell_ratio * pixels_wide / pixels_high)))
    return width, rows


def half_blocks(image: Image.Image, width: int, max_rows: int | None = None) -> Text:
    """`image` as rows of "▀" cells, `width` cells wide (see `cells_for`)."""
    columns, rows = cells_for(image.size, width, max_rows)
    small = _opaque(image).resize((columns, rows * 2), Image.Resampling.BOX)
    data = small.tobytes()  # RGB, row after row
    pixels = [tuple(data[i : i + 3]) for i in range(0, len(data), 3)]
    text = Text(no_wrap=True, overflow="crop", end="")
    styles: dict[tuple[tuple[int, ...], tuple[int, ...]], Style] = {}
    for row in range(rows):
        if row:
            text.append("\n")
        top_line = row * 2 * columns
        for column in range(columns):
            top, bottom = pixels[top_line + column], pixels[top_line + columns + column]
            style = styles.get((top, bottom))
            if style is None:
                style = Style(color=_colour(top), bgcolor=_colour(bottom))
                styles[(top, bottom)] = style
            text.append(UPPER_HALF, style)
    return text


def _colour(pixel: tuple[int, ...]) -> Color:
    red, green, blue = pixel
    return Color.from_rgb(red, green, blue)


def _opaque(image: Image.Image) -> Image.Image:
    """RGB pixels, transparent parts laid over `MATTE`."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        backdrop = Image.new("RGBA", rgba.size, (*MATTE, 255))
        return Image.alpha_composite(backdrop, rgba).convert("RGB")
    return image.convert("RGB")


class ImagePreview(Static):
    """One image `cells` wide (at most `max_rows` tall), or a line of placeholder text while
    there is none. Drawn with half blocks, unless the app's `image_protocol` is TGP or Sixel:
    then the preview holds the placeholder and a textual-image widget, one of them shown."""

    DEFAULT_CSS = """
    ImagePreview {
        height: auto;
        width: auto;
    }
    """

    def __init__(
        self,
        image: Image.Image | None = None,
        *,
        cells: int = 16,
        max_rows: int | None = None,
        placeholder: str = "",
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__("", markup=False, id=id, classes=classes)
        self.cells = cells
        self.max_rows = max_rows
        self.placeholder = placeholder
        self.image: Image.Image | None = None
        self._pixels: TGPImage | SixelImage | None = None
        self._placeholder: Static | None = None
        self.show(image)

    def compose(self) -> ComposeResult:
        protocol = getattr(self.app, "image_protocol", HALFBLOCKS)
        if protocol not in (TGP, SIXEL):
            return
        self.update("")
        self._placeholder = placeholder = Static(self._placeholder_text())
        self._pixels = pixels = pixel_widget(protocol)
        self.show(self.image)
        yield placeholder
        yield pixels

    def show(self, image: Image.Image | None) -> None:
        """Draw `image` (None: the placeholder)."""
        self.image = image
        if self._pixels is None or self._placeholder is None:
            if image is None:
                self.update(self._placeholder_text())
            else:
                self.update(half_blocks(image, self.cells, self.max_rows))
            return
        if image is not None:
            columns, rows = cells_for(image.size, self.cells, self.max_rows, cell_ratio())
            self._pixels.styles.width, self._pixels.styles.height = columns, rows
        self._pixels.image = image
        self._pixels.display = image is not None
        self._placeholder.display = image is None
        if image is None:
            self._placeholder.update(self._placeholder_text())

    def _placeholder_text(self) -> Text:
        return Text(self.placeholder, no_wrap=True, overflow="ellipsis")
