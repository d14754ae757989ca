"""Deterministic synthetic "classified-ads" product photos with captions, for the demo and tests.

`generate` writes a Hugging Face imagefolder (PNGs + metadata.jsonl) a small captioner can learn.
"""

from __future__ import annotations

import json
import math
import os
import random
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from appliance.datasets.shapes import SHAPES, Frame
from appliance.errors import Conflict, InvalidInput

CATEGORIES: tuple[str, ...] = tuple(SHAPES)
DEFAULT_CATEGORIES: tuple[str, ...] = tuple(c for c in CATEGORIES if c != "car")
PATTERNS: tuple[str, ...] = ("plain", "striped", "dotted")
LIGHTINGS: tuple[str, ...] = ("normal", "low")

# Saturated and far apart in hue so that ratios between channels still tell them apart once
# darkened to a quarter of their brightness; every one contrasts in hue with the neutral backdrops.
_COLOR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (212, 28, 36),
    "orange": (250, 128, 0),
    "yellow": (246, 218, 24),
    "green": (34, 168, 52),
    "blue": (32, 88, 232),
    "purple": (142, 48, 196),
}
COLORS: tuple[str, ...] = tuple(_COLOR_RGB)

# Neutral, so no colour can vanish into them; grey sits low enough that white darkened the most
# (x0.2) stays brighter than grey darkened the least (x0.35): the backdrop survives low light.
_BACKGROUND_RGB: dict[str, tuple[int, int, int]] = {
    "white": (244, 244, 242),
    "grey": (100, 100, 102),
    "black": (18, 18, 20),
}
BACKGROUNDS: tuple[str, ...] = tuple(_BACKGROUND_RGB)

# Pattern ink is chosen by the product colour only (dark ink on light colours, light on dark) so
# the pattern always contrasts with its product and the same colour always looks the same.
_DARK_INK = (24, 24, 26)
_LIGHT_INK = (246, 246, 246)

# Seller keywords: facts the photo cannot show. Sizes only where a size means something.
BRANDS: tuple[str, ...] = ("acme", "nordic", "zenith", "orbit", "kestrel")
CONDITIONS: tuple[str, ...] = ("vintage", "like new", "refurbished", "handmade")
SIZES: dict[str, tuple[str, ...]] = {
    "shoe": ("size 38", "size 40", "size 42", "size 44"),
    "hat": ("size s", "size m", "size l"),
}

MIN_SIZE, MAX_SIZE = 32, 512
MAX_COUNT = 100_000


@dataclass(frozen=True)
class ProductAttributes:
    """What a synthetic photo shows; `description()` is its caption."""

    category: str
    color: str
    pattern: str
    background: str
    lighting: str = "normal"
    brand: str = ""
    condition: str = ""
    size: str = ""
    """What a seller knows and the photo cannot show: "" when not given."""

    def description(self) -> str:
        # Fixed slots, "plain" included, so every attribute is one word at a known position.
        # Lighting is not part of the caption: a dark photo of a red mug is still a red mug.
        # A seller's keywords take slots of their own: brand and condition before the colour,
        # the size after the category ("acme vintage red plain shoe size 42 on a …").
        words = [self.brand, self.condition, self.color, self.pattern, self.category, self.size]
        return f"{' '.join(w for w in words if w)} on a {self.background} background"

    @property
    def keywords(self) -> list[str]:
        """The seller keywords this product was given, in caption order."""
        return [k for k in (self.brand, self.condition, self.size) if k]


@dataclass(frozen=True)
class GenerateSummary:
    path: Path
    count: int
    categories: dict[str, int]
    low_light: int
    keyworded: int = 0


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise InvalidInput(f"image size must be a whole number from {MIN_SIZE} to {MAX_SIZE}")


def _check_fraction(fraction: float, what: str = "low-light fraction") -> None:
    if not 0.0 <= fraction <= 1.0:  # also rejects NaN
        raise InvalidInput(f"{what} must be between 0 and 1")


def with_keywords(attrs: ProductAttributes, rng: random.Random) -> ProductAttributes:
    """`attrs` given one or two seller keywords (brand, condition, a size where one applies)."""
    kinds = ["brand", "condition"] + (["size"] if attrs.category in SIZES else [])
    choices = {"brand": BRANDS, "condition": CONDITIONS, "size": SIZES.get(attrs.category, ())}
    picked = rng.sample(kinds, rng.randint(1, 2))
    return replace(attrs, **{kind: rng.choice(choices[kind]) for kind in picked})


def check_categories(categories: Sequence[str]) -> tuple[str, ...]:
    """`categories` without repeats, each one known (a single name is a list of one)."""
    if isinstance(categories, str):
        categories = [categories]
    unknown = [c for c in categories if c not in CATEGORIES]
    if unknown:
        raise InvalidInput(
            f"unknown category {', '.join(map(repr, unknown))}; choose from {', '.join(CATEGORIES)}"
        )
    unique = tuple(dict.fromkeys(categories))
    if not unique:
        raise InvalidInput(f"give at least one category; choose from {', '.join(CATEGORIES)}")
    return unique


def _attributes(rng: random.Random, category: str, lighting: str) -> ProductAttributes:
    return ProductAttributes(
        category=category,
        color=rng.choice(COLORS),
        pattern=rng.choice(PATTERNS),
        background=rng.choice(BACKGROUNDS),
        lighting=lighting,
    )


def sample_attributes(
    rng: random.Random,
    *,
    categories: Sequence[str] = DEFAULT_CATEGORIES,
    low_light_fraction: float = 0.0,
) -> ProductAttributes:
    """Draw one product uniformly over the attribute lists; low light with the given probability."""
    cats = check_categories(categories)
    _check_fraction(low_light_fraction)
    category = rng.choice(cats)
    lighting = "low" if rng.random() < low_light_fraction else "normal"
    return _attributes(rng, category, lighting)


def _np_rng(rng: random.Random) -> np.random.Generator:
    # Pixel noise needs numpy's speed; seeding it from `rng` keeps one source of randomness.
    return np.random.default_rng(rng.getrandbits(64))


def _pattern_mask(pattern: str, side: int, scale: float, rng: random.Random) -> np.ndarray:
    """Where the ink goes, over the whole canvas; `scale` is canvas pixels per output pixel x 64."""
    if pattern == "plain":
        return np.zeros((side, side), dtype=bool)
    coords = np.arange(side, dtype=np.float64)
    if pattern == "striped":
        # ~8 px period with ~3.4 px stripes at 64 px: bold, yet the product colour dominates.
        period = scale * rng.uniform(7.5, 9.0)
        width = period * rng.uniform(0.4, 0.46)
        band = ((coords + rng.uniform(0, period)) % period) < width
        horizontal = rng.random() < 0.5
        return np.broadcast_to(band[:, None] if horizontal else band[None, :], (side, side))
    # Dots on a staggered grid, ~4.6 px across every ~9 px: clearly dots, never stripes.
    step = scale * rng.uniform(8.5, 10.0)
    radius = scale * rng.uniform(2.1, 2.5)
    oy, ox = rng.uniform(0, step), rng.uniform(0, step)
    row = np.round((coords - oy) / step)
    dy = (coords - oy - row * step)[:, None]
    # Rows alternate by half a step; a dot's own row is the nearest one since radius < step / 2.
    dx = coords[None, :] - ox - ((row % 2) * (step / 2))[:, None]
    dx -= np.round(dx / step) * step
    return dx * dx + dy * dy < radius * radius


def _erode(mask: np.ndarray, r: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(r):
        out[1:, :] &= mask[:-1, :]
        out[:-1, :] &= mask[1:, :]
        out[:, 1:] &= mask[:, :-1]
        out[:, :-1] &= mask[:, 1:]
        mask = out.copy()
    return out


def _jitter(rgb: tuple[int, ...], rng: random.Random, amount: int) -> np.ndarray:
    return np.array([c + rng.randint(-amount, amount) for c in rgb[:3]], dtype=np.float64)


def render(attrs: ProductAttributes, *, size: int = 64, rng: random.Random) -> Image.Image:
    """Draw the product described by `attrs` as a `size` x `size` RGB photo; a pure function of
    (attrs, size, rng state)."""
    _check_size(size)
    if attrs.category not in SHAPES:
        raise InvalidInput(f"unknown category {attrs.category!r}; choose from {', '.join(SHAPES)}")
    if attrs.color not in _COLOR_RGB:
        raise InvalidInput(f"unknown colour {attrs.color!r}; choose from {', '.join(COLORS)}")
    if attrs.pattern not in PATTERNS:
        raise InvalidInput(f"unknown pattern {attrs.pattern!r}; choose from {', '.join(PATTERNS)}")
    if attrs.background not in _BACKGROUND_RGB:
        raise InvalidInput(
            f"unknown background {attrs.background!r}; choose from {', '.join(BACKGROUNDS)}"
        )
    if attrs.lighting not in LIGHTINGS:
        raise InvalidInput(f"unknown lighting {attrs.lighting!r}; choose from normal, low")

    # Draw at 4x (2x for big images) and box-downscale: anti-aliased edges at no extra cost.
    ss = 4 if size <= 128 else 2
    side = size * ss
    shape, aspect, mirrorable = SHAPES[attrs.category]
    aspect *= rng.uniform(0.92, 1.08)
    # Equal area across categories (so thin bottles still carry a readable pattern), then capped
    # so the longest side stays within the frame: objects span ~45-90% of the image side.
    area_side = rng.uniform(0.43, 0.6) * side
    w, h = area_side * math.sqrt(aspect), area_side / math.sqrt(aspect)
    fit = min(1.0, 0.9 * side / max(w, h))
    w, h = w * fit, h * fit
    margin = 0.04 * side
    x = rng.uniform(margin, side - margin - w)
    y = rng.uniform(margin, side - margin - h)
    frame = Frame(x, y, w, h, flip=mirrorable and rng.random() < 0.5)

    mask_img = Image.new("L", (side, side), 0)
    detail_img = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    shape(ImageDraw.Draw(mask_img), ImageDraw.Draw(detail_img), frame, rng)
    body = np.asarray(mask_img) > 127

    color = _jitter(_COLOR_RGB[attrs.color], rng, 8)
    ink = np.array(_DARK_INK if _luma(_COLOR_RGB[attrs.color]) > 140 else _LIGHT_INK, np.float64)
    # Keep a rim of product colour around the ink so the silhouette never breaks up against a
    # backdrop the same shade as the ink.
    inked = _pattern_mask(attrs.pattern, side, ss * size / 64, rng) & _erode(body, max(1, ss))
    bg = _jitter(_BACKGROUND_RGB[attrs.background], rng, 5)
    gradient = rng.uniform(-12.0, 12.0) * (np.arange(size, dtype=np.float64) / size - 0.5)

    # Box-downscale coverage counts rather than pixels: exact integer sums (bit-identical on any
    # machine) over a few masks are much cheaper than compositing a full-resolution canvas.
    n = ss * ss
    cov_ink = _block_sum(inked, ss)
    cov_body = _block_sum(body, ss) - cov_ink
    cov_bg = n - cov_body - cov_ink
    small = (
        cov_bg[..., None] * (bg + gradient[:, None, None])
        + cov_body[..., None] * color
        + cov_ink[..., None] * ink
    ) / n
    if detail_img.getbbox() is not None:
        detail = np.asarray(detail_img).astype(np.uint32)
        alpha = detail[..., 3:]
        cover = _block_sum(alpha, ss) / (255 * n)
        paint = _block_sum(detail[..., :3] * alpha, ss) / (255 * n)
        small = small * (1.0 - cover) + paint

    noise_rng = _np_rng(rng)
    small *= rng.uniform(0.92, 1.05)  # exposure
    small += _sensor_noise(noise_rng, small.shape, 2)
    image = Image.fromarray(np.clip(np.rint(small), 0, 255).astype(np.uint8), "RGB")
    return darken(image, rng) if attrs.lighting == "low" else image


def _block_sum(a: np.ndarray, ss: int) -> np.ndarray:
    """Sum over ss x ss blocks of the first two axes, in integers."""
    h, w = a.shape[0] // ss, a.shape[1] // ss
    blocks = a.reshape(h, ss, w, ss, *a.shape[2:]).astype(np.uint32)
    return blocks.sum(axis=(1, 3), dtype=np.uint32)


def _luma(rgb: tuple[int, int, int]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _sensor_noise(gen: np.random.Generator, shape: tuple[int, ...], spread: int) -> np.ndarray:
    # Sum of uniform integers (roughly Gaussian, std ~ spread): integer draws are exact everywhere,
    # unlike Gaussian samplers that go through libm.
    draws = gen.integers(-spread, spread + 1, size=(3, *shape))
    return draws.sum(axis=0).astype(np.float64)


def darken(image: Image.Image, rng: random.Random) -> Image.Image:
    """The low-light transform: brightness x0.2-0.35, a slight blue-grey cast, sensor noise.

    A pure function of (image, rng state); training reuses it for low-light augmentation.
    """
    arr = np.asarray(image.convert("RGB"), dtype=np.float64)
    grey = (arr[..., 0] + arr[..., 1] + arr[..., 2]) / 3.0
    wash = rng.uniform(0.08, 0.18)  # dim scenes lose saturation
    arr = arr * (1.0 - wash) + grey[..., None] * wash
    arr *= rng.uniform(0.2, 0.35)
    tint = rng.uniform(0.6, 1.0)
    arr *= np.array([1.0 - 0.08 * tint, 1.0, 1.0 + 0.12 * tint])
    arr += np.array([2.0, 3.0, 6.0]) * tint  # the blue-grey floor of an underexposed sensor
    arr += _sensor_noise(_np_rng(rng), arr.shape, rng.choice((2, 3)))
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB")


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise Conflict(
            f"{out} already exists and is not empty; pick another folder or remove it first"
        )


def generate(
    out: Path,
    *,
    count: int,
    seed: int,
    low_light_fraction: float = 0.0,
    categories: Sequence[str] | None = None,
    size: int = 64,
    keyword_fraction: float = 0.0,
) -> GenerateSummary:
    """Write `count` photos and metadata.jsonl as an imagefolder at `out`, all or nothing.

    Categories are balanced (counts differ by at most one) in a seeded random order; exactly
    round(count * low_light_fraction) photos, chosen by the seed, are low light. Exactly
    round(count * keyword_fraction) rows get seller keywords (a `keywords` column, a list such
    as ["vintage", "size 42"] in a random order) that their description includes. Same
    arguments, same bytes; the keywords are drawn from a stream of their own, so the photos
    and captions without them are the ones a generator without keywords writes.
    """
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise InvalidInput(f"count must be a whole number from 1 to {MAX_COUNT}")
    _check_fraction(low_light_fraction)
    _check_fraction(keyword_fraction, "keyword fraction")
    cats = check_categories(DEFAULT_CATEGORIES if categories is None else categories)
    _check_size(size)
    out = Path(out)
    _check_out(out)

    rng = random.Random(seed)
    order = [cats[i % len(cats)] for i in range(count)]
    rng.shuffle(order)
    low_light = round(count * low_light_fraction)
    dark = set(rng.sample(range(count), low_light))
    # One seed per photo, drawn up front, so each photo's randomness is independent of the others.
    photo_seeds = [rng.getrandbits(64) for _ in range(count)]
    keyword_rng = random.Random(f"{seed}:keywords")
    keyworded = set(keyword_rng.sample(range(count), round(count * keyword_fraction)))

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        lines = []
        for i, (category, photo_seed) in enumerate(zip(order, photo_seeds, strict=True)):
            photo_rng = random.Random(photo_seed)
            attrs = _attributes(photo_rng, category, "low" if i in dark else "normal")
            name = f"{i:05d}.png"
            render(attrs, size=size, rng=photo_rng).save(tmp / name, format="PNG")
            if i in keyworded:
                attrs = with_keywords(attrs, keyword_rng)
            row: dict[str, str | list[str]] = {"file_name": name, "text": attrs.description()}
            row |= {"category": category, "color": attrs.color, "pattern": attrs.pattern}
            row |= {"background": attrs.background, "lighting": attrs.lighting}
            if attrs.keywords:
                given = attrs.keywords
                keyword_rng.shuffle(given)  # sellers type them in any order
                row["keywords"] = given
            lines.append(json.dumps(row) + "\n")
        with open(tmp / "metadata.jsonl", "w", encoding="utf-8", newline="\n") as fh:
            fh.writelines(lines)
        # Checked again: someone may have filled `out` while we were drawing.
        _check_out(out)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return GenerateSummary(
        path=out,
        count=count,
        categories={c: order.count(c) for c in cats},
        low_light=low_light,
        keyworded=len(keyworded),
    )
