"""Quality by slice: which kinds of inputs and answers a model does worst on ("which kind of
shoes do we fail on").

A slice is the answered predictions of a window that share one value of a dimension:

- `lighting`: `dark` when a photo's brightest pixels (feature `brightness_p99`) stay below the
  `low_light_brightness` setting, else `normal` (predictions without the feature have none);
- `word`: each distinct lower-cased word of a generated description, stop words left out, so
  "red striped mug on a white background" is in the slices red, striped, mug, white and
  background: what the model itself says it saw (category, colour, pattern, lighting);
- `label`: a classifier's answer (its `output` has a `label`), one slice per label;
- any capture field by name: `keywords`, `description`, `version`, `endpoint` (exact value), or
  a numeric feature (`brightness`, `chars`, …) or `latency_ms`, in the window's quartiles.

Per slice: its predictions, the label-free quality estimate over those from calibrated
versions (quality.estimate: the mean calibrated confidence and its 95% interval), the share
that warned `uncertain`, its ratings: how many predictions were rated, their mean, and the
share rated 2 or lower (a prediction rated more than once counts by its mean rating), and its
reviews: how many a person accepted or corrected in the review queue, and the share corrected.

Pure functions over the rows `Predictions.window` reads; report.slices reads them.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from appliance.errors import InvalidInput
from appliance.monitoring.quality import estimate

STOP_WORDS = frozenset(
    {
        "a", "an", "and", "as", "at", "by", "for", "from", "in", "into", "is", "it", "its", "of",
        "on", "or", "over", "the", "to", "under", "with",
    }
)  # fmt: skip
"""Words of a description that name nothing the model saw."""
ANSWER = "answer"
"""The default dimension of the answer: words of a description, or a classifier's label."""
TEXT_FIELDS = {
    "keywords": "keywords",
    "description": "description",
    "version": "model_version_id",
    "endpoint": "endpoint",
}
"""Capture fields sliced by their exact value: the name `--by` takes → the column."""
NUMERIC_COLUMNS = ("latency_ms",)
"""Numeric capture columns sliced into quartiles, besides the input's features."""
LOW_RATING = 2
"""A rating at or below this counts as rated low."""
REVIEWED = ("accepted", "corrected")
"""Review outcomes that judged the answer (a dismissed item judged nothing)."""

_WORD = re.compile(r"[^\W\d_]+")

Key = tuple[str, str]
"""(dimension, value) of a slice."""


def words(text: str | None) -> list[str]:
    """The distinct lower-cased words (runs of letters) of `text`, stop words and single
    letters left out, in order of first appearance."""
    seen: dict[str, None] = {}
    for word in _WORD.findall((text or "").lower()):
        if len(word) > 1 and word not in STOP_WORDS:
            seen.setdefault(word)
    return list(seen)


def answer_keys(row: dict[str, Any]) -> list[Key]:
    """A classifier's label, or the words of a description."""
    output = row.get("output")
    if isinstance(output, dict) and isinstance(output.get("label"), str):
        return [("label", output["label"])]
    return [("word", w) for w in words(row.get("description"))]


def lighting_key(row: dict[str, Any], low_light_brightness: float) -> list[Key]:
    value = _number((row.get("features") or {}).get("brightness_p99"))
    if value is None:
        return []
    return [("lighting", "dark" if value < low_light_brightness else "normal")]


def slice_keys(
    rows: Sequence[dict[str, Any]], by: str | None = None, low_light_brightness: float = 110
) -> list[list[Key]]:
    """Each row's slices: lighting and the answer's words (or label) by default; with `by`,
    those of that one dimension or field. InvalidInput for a field no row has."""
    if by is None:
        return [lighting_key(r, low_light_brightness) + answer_keys(r) for r in rows]
    if by == "lighting":
        return [lighting_key(r, low_light_brightness) for r in rows]
    if by in (ANSWER, "word", "label"):
        return [answer_keys(r) for r in rows]
    if by in TEXT_FIELDS:
        column = TEXT_FIELDS[by]
        return [[(by, _text(r.get(column)))] for r in rows]
    values = [_numeric(r, by) for r in rows]
    if rows and all(v is None for v in values):
        raise InvalidInput(
            f"no prediction of the window has a field '{by}': slice by lighting, answer,"
            f" {', '.join(TEXT_FIELDS)}, {', '.join(NUMERIC_COLUMNS)} or an input feature"
            f" ({', '.join(sorted({f for r in rows for f in r.get('features') or {}})) or 'none'})"
        )
    return [[(by, v)] if v is not None else [] for v in quartiles(values)]


def quartiles(values: Sequence[float | None]) -> list[str | None]:
    """Each value's quartile of the known values, named by the range of the values in it
    ('12.5..40'); None stays None. Tied values share a quartile, so there may be fewer than 4."""
    known = [v for v in values if v is not None]
    if not known:
        return [None] * len(values)
    edges = sorted(set(np.quantile(known, [0.25, 0.5, 0.75]).tolist()))
    bucket = [None if v is None else bisect_left(edges, v) for v in values]
    members: dict[int, list[float]] = defaultdict(list)
    for b, v in zip(bucket, values, strict=True):
        if b is not None and v is not None:
            members[b].append(v)
    names = {b: f"{min(vs):.4g}..{max(vs):.4g}" for b, vs in members.items()}
    return [None if b is None else names[b] for b in bucket]


def figures(rows: Sequence[dict[str, Any]], calibrated: Collection[str]) -> dict[str, Any]:
    """The quality figures of answered `rows`: the estimate over the calibrated versions'
    confidences (None without one), the uncertain rate and the ratings."""
    confidences = [
        r["confidence"]
        for r in rows
        if r["confidence"] is not None and r["model_version_id"] in calibrated
    ]
    quality = None
    if confidences:
        value, low, high = estimate(confidences)
        quality = {
            "value": round(value, 4),
            "low": round(low, 4),
            "high": round(high, 4),
            "predictions": len(confidences),
        }
    rated = [float(r["rating"]) for r in rows if r.get("rating") is not None]
    reviewed = [r["review"] for r in rows if r.get("review") in REVIEWED]
    return {
        "predictions": len(rows),
        "estimated_quality": quality,
        "uncertain_rate": (
            round(sum(1 for r in rows if "uncertain" in r["warnings"]) / len(rows), 4)
            if rows
            else None
        ),
        "ratings": len(rated),
        "mean_rating": round(sum(rated) / len(rated), 4) if rated else None,
        "rated_low": round(sum(1 for x in rated if x <= LOW_RATING) / len(rated), 4)
        if rated
        else None,
        "reviewed": len(reviewed),
        "corrected_rate": round(reviewed.count("corrected") / len(reviewed), 4)
        if reviewed
        else None,
    }


def group(
    rows: Sequence[dict[str, Any]], calibrated: Collection[str], by: str | None = None,
    low_light_brightness: float = 110, min_rows: int = 10,
) -> dict[str, Any]:  # fmt: skip
    """The answered rows' figures overall and per slice of at least `min_rows` predictions
    (a word or label every answer has is no slice: it is the whole window), with how many
    slices were left out for being smaller."""
    ok = [r for r in rows if r["error"] is None]
    members: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for row, keys in zip(ok, slice_keys(ok, by, low_light_brightness), strict=True):
        for key in keys:
            members[key].append(row)
    out, left_out = [], 0
    for (dimension, value), mine in members.items():
        if dimension in ("word", "label") and len(mine) == len(ok):
            continue
        if len(mine) < min_rows:
            left_out += 1
            continue
        out.append(
            {
                "slice": f"{dimension}={value}",
                "dimension": dimension,
                "value": value,
                **figures(mine, calibrated),
            }
        )
    return {"overall": figures(ok, calibrated), "slices": out, "left_out": left_out}


def worst(
    slices: Sequence[dict[str, Any]], overall: dict[str, Any], n: int | None = None,
    min_rows: int = 1,
) -> list[dict[str, Any]]:  # fmt: skip
    """The slices of at least `min_rows` predictions, worst first (at most `n`): by estimated
    quality, lowest first; those without an estimate after them by their share rated low,
    highest first; those with neither last. Each with `vs_all`, its estimate minus the whole
    window's, `rated_low_vs_all`, its share rated low minus the window's, and
    `corrected_rate_vs_all`, its share corrected in review minus the window's. Without ratings,
    the share corrected stands in for the share rated low."""
    ranked = sorted((s for s in slices if s["predictions"] >= min_rows), key=_rank)
    every = overall["estimated_quality"]
    return [
        {
            **s,
            "vs_all": _minus(s["estimated_quality"], every),
            "rated_low_vs_all": (
                round(s["rated_low"] - overall["rated_low"], 4)
                if s["rated_low"] is not None and overall["rated_low"] is not None
                else None
            ),
            "corrected_rate_vs_all": (
                round(s["corrected_rate"] - overall["corrected_rate"], 4)
                if s["corrected_rate"] is not None and overall["corrected_rate"] is not None
                else None
            ),
        }
        for s in ranked[:n]
    ]


def _rank(s: dict[str, Any]) -> tuple[int, float, float, int, str]:
    quality = s["estimated_quality"]
    low = s["rated_low"] if s["rated_low"] is not None else s["corrected_rate"]
    if quality is not None:
        return (0, quality["value"], -(low or 0.0), -s["predictions"], s["slice"])
    if low is not None:
        return (1, -low, 0.0, -s["predictions"], s["slice"])
    return (2, 0.0, 0.0, -s["predictions"], s["slice"])


def _minus(quality: dict[str, Any] | None, every: dict[str, Any] | None) -> float | None:
    if quality is None or every is None:
        return None
    return round(quality["value"] - every["value"], 4)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _numeric(row: dict[str, Any], name: str) -> float | None:
    if name in NUMERIC_COLUMNS:
        return _number(row.get(name))
    return _number((row.get("features") or {}).get(name))


def _text(value: Any) -> str:
    text = " ".join(str(value).split()) if value is not None else ""
    return text or "(none)"
