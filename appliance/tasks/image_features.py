"""What a photo looks like, cheaply, and how it looks taken badly: the input features every
request is monitored by (`image_features`: size, brightness, contrast, sharpness) and the
synthetic shifts calibration measures a version on (`shift_image`)."""

from __future__ import annotations

import itertools
import math
import operator

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from appliance.tasks.images import original_size


def image_features(image: Image.Image) -> dict[str, float]:
    """Cheap input features, computed on a 128-pixel greyscale copy: size, brightness (mean and
    99th percentile of luminance), contrast (its standard deviation) and sharpness (the standard
    deviation of its Laplacian: blurred photos score low). It runs for every request, so the
    statistics come from the two 256-bin histograms rather than ImageStat's per-bin Python loops
    (same formulas, about half the time)."""
    width, height = original_size(image)  # drift watches the upload's size, not the model's
    grey = image.convert("L")
    grey.thumbnail((128, 128))
    histogram = grey.histogram()
    mean, stddev = _mean_stddev(histogram)
    return {
        "width": float(width),
        "height": float(height),
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
