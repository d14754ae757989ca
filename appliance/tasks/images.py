"""Turning request bytes into a model-ready RGB image, or a clear 4xx: not an image (415),
truncated or corrupt (422), over the pixel limit (413). EXIF rotation is applied, animated images
give their first frame, and every mode (CMYK, palette, 16-bit, alpha) becomes RGB."""

from __future__ import annotations

import io
import itertools
import math
import operator
import warnings

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps, UnidentifiedImageError

from appliance.errors import TooLarge, Unprocessable, UnsupportedMedia


def decode_image(data: bytes, max_pixels: int) -> Image.Image:
    if not data:
        raise UnsupportedMedia("the image is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise TooLarge(
                    f"the image is {width}×{height} pixels, over the {max_pixels:,}-pixel limit"
                )
            image.load()
            image = ImageOps.exif_transpose(image) or image
            return _to_rgb(image)
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


def image_features(image: Image.Image) -> dict[str, float]:
    """Cheap input features, computed on a 128-pixel greyscale copy: size, brightness (mean and
    99th percentile of luminance), contrast (its standard deviation) and sharpness (the standard
    deviation of its Laplacian: blurred photos score low). It runs for every request, so the
    statistics come from the two 256-bin histograms rather than ImageStat's per-bin Python loops
    (same formulas, about half the time)."""
    grey = image.convert("L")
    grey.thumbnail((128, 128))
    histogram = grey.histogram()
    mean, stddev = _mean_stddev(histogram)
    return {
        "width": float(image.width),
        "height": float(image.height),
        "brightness": round(mean, 2),
        "brightness_p99": float(_percentile(histogram, 0.99)),
        "contrast": round(stddev, 2),
        "sharpness": round(_mean_stddev(grey.filter(_LAPLACIAN).histogram())[1], 2),
    }


_LEVELS = range(256)
_SQUARES = [v * v for v in _LEVELS]


def _mean_stddev(histogram: list[int]) -> tuple[float, float]:
    """Mean and population standard deviation of the values a 256-bin histogram counts."""
    count = sum(histogram)
    total = sum(map(operator.mul, histogram, _LEVELS))
    squares = sum(map(operator.mul, histogram, _SQUARES))
    mean = total / count
    return mean, math.sqrt(max(0.0, squares / count - mean * mean))


def _percentile(histogram: list[int], share: float) -> int:
    """The smallest value at or below which `share` of the counted values lie."""
    limit = share * sum(histogram)
    for value, running in enumerate(itertools.accumulate(histogram)):
        if running >= limit:
            return value
    return 255


# offset 128 keeps negative responses inside 0..255 so the spread measures edges both ways.
_LAPLACIAN = ImageFilter.Kernel((3, 3), (0, 1, 0, 1, -4, 1, 0, 1, 0), scale=1, offset=128)


SHIFTS = ("dark", "blur", "noise", "faded")
"""The synthetic shifts of a photo that calibration measures a version on (`shift_image`): what
a phone camera does to a product photo in bad conditions, none of which changes what it shows."""


def shift_image(image: Image.Image, kind: str, seed: int) -> Image.Image:
    """`image` taken in bad conditions: `dark` (underexposed, with sensor noise), `blur` (out of
    focus), `noise` (a high ISO) or `faded` (low contrast); the same for the same `seed`."""
    rng = np.random.default_rng(seed)
    if kind == "blur":
        return image.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(1.0, 2.5))))
    if kind == "faded":
        return ImageEnhance.Contrast(image).enhance(float(rng.uniform(0.25, 0.5)))
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    if kind == "dark":
        pixels = pixels * float(rng.uniform(0.15, 0.35)) + rng.normal(0, 3.0, pixels.shape)
    elif kind == "noise":
        pixels = pixels + rng.normal(0, float(rng.uniform(20, 40)), pixels.shape)
    else:
        raise ValueError(f"unknown shift '{kind}' (known: {', '.join(SHIFTS)})")
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")
