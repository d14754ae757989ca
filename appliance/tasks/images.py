"""Turning request bytes into a model-ready RGB image, or a clear 4xx: not an image (415),
truncated or corrupt (422), over the pixel limit or the decode budget (413). EXIF rotation is
applied, animated images give their first frame, and every mode (CMYK, palette, 16-bit, alpha)
becomes RGB.

Memory is bounded, since anyone who can reach predict can send an image (issue: a 132 KB PNG
of 6000×6600 pixels took the server from 445 to 1,166 MB, eight at once to 3.4 GB):

- the header's dimensions are checked against `max_image_pixels` before a pixel is decoded;
- an image longer than `image_max_side` on either side is decoded straight to that size (2048
  by default, above what any part of serving reads: ViT, BLIP and GIT take 224 to 384 px,
  LLaVA-NeXT up to 1,344, Idefics3 and SmolVLM tile up to 1,456 to 2,048; the review queue
  keeps 1,024 px, capture thumbnails 64, the features 128; capture stores no original bytes,
  only a thumbnail re-encoded from the decoded image): a JPEG at 1/2, 1/4 or 1/8 scale by
  the decoder itself (`draft`), an 8-bit non-interlaced PNG a strip of rows at a time
  (png_strips.py), anything else whole and then reduced a strip at a time. The reduction
  is by an integer factor over whole blocks of pixels (`Image.reduce`, a box filter), then a
  bicubic resize to the exact size, aspect kept; an image within `image_max_side` is never
  resized. The features still report the original width and height (`original_size`);
- every decode holds its estimated bytes of a process-wide budget of `decode_memory_mb`, so
  concurrent decodes of large images wait their turn (first come, first served) instead of
  allocating together, and one that alone needs more than the budget is refused with 413;
- after a large decode the C heap is trimmed (`malloc_trim`): Pillow returns an image's 16 MB
  blocks to malloc at once (its block cache, `Image.core.get_blocks_max()`, is 0 unless
  PILLOW_BLOCKS_MAX says otherwise), but glibc keeps freed heap pages resident."""

from __future__ import annotations

import collections
import ctypes
import dataclasses
import functools
import io
import itertools
import math
import sys
import threading
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from PIL import Image, ImageOps, UnidentifiedImageError

from appliance.errors import TooLarge, Unprocessable, UnsupportedMedia
from appliance.settings import Settings
from appliance.tasks import png_strips

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Settings)}
MAX_SIDE = cast(int, _DEFAULTS["image_max_side"])
MEMORY_MB = cast(int, _DEFAULTS["decode_memory_mb"])

STRIP_BYTES = 2 << 20
"""Decoded bytes of one strip of rows, in the strip-wise decode and reduction."""
RESAMPLE = Image.Resampling.BICUBIC
"""The last step to the exact size, from under twice it (Image.thumbnail's filter). Worth its
cost: a 4032×3024 phone photo takes 138 ms to decode rather than 59 (with Lanczos: 171), on a
decode thread, and a ViT image processor then takes 30 ms on it rather than 163, on the
model's."""
TRIM_BYTES = 32 << 20
"""A decode that held at least this much of the budget trims the heap afterwards."""
_ORIGINAL = "appliance_original_size"
"""The attribute of a decoded image holding its size before any reduction (after rotation)."""

_DECODING = {"WEBP": 4.0}
"""Decoders that hold copies of the pixels while decoding, as a multiple of the image's bytes:
libwebp's animation decoder keeps two canvases and hands Pillow a third as bytes (6000×6600:
609 MB at peak for a 151 MB image). Others decode straight into Pillow's image."""

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}  # as ImageOps.exif_transpose reads the EXIF Orientation tag


def decode_image(
    data: bytes, max_pixels: int, *, max_side: int = MAX_SIDE, memory_mb: int = MEMORY_MB
) -> Image.Image:
    """`data` as an RGB image at most `max_side` pixels on its longest side (0: as large as it
    is), decoded within a process-wide budget of `memory_mb` MB shared by every decode."""
    if not data:
        raise UnsupportedMedia("the image is empty (0 bytes)")
    budget = _budget(memory_mb)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise TooLarge(
                    f"the image is {width}×{height} pixels, over the {max_pixels:,}-pixel limit"
                )
            target = _target(image.size, max_side)
            if target is None:
                return _whole(image, budget, max_side)
            return _reduced(data, image, target, budget, max_side)
    except UnidentifiedImageError:
        raise UnsupportedMedia(
            "the bytes are not an image format this server reads (send PNG, JPEG, WebP, GIF, "
            "BMP or TIFF)"
        ) from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise TooLarge(
            f"the image is too large to decode safely (over the {max_pixels:,}-pixel limit)"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise Unprocessable(
            f"the image could not be decoded: it is truncated or corrupt ({exc})"
        ) from None


def original_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) of the upload `image` was decoded from, as displayed (after its EXIF
    rotation): its own size unless decode_image reduced it."""
    size = getattr(image, _ORIGINAL, None)
    return size if size is not None else image.size


def _whole(image: Image.Image, budget: _Budget, max_side: int) -> Image.Image:
    """An image within the side limit, decoded as it always was: whole, rotated, to RGB."""
    bpp = _bytes_per_pixel(image.mode)
    cost = int(image.width * image.height * (bpp * _DECODING.get(image.format or "", 1) + bpp + 4))
    with budget.hold(cost, image.size, image.format, max_side):
        try:
            image.load()
            rgb = _to_rgb(ImageOps.exif_transpose(image))  # a copy, rotated or not
        finally:
            image.close()  # a WebP's decoder keeps its own copies of the pixels until then
    setattr(rgb, _ORIGINAL, rgb.size)
    return rgb


def _reduced(
    data: bytes, image: Image.Image, target: tuple[int, int], budget: _Budget, max_side: int
) -> Image.Image:
    """An image longer than the side limit, brought to `target` without its full-size pixels
    existing when that can be avoided: PNG by strips, JPEG by draft, others whole."""
    size = image.size
    png = png_strips.layout(data) if image.format == "PNG" else None
    if png is not None and (png.width, png.height) == size:
        factor = _factor(size, target)
        rows = _rows(size[0], factor)
        cost = 8 * rows * size[0] * 4 + _reduced_bytes(size, factor, target)
        with budget.hold(cost, size, image.format, max_side):
            image.close()  # its header only: the strips are decoded from `data`
            orientation = _orientation(png_strips.metadata_image(png))
            reduced = _reduce(png_strips.strips(png, rows), size, factor)
            result = _finish(reduced, target, orientation, size)
            del reduced  # before the budget is given back and the heap trimmed
        return result
    image.draft(None, target)  # JPEG: the decoder scales by 1/2, 1/4 or 1/8; others: no-op
    factor = _factor(image.size, target)
    direct = factor == 1 and image.mode == "RGB"  # resized as it is: no reduced copy
    rows = _rows(image.width, factor)
    decoded = image.width * image.height * _bytes_per_pixel(image.mode)
    cost = int(decoded * _DECODING.get(image.format or "", 1))
    if direct:
        cost += _resized_bytes(image.size, target)
    else:
        cost += 4 * rows * image.width * 4 + _reduced_bytes(image.size, factor, target)
    with budget.hold(cost, size, image.format, max_side):
        try:
            image.load()
            orientation = _orientation(image)
            if direct:
                reduced = image.resize(target, RESAMPLE)
            else:
                reduced = _reduce(_crops(image, rows), image.size, factor)
        finally:
            image.close()  # frees the full-size pixels before the budget is given back
        result = _finish(reduced, target, orientation, size)
        del reduced
    return result


def _finish(
    reduced: Image.Image, target: tuple[int, int], orientation: int, size: tuple[int, int]
) -> Image.Image:
    if reduced.size != target:
        reduced = reduced.resize(target, RESAMPLE)
    method = _TRANSPOSE.get(orientation)
    if method is not None:
        reduced = reduced.transpose(method)
        if orientation >= 5:
            size = size[1], size[0]
    setattr(reduced, _ORIGINAL, size)
    return reduced


def _reduce(
    strips: Iterable[tuple[int, Image.Image]], size: tuple[int, int], factor: int
) -> Image.Image:
    """The strips (first row, image; each a multiple of `factor` rows but the last) as one RGB
    image reduced by `factor`: the same pixels as converting and reducing the whole."""
    out = Image.new("RGB", (-(-size[0] // factor), -(-size[1] // factor)))
    for top, strip in strips:
        rgb = _to_rgb(strip)
        out.paste(rgb.reduce(factor) if factor > 1 else rgb, (0, top // factor))
    return out


def _crops(image: Image.Image, rows: int) -> Iterator[tuple[int, Image.Image]]:
    for top in range(0, image.height, rows):
        yield top, image.crop((0, top, image.width, min(image.height, top + rows)))


def _orientation(image: Image.Image | None) -> int:
    """The EXIF orientation (1 to 8) ImageOps.exif_transpose would apply to `image`."""
    if image is None:
        return 1
    orientation = image.getexif().get(0x0112, 1)
    return orientation if isinstance(orientation, int) else 1


def _target(size: tuple[int, int], max_side: int) -> tuple[int, int] | None:
    """The size an image of `size` is brought to (its longest side `max_side`, aspect kept),
    or None when it is within it."""
    longest = max(size)
    if max_side <= 0 or longest <= max_side:
        return None
    scale = max_side / longest
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _factor(size: tuple[int, int], target: tuple[int, int]) -> int:
    """The integer reduction that keeps an image of `size` at least `target` on both sides."""
    return max(1, min(size[0] // target[0], size[1] // target[1]))


def _rows(width: int, factor: int) -> int:
    """Rows of one strip: about STRIP_BYTES decoded, a multiple of `factor`."""
    return max(factor, STRIP_BYTES // (width * 4) // factor * factor)


def _reduced_bytes(size: tuple[int, int], factor: int, target: tuple[int, int]) -> int:
    """The image reduced by `factor`, then resized to `target`."""
    reduced = -(-size[0] // factor), -(-size[1] // factor)
    return _rgb_bytes(reduced) + _resized_bytes(reduced, target)


def _resized_bytes(size: tuple[int, int], target: tuple[int, int]) -> int:
    """A resize to `target`: its output, and the horizontal pass's (target width, height)."""
    if size == target:
        return 0
    return _rgb_bytes(target) + _rgb_bytes((target[0], size[1]))


def _rgb_bytes(size: tuple[int, int]) -> int:
    return size[0] * size[1] * 4  # Pillow keeps RGB as 4 bytes a pixel


def _bytes_per_pixel(mode: str) -> int:
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4  # RGB, RGBA, LA, CMYK, YCbCr, I, F: 32 bits a pixel in Pillow


class _Budget:
    """Bytes of decoded pixels that decodes may hold at once. A decode waits until its cost
    fits, in arrival order (a large one is not overtaken forever by small ones); holders never
    wait for anything else, so waiting ends. A cost over the whole budget is refused."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self._turns: collections.deque[int] = collections.deque()
        self._tickets = itertools.count()
        self._changed = threading.Condition()

    @contextmanager
    def hold(
        self, cost: int, size: tuple[int, int], kind: str | None, max_side: int
    ) -> Iterator[None]:
        """Hold `cost` bytes while the block runs, for an image of `size` and format `kind`."""
        if cost > self.total:
            smaller = f"at most {max_side} pixels a side" if max_side > 0 else "smaller"
            raise TooLarge(
                f"decoding this {size[0]}×{size[1]} {kind or 'image'} takes about {_mb(cost)} "
                f"MB, over the {_mb(self.total)} MB decode budget (decode_memory_mb): send it "
                f"{smaller}, or as a JPEG or an 8-bit non-interlaced PNG, which are decoded "
                f"at the reduced size"
            )
        with self._changed:
            ticket = next(self._tickets)
            self._turns.append(ticket)
            try:
                while self._turns[0] != ticket or self.used + cost > self.total:
                    self._changed.wait()
            finally:
                self._turns.remove(ticket)
                self._changed.notify_all()  # the next in line may fit too
            self.used += cost
        try:
            yield
        finally:
            with self._changed:
                self.used -= cost
                self._changed.notify_all()
            if cost >= TRIM_BYTES:
                trim_heap()


def _mb(size: int) -> int:
    return math.ceil(size / (1 << 20))


_budgets: dict[int, _Budget] = {}
_budgets_lock = threading.Lock()


def _budget(memory_mb: int) -> _Budget:
    """The process-wide budget of `memory_mb` MB (0: unlimited; one budget per value, and a
    process has one setting)."""
    with _budgets_lock:
        if memory_mb not in _budgets:
            _budgets[memory_mb] = _Budget(memory_mb << 20 if memory_mb > 0 else sys.maxsize)
        return _budgets[memory_mb]


def trim_heap() -> None:
    """Give the C heap's free pages back to the system (glibc's `malloc_trim`); elsewhere a
    no-op."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import os

        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, ValueError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale to 8 bits before the conversion clips it to white.
        image = image.point(lambda v: v / 256).convert("L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        background = Image.new("RGB", image.size, (255, 255, 255))
        rgba = image.convert("RGBA")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")
