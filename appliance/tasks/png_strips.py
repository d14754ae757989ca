"""Decoding a large PNG a strip of rows at a time, so its full-size pixels never exist at once.

PNG has no reduced-resolution decode (JPEG's `draft`), and Pillow decodes the whole image into
one buffer: a 6000×6600 RGB PNG of 132 KB becomes 158 MB (Pillow keeps RGB in 4 bytes a
pixel). Here the zlib stream of the IDAT chunks is inflated incrementally, and each strip of
`rows` filtered scanlines becomes a small PNG of its own that Pillow decodes (so the five row
filters, palettes and transparency are Pillow's code, not ours): its first row is the previous
strip's last row, already unfiltered, stored with filter type 0 (None), which is exactly what
the strip's first filter (Up, Average, Paeth) refers to; that row is dropped after decoding.

Only non-interlaced PNGs with 8 bits per sample and no animation (`layout` answers None for
the rest): there, a decoded row's `tobytes()` is the raw unfiltered scanline (L, RGB, RGBA, LA,
and P with an 8-bit palette index). Interlaced, 16-bit and 1/2/4-bit PNGs and APNGs are decoded
whole, inside the decode budget (images.py)."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from PIL import Image

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_BANDS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
"""Samples per pixel of each PNG colour type: grey, RGB, palette, grey+alpha, RGBA."""
_METADATA = (b"eXIf", b"tEXt", b"zTXt", b"iTXt")
"""Chunks where an orientation can live (EXIF, ImageMagick's raw profile, XMP)."""


@dataclass
class Layout:
    """What a PNG's chunks say, read without inflating a byte of pixels."""

    width: int
    height: int
    colour_type: int
    bands: int
    idat: list[memoryview] = field(default_factory=list)
    """The IDAT chunks' data in file order: one zlib stream cut into pieces."""
    palette: list[bytes] = field(default_factory=list)
    """The PLTE and tRNS chunks, whole (length, type, data, CRC), to copy into each strip."""
    metadata: list[bytes] = field(default_factory=list)
    """eXIf and text chunks, whole: where Pillow looks for the image's EXIF orientation."""

    @property
    def row_bytes(self) -> int:
        return self.width * self.bands


def layout(data: bytes) -> Layout | None:
    """The layout of `data` when it is a PNG this module can decode in strips, else None (not
    a PNG, interlaced, not 8 bits per sample, animated, or chunks that do not parse: the whole
    decode then says what is wrong)."""
    if not data.startswith(SIGNATURE):
        return None
    view = memoryview(data)
    found: Layout | None = None
    position = len(SIGNATURE)
    in_idat = False
    while position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        start, end = position + 8, position + 8 + length
        if kind == b"IHDR":
            if length != 13 or end > len(data):
                return None
            width, height, depth, colour, compression, filtering, interlace = struct.unpack_from(
                ">IIBBBBB", data, start
            )
            if depth != 8 or colour not in _BANDS or compression or filtering or interlace:
                return None
            found = Layout(width, height, colour, _BANDS[colour])
        elif found is None:
            return None  # IHDR must come first
        elif kind == b"IDAT":
            if found.idat and not in_idat:
                return None  # IDAT chunks that are not consecutive: let Pillow judge
            found.idat.append(view[start : min(end, len(data))])
        elif kind in (b"acTL", b"fcTL", b"fdAT"):
            return None  # an APNG: its first frame is Pillow's to compose
        elif kind in (b"PLTE", b"tRNS"):
            if found.idat:
                return None  # after the pixels: Pillow still reads a late tRNS, let it
            found.palette.append(bytes(view[position : end + 4]))
        elif kind in _METADATA:
            found.metadata.append(bytes(view[position : end + 4]))
        elif kind == b"IEND":
            break
        in_idat = kind == b"IDAT"
        position = end + 4
    if found is None or not found.idat or (found.colour_type == 3 and not found.palette):
        return None
    return found


def strips(png: Layout, rows: int) -> Iterator[tuple[int, Image.Image]]:
    """(first row, decoded strip) for consecutive strips of `rows` rows (the last one shorter),
    in Pillow's mode for the PNG (L, RGB, RGBA, LA or P, with its palette and transparency).
    A stream that ends early or does not inflate raises ValueError."""
    stride = png.row_bytes + 1  # each scanline starts with its filter type
    stream = _Inflater(png.idat)
    previous: bytes | None = None
    for top in range(0, png.height, rows):
        count = min(rows, png.height - top)
        filtered = stream.read(count * stride)
        if len(filtered) < count * stride:
            raise ValueError(
                f"truncated image data: the rows stop at {top + len(filtered) // stride} of "
                f"{png.height}"
            )
        if previous is None:
            strip = _decode(png, count, filtered)
        else:
            strip = _decode(png, count + 1, b"\0" + previous + filtered)
            strip = strip.crop((0, 1, png.width, count + 1))
        previous = strip.crop((0, count - 1, png.width, count)).tobytes()
        yield top, strip


def metadata_image(png: Layout) -> Image.Image | None:
    """A 1×1 PNG carrying the original's EXIF and text chunks, for Pillow to read the EXIF
    orientation from as it would from the original (eXIf, a raw profile, XMP); None when the
    PNG has none of those chunks."""
    if not png.metadata:
        return None
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    data = b"".join(
        [SIGNATURE, _chunk(b"IHDR", ihdr), *png.metadata,
         _chunk(b"IDAT", zlib.compress(b"\0\0")), _chunk(b"IEND", b"")]
    )  # fmt: skip
    return Image.open(io.BytesIO(data))


def _decode(png: Layout, height: int, scanlines: bytes) -> Image.Image:
    ihdr = struct.pack(">IIBBBBB", png.width, height, 8, png.colour_type, 0, 0, 0)
    data = b"".join(
        [SIGNATURE, _chunk(b"IHDR", ihdr), *png.palette,
         _chunk(b"IDAT", zlib.compress(scanlines, 0)), _chunk(b"IEND", b"")]
    )  # fmt: skip
    del scanlines
    strip = Image.open(io.BytesIO(data))
    strip.load()
    return strip


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind))  # without copying a strip's data to prefix it
    return b"".join((struct.pack(">I", len(data)), kind, data, struct.pack(">I", crc)))


class _Inflater:
    """The IDAT pieces' zlib stream, read `size` bytes at a time: no more than asked is ever
    inflated, so a stream that expands 1000× costs a strip, not the image."""

    PIECE = 65_536  # input fed at a time: what zlib hands back unconsumed is copied each read

    def __init__(self, chunks: list[memoryview]) -> None:
        self._pieces = (c[i : i + self.PIECE] for c in chunks for i in range(0, len(c), self.PIECE))
        self._zlib = zlib.decompressobj()
        self._tail: bytes | memoryview = b""

    def read(self, size: int) -> bytes:
        out = bytearray()
        try:
            while len(out) < size and not self._zlib.eof:
                if not self._tail:
                    piece = next(self._pieces, None)
                    if piece is None:  # no input left: only what zlib still holds
                        more = self._zlib.decompress(b"", size - len(out))
                        if not more:
                            break
                        out += more
                        continue
                    self._tail = piece
                out += self._zlib.decompress(self._tail, size - len(out))
                self._tail = self._zlib.unconsumed_tail
        except zlib.error as exc:
            raise ValueError(f"the image data does not inflate ({exc})") from None
        return bytes(out)
