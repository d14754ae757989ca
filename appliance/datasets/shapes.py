"""Per-category silhouettes for the synthetic product photos (see `synthetic.py`).

Each shape draws its silhouette (255 = body, later coloured and patterned) into a mask and, for a
few categories, fixed-colour details (wheels, pages) into an RGBA layer painted over the pattern.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from PIL import ImageDraw

Point = tuple[float, float]
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Frame:
    """The object's bounding box in canvas pixels; shapes are drawn in unit coordinates (u, v)."""

    x: float
    y: float
    w: float
    h: float
    flip: bool = False

    def pt(self, u: float, v: float) -> Point:
        if self.flip:
            u = 1.0 - u
        return (self.x + u * self.w, self.y + v * self.h)

    def box(self, u0: float, v0: float, u1: float, v1: float) -> Box:
        (xa, ya), (xb, yb) = self.pt(u0, v0), self.pt(u1, v1)
        return (min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb))

    def poly(self, *points: Point) -> list[Point]:
        return [self.pt(u, v) for u, v in points]


Draw = ImageDraw.ImageDraw
ShapeFn = Callable[[Draw, Draw, Frame, random.Random], None]

BODY = 255
# Fixed detail colours: neutral so they never read as the product's colour.
PAGES = (238, 232, 212, 255)
SPINE = (0, 0, 0, 80)
TYRE = (30, 30, 32, 255)
HUB = (165, 165, 170, 255)
GLASS = (190, 215, 230, 235)


def mug(m: Draw, d: Draw, f: Frame, rng: random.Random) -> None:
    body = rng.uniform(0.66, 0.74)
    m.rounded_rectangle(f.box(0.0, 0.04, body, 1.0), radius=0.07 * f.w, fill=BODY)
    # A thick ring whose inner half hides behind the body: the handle is the mug's signature.
    thick = max(2.0, 0.14 * f.w)
    m.ellipse(f.box(body - 0.22, 0.18, 1.0, 0.8), outline=BODY, width=round(thick))


def shoe(m: Draw, d: Draw, f: Frame, rng: random.Random) -> None:
    collar = rng.uniform(0.0, 0.12)
    m.polygon(
        f.poly(
            (0.02, 1.0),
            (0.0, 0.1 + collar),
            (0.3, collar),
            (0.38, 0.3),
            (0.66, 0.46),
            (0.86, 0.5),
            (1.0, 0.78),
            (1.0, 1.0),
        ),
        fill=BODY,
    )
    m.ellipse(f.box(0.64, 0.44, 1.0, 1.0), fill=BODY)
    m.rounded_rectangle(f.box(0.0, 0.84, 1.0, 1.0), radius=0.08 * f.h, fill=BODY)


def lamp(m: Draw, d: Draw, f: Frame, rng: random.Random) -> None:
    top = rng.uniform(0.18, 0.28)
    shade = rng.uniform(0.4, 0.48)
    m.polygon(f.poly((top, 0.0), (1.0 - top, 0.0), (1.0, shade), (0.0, shade)), fill=BODY)
    m.rectangle(f.box(0.44, shade, 0.56, 0.92), fill=BODY)
    m.rounded_rectangle(f.box(0.16, 0.86, 0.84, 1.0), radius=0.05 * f.h, fill=BODY)


def chair(m: Draw, d: Draw, f: Frame, rng: random.Random) -> None:
    back = rng.uniform(0.4, 0.48)
    m.rounded_rectangle(f.box(0.08, 0.0, 0.92, back), radius=0.06 * f.w, fill=BODY)
    m.rectangle(f.box(0.08, back, 0.2, back + 0.08), fill=BODY)
    m.rectangle(f.box(0.8, back, 0.92, back + 0.08), fill=BODY)
    seat = back + 0.07
    m.polygon(f.poly((0.08, seat), (0.92, seat), (1.0, seat + 0.13), (0.0, seat + 0.13)), fill=BODY)
    m.rectangle(f.box(0.02, seat + 0.12, 0.16, 1.0), fill=BODY)
    m.rectangle(f.box(0.84, seat + 0.12, 0.98, 1.0), fill=BODY)


def bag(m: Draw, d: Draw, f: Frame, rng: random.Random) -> None:
    top = rng.uniform(0.34, 0.42)
    m.polygon(f.poly((0.12, top), (0.88, top), (1.0, 0.9), (0.0, 0.9)), fill=BODY)
    m.rounded_rectangle(f.box(0.0, 0.8, 1.0, 1.0), radius=0.1 * f.h, fill=BODY)
    thick = max(2.0, 0.08 * f.w)
    m.ellipse(f.box(0.27, 0.0, 0.73, 2 * top), outline=BODY, width=round(thick))


def book(m: Draw, d: Draw, f: Frame, rng: random.Random) -> None:
    m.rectangle(f.box(0.0, 0.0, 0.86, 0.93), fill=BODY)
    # The page block seen at an angle, and a shadowed spine, say "book" rather than "box".
    d.polygon(f.poly((0.86, 0.0), (1.0, 0.07), (1.0, 1.0), (0.86, 0.93)), fill=PAGES)
    d.polygon(f.poly((0.0, 0.93), (0.86, 0.93), (1.0, 1.0), (0.14, 1.0)), fill=PAGES)
    d.rectangle(f.box(0.0, 0.0, 0.11, 0.93), fill=SPINE)


def bottle(m: Draw, d: Draw, f: Frame, rng: random.Random) -> None:
    shoulder = rng.uniform(0.3, 0.38)
    m.rounded_rectangle(f.box(0.0, shoulder, 1.0, 1.0), radius=0.18 * f.w, fill=BODY)
    m.ellipse(f.box(0.0, shoulder - 0.12, 1.0, shoulder + 0.12), fill=BODY)
    m.rectangle(f.box(0.32, 0.05, 0.68, shoulder), fill=BODY)
    m.rectangle(f.box(0.27, 0.0, 0.73, 0.08), fill=BODY)


def hat(m: Draw, d: Draw, f: Frame, rng: random.Random) -> None:
    crown = rng.uniform(0.2, 0.26)
    m.rounded_rectangle(f.box(crown, 0.0, 1.0 - crown, 0.86), radius=0.12 * f.w, fill=BODY)
    m.ellipse(f.box(0.0, 0.7, 1.0, 1.0), fill=BODY)


def car(m: Draw, d: Draw, f: Frame, rng: random.Random) -> None:
    m.rounded_rectangle(f.box(0.0, 0.4, 1.0, 0.84), radius=0.12 * f.h, fill=BODY)
    m.polygon(f.poly((0.18, 0.42), (0.32, 0.04), (0.7, 0.04), (0.86, 0.42)), fill=BODY)
    d.polygon(f.poly((0.27, 0.38), (0.36, 0.12), (0.49, 0.12), (0.49, 0.38)), fill=GLASS)
    d.polygon(f.poly((0.54, 0.38), (0.54, 0.12), (0.67, 0.12), (0.77, 0.38)), fill=GLASS)
    r = 0.2 * f.h
    for u in (0.22, 0.78):
        cx, cy = f.pt(u, 0.8)
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=TYRE)
        d.ellipse((cx - r / 2.4, cy - r / 2.4, cx + r / 2.4, cy + r / 2.4), fill=HUB)


# category -> (drawing function, width / height of its bounding box, may be mirrored)
SHAPES: dict[str, tuple[ShapeFn, float, bool]] = {
    "mug": (mug, 1.1, True),
    "shoe": (shoe, 2.0, True),
    "lamp": (lamp, 0.66, False),
    "chair": (chair, 0.72, False),
    "bag": (bag, 1.05, False),
    "book": (book, 0.74, True),
    "bottle": (bottle, 0.4, False),
    "hat": (hat, 1.55, False),
    "car": (car, 2.2, True),
}
