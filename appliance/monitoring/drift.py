"""Drift: how far the inputs an endpoint sees now have moved from the data its model was trained on.

A model version keeps a *profile* of its training data: for each numeric input feature its task
declares (for photos: size, brightness, contrast, sharpness; for texts: length, digits, capitals)
an evenly spaced sample of the sorted values, small enough to store as JSON
yet shaped like the full distribution. Live inputs are compared with that profile by two
statistics: the Population Stability Index (how much mass moved between quantile bins) and the
two-sample Kolmogorov-Smirnov distance (the largest gap between the two empirical CDFs). A feature
has drifted when enough live values were seen and either statistic crosses its threshold.

Words drift as well as numbers: a profile also keeps the training *vocabulary* (the commonest
lower-cased words of the rows' watched text, the task's `words`), and every live input with words
gets two more features against it, `oov_rate` and `new_words` (`word_features`). Their reference
values come from the training rows themselves, each measured against a vocabulary built without
its own fold of the rows (`held_out_word_features`): measured against a vocabulary that holds
their own words they would all be 0, and any live unknown word would look like drift.

Everything here is pure computation over at most a few thousand numbers: no I/O, no numpy.
"""

from __future__ import annotations

import math
import re
import zlib
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass

FEATURES = ("width", "height", "brightness", "brightness_p99", "contrast", "sharpness")
"""The image-to-text task's features: what a profile holds when no task's names are given."""

WORD_FEATURES = ("oov_rate", "new_words")
"""The features of an input's words against its version's training vocabulary: the share of its
words the vocabulary lacks, and how many distinct such words it holds."""
VOCABULARY_SIZE = 20_000
"""The commonest training words a profile keeps: a rarer word counts as new (it is rare anyway)."""
FOLDS = 5
"""Training rows are measured against the vocabulary of the other folds' rows (4/5 of them)."""

# Floor for bin proportions: an empty bin would otherwise make ln(p / q) infinite.
EPSILON = 1e-4

_WORD = re.compile(r"[^\W\d_]+")  # runs of letters, any script


def _require(values: Sequence[float], name: str) -> None:
    if not values:
        raise ValueError(f"{name} values are empty; drift needs at least one value on each side")


def _edges(reference: Sequence[float], bins: int) -> list[float]:
    """Distinct reference quantiles at 0, 1/bins, …, 1, taken from the data itself."""
    ordered = sorted(reference)
    last = len(ordered) - 1
    return sorted({ordered[(i * last) // bins] for i in range(bins + 1)})


def _bin(edges: Sequence[float], value: float) -> int:
    if len(edges) == 1:
        # A constant reference: "below", "equal" and "above" are the only bins that mean anything.
        return bisect_left(edges, value) + bisect_right(edges, value)
    if len(edges) == 2:
        # Two distinct quantiles: most of the mass sits on one of them (a rate that is mostly 0).
        # Quantile bins would make one bin of it all, and PSI would always read 0: at or below
        # the lower one, between, and at or above the upper one instead.
        return int(value > edges[0]) + int(value >= edges[1])
    # Otherwise the usual quantile bins (the lowest and highest are open-ended), so a live value
    # that happens to equal a reference quantile is not a surprise in a bin of its own.
    return bisect_left(edges[1:-1], value)


def _proportions(edges: Sequence[float], values: Sequence[float]) -> list[float]:
    counts = [0] * (3 if len(edges) <= 2 else len(edges) - 1)
    for value in values:
        counts[_bin(edges, value)] += 1
    return [max(count / len(values), EPSILON) for count in counts]


def bins_for(samples: int) -> int:
    """PSI bins for a live sample of this size: ~10 values per bin, between 3 and 10 bins.
    With more bins than values, an unlucky empty bin alone would read as drift."""
    return max(3, min(10, samples // 10))


def psi(reference: Sequence[float], current: Sequence[float], bins: int = 10) -> float:
    """Population Stability Index of `current` against `reference`, rounded to 4 decimals.

    Bin edges are the reference's quantiles (deduplicated, so a constant reference has one edge).
    Rule of thumb: below 0.1 no shift, 0.1-0.25 a moderate one, above 0.25 a significant one.
    """
    _require(reference, "reference")
    _require(current, "current")
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    edges = _edges(reference, bins)
    expected = _proportions(edges, reference)
    actual = _proportions(edges, current)
    total = sum((a - e) * math.log(a / e) for a, e in zip(actual, expected, strict=True))
    return round(total, 4)


def ks(reference: Sequence[float], current: Sequence[float]) -> float:
    """Two-sample Kolmogorov-Smirnov statistic D in [0, 1], rounded to 4 decimals."""
    _require(reference, "reference")
    _require(current, "current")
    a, b = sorted(reference), sorted(current)
    n, m = len(a), len(b)
    i = j = 0
    distance = 0.0
    while i < n and j < m:
        x = min(a[i], b[j])
        # Step past every copy of x on both sides before comparing: the CDFs are only defined
        # after a whole tie, and comparing mid-tie would overstate the gap.
        while i < n and a[i] == x:
            i += 1
        while j < m and b[j] == x:
            j += 1
        distance = max(distance, abs(i / n - j / m))
    # Once one side is used up its CDF is 1 and the gap can only shrink, so we can stop here.
    return round(distance, 4)


def sample(values: Sequence[float], limit: int = 1000) -> list[float]:
    """The sorted values, or `limit` evenly spaced ones (always the min and max) when longer."""
    if limit < 2:
        raise ValueError(f"limit must be at least 2, got {limit}")
    ordered = sorted(values)
    if len(ordered) <= limit:
        return ordered
    last = len(ordered) - 1
    return [ordered[(k * last) // (limit - 1)] for k in range(limit)]


def _number(value: object) -> float | None:
    """A finite float, or None for a missing value (None, NaN, inf, not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _values(
    rows: Iterable[Mapping[str, float | None]], features: Sequence[str]
) -> dict[str, list[float]]:
    collected: dict[str, list[float]] = {feature: [] for feature in features}
    for row in rows:
        for feature in features:
            number = _number(row.get(feature))
            if number is not None:
                collected[feature].append(number)
    return collected


def feature_profile(
    rows: Iterable[Mapping[str, float | None]],
    limit: int = 1000,
    features: Sequence[str] = FEATURES,
) -> dict[str, list[float]]:
    """For each of `features` (a task's) that has values in `rows`, a `sample` of them."""
    collected = _values(rows, features)
    return {feature: sample(values, limit) for feature, values in collected.items() if values}


def word_profile(texts: Iterable[str], top: int = 50) -> dict[str, float]:
    """Relative frequency of the `top` commonest lower-cased words, among all words seen.

    Frequencies are shares of every word, not only the top ones, so they sum to at most 1.
    Ties are broken alphabetically so the profile is the same on every run.
    """
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(words_of(text))
    total = sum(counts.values())
    if total == 0:
        return {}
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
    return {word: count / total for word, count in ranked}


def words_of(text: str) -> list[str]:
    """The lower-cased words of a text (runs of letters, any script; digits and signs are not
    words), as word profiles, vocabularies and word features count them."""
    return _WORD.findall(text.lower())


def _commonest(counts: Counter[str], top: int) -> list[str]:
    """The `top` commonest words, commonest first, ties alphabetical (the same on every run)."""
    return [word for word, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]


def vocabulary(texts: Iterable[str], top: int = VOCABULARY_SIZE) -> list[str]:
    """The `top` commonest words of `texts`, commonest first."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(words_of(text))
    return _commonest(counts, top)


def word_features(words: Sequence[str], known: Container[str]) -> dict[str, float]:
    """`oov_rate`, the share of `words` (every occurrence) that `known` lacks, and `new_words`,
    how many distinct words those are; nothing for no words (there is nothing to measure)."""
    if not words:
        return {}
    unknown = [word for word in words if word not in known]
    return {"oov_rate": round(len(unknown) / len(words), 4), "new_words": float(len(set(unknown)))}


def fold_of(text: str, folds: int = FOLDS) -> int:
    """A stable fold for a text (CRC-32, unlike `hash`, is the same in every process): the same
    text, a duplicate row included, always lands in the same fold."""
    return zlib.crc32(text.encode("utf-8", "surrogatepass")) % folds


def held_out_word_features(
    texts: Sequence[str], folds: int = FOLDS, top: int = VOCABULARY_SIZE
) -> list[dict[str, float]]:
    """Each text's `word_features` against the vocabulary (`top` words) of the texts of every
    other fold (`fold_of`): what a new input from the same source scores against a vocabulary
    that has not seen it. One entry per text, empty for a text without words."""
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    words = [words_of(text) for text in texts]
    fold = [fold_of(text, folds) for text in texts]
    counts: list[Counter[str]] = [Counter() for _ in range(folds)]
    for f, ws in zip(fold, words, strict=True):
        counts[f].update(ws)
    total = sum(counts, Counter())
    others = [set(_commonest(total - counts[f], top)) for f in range(folds)]
    return [word_features(ws, others[f]) for f, ws in zip(fold, words, strict=True)]


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    psi: float
    ks: float
    reference_mean: float
    current_mean: float
    samples: int  # number of current values compared
    drifted: bool


def compare(
    profile: Mapping[str, Sequence[float]],
    current: Iterable[Mapping[str, float | None]],
    psi_threshold: float,
    ks_threshold: float,
    min_samples: int,
) -> list[FeatureDrift]:
    """Compare live feature rows with a stored profile, feature by feature in the profile's
    order (the task's).

    A feature is skipped when the profile or the live rows have no value for it. It has drifted
    when at least `min_samples` live values were compared and PSI or KS reaches its threshold.
    """
    features = [feature for feature, values in profile.items() if values]
    collected = _values(current, features)
    results: list[FeatureDrift] = []
    for feature in features:
        reference, values = profile[feature], collected[feature]
        if not values:
            continue
        psi_value = psi(reference, values, bins_for(len(values)))
        ks_value = ks(reference, values)
        results.append(
            FeatureDrift(
                feature=feature,
                psi=psi_value,
                ks=ks_value,
                reference_mean=round(sum(reference) / len(reference), 4),
                current_mean=round(sum(values) / len(values), 4),
                samples=len(values),
                drifted=len(values) >= min_samples
                and (psi_value >= psi_threshold or ks_value >= ks_threshold),
            )
        )
    return results
