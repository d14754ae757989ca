"""Drift statistics on small hand-checkable inputs: PSI, KS (with ties), sampling, comparison."""

from __future__ import annotations

from collections.abc import Callable
from math import log

import pytest

from appliance.monitoring.drift import (
    EPSILON,
    FEATURES,
    FeatureDrift,
    compare,
    feature_profile,
    ks,
    psi,
    sample,
    word_profile,
)

UNIFORM_100_200 = [100.0 + i for i in range(101)]
UNIFORM_20_60 = [20.0 + 0.4 * i for i in range(101)]


def test_identical_distributions_do_not_drift() -> None:
    values = [float(i % 37) for i in range(500)]
    assert psi(values, values) == 0.0
    assert ks(values, values) == 0.0
    assert psi(values, list(reversed(values))) == 0.0  # order does not matter


def test_a_shifted_distribution_drifts() -> None:
    assert psi(UNIFORM_100_200, UNIFORM_20_60) > 1
    assert ks(UNIFORM_100_200, UNIFORM_20_60) == 1.0
    assert ks(UNIFORM_20_60, UNIFORM_100_200) == 1.0


def test_psi_by_hand() -> None:
    # bins=2 on [1, 2, 3, 4]: edges 1, 2, 4, so the bins are (-inf, 2] and (2, inf).
    # Reference: half in each. Current [1, 1, 1, 3]: three quarters in the first.
    expected = (0.75 - 0.5) * log(0.75 / 0.5) + (0.25 - 0.5) * log(0.25 / 0.5)
    assert psi([1, 2, 3, 4], [1, 1, 1, 3], bins=2) == round(expected, 4) == 0.2747
    assert psi([1, 2, 3, 4], [1, 2, 3, 4], bins=2) == 0.0
    # An empty bin on one side counts with the EPSILON floor instead of an infinite log.
    all_low = (1 - 0.5) * log(1 / 0.5) + (EPSILON - 0.5) * log(EPSILON / 0.5)
    assert psi([1, 2, 3, 4], [1, 1, 2, 2], bins=2) == round(all_low, 4)


def test_a_constant_reference_tells_equal_from_different_both_ways() -> None:
    reference = [5.0] * 20
    assert psi(reference, [5.0] * 7) == 0.0
    assert ks(reference, [5.0] * 7) == 0.0
    all_moved = round(2 * (1 - EPSILON) * log(1 / EPSILON), 4)
    assert psi(reference, [7.0] * 7) == all_moved == 18.4188
    assert psi(reference, [3.0] * 7) == all_moved
    assert ks(reference, [7.0] * 7) == ks(reference, [3.0] * 7) == 1.0
    # Half moved: the "=5" bin keeps half of its mass and ">5" gains it.
    half = (0.5 - 1) * log(0.5) + (0.5 - EPSILON) * log(0.5 / EPSILON)
    assert psi(reference, [5.0, 5.0, 9.0, 9.0]) == round(half, 4)


def test_ks_steps_past_ties_on_both_sides() -> None:
    # F_a and F_b after x=1: 1/3 vs 0; after x=2: 1 vs 1. Stepping through the tie one side at a
    # time would see 2/3 vs 0 on the way.
    assert ks([1, 2, 2], [2, 2, 2]) == 0.3333
    # After 1: .25 vs 0; after 2: .75 vs .2; after 3: 1 vs .8; after 4: 1 vs 1.
    assert ks([1, 2, 2, 3], [2, 3, 3, 3, 4]) == 0.55
    assert ks([2, 3, 3, 3, 4], [1, 2, 2, 3]) == 0.55


@pytest.mark.parametrize("statistic", [psi, ks])
def test_empty_input_is_refused(statistic: Callable[[list[float], list[float]], float]) -> None:
    with pytest.raises(ValueError, match="reference values are empty"):
        statistic([], [1.0])
    with pytest.raises(ValueError, match="current values are empty"):
        statistic([1.0], [])


def test_sample_keeps_the_shape() -> None:
    values = [float(v) for v in reversed(range(10_000))]
    picked = sample(values, limit=1000)
    assert len(picked) == 1000
    assert picked[0] == 0.0 and picked[-1] == 9999.0
    assert picked == sorted(picked)
    assert picked[500] == pytest.approx(5000, abs=10)  # the median stays put
    assert sample(list(range(11)), limit=3) == [0, 5, 10]
    assert sample([3.0, 1.0, 2.0]) == [1.0, 2.0, 3.0]
    assert sample([]) == []
    with pytest.raises(ValueError, match="at least 2"):
        sample([1.0, 2.0, 3.0], limit=1)


def test_feature_profile_skips_missing_values() -> None:
    rows: list[dict[str, float | None]] = [
        {"width": 640, "brightness": None, "colour": 3.0},
        {"width": 320, "brightness": 0.5},
        {"height": 10, "sharpness": float("nan")},
    ]
    assert feature_profile(rows) == {"width": [320, 640], "height": [10], "brightness": [0.5]}
    assert feature_profile([]) == {}
    many = [{"contrast": float(i)} for i in range(50)]
    assert feature_profile(many, limit=5) == {"contrast": [0.0, 12.0, 24.0, 36.0, 49.0]}


def _rows(brightness: list[float], width: float = 640.0) -> list[dict[str, float | None]]:
    return [{"width": width, "brightness": b, "contrast": None} for b in brightness]


def test_compare_flags_only_the_shifted_feature() -> None:
    profile = feature_profile(_rows(UNIFORM_100_200))
    dark = _rows(UNIFORM_20_60)
    result = compare(profile, dark, psi_threshold=0.25, ks_threshold=0.3, min_samples=30)
    assert [d.feature for d in result] == ["width", "brightness"]  # FEATURES order
    width, brightness = result
    assert width == FeatureDrift("width", 0.0, 0.0, 640.0, 640.0, 101, drifted=False)
    assert brightness.drifted
    assert brightness.ks == 1.0 and brightness.psi > 1
    assert (brightness.reference_mean, brightness.current_mean, brightness.samples) == (
        150.0,
        40.0,
        101,
    )


def test_compare_respects_min_samples_and_skips_absent_features() -> None:
    profile = {"brightness": UNIFORM_100_200, "sharpness": [1.0, 2.0], "contrast": []}
    few = _rows([30.0, 40.0, 50.0])
    (brightness,) = compare(profile, few, psi_threshold=0.25, ks_threshold=0.3, min_samples=10)
    assert brightness.feature == "brightness" and brightness.samples == 3
    assert brightness.ks == 1.0 and not brightness.drifted  # too few to call it
    (brightness,) = compare(profile, few, psi_threshold=0.25, ks_threshold=0.3, min_samples=3)
    assert brightness.drifted
    assert compare(profile, [], psi_threshold=0.25, ks_threshold=0.3, min_samples=1) == []


def test_compare_fires_on_either_threshold() -> None:
    profile = {"brightness": UNIFORM_100_200}
    upper_half = _rows([150.0 + 0.5 * i for i in range(101)])
    (by_ks,) = compare(profile, upper_half, psi_threshold=99, ks_threshold=0.3, min_samples=1)
    assert by_ks.ks == 0.495 and by_ks.drifted
    (neither,) = compare(profile, upper_half, psi_threshold=99, ks_threshold=0.6, min_samples=1)
    assert not neither.drifted
    (by_psi,) = compare(profile, upper_half, psi_threshold=0.25, ks_threshold=0.6, min_samples=1)
    assert by_psi.drifted


def test_word_profile() -> None:
    texts = ["The cat sat", "the CAT, the dog!", "x2y", "Café"]
    # Words: the ×3, cat ×2, sat, dog, x, y, café: 10 in all.
    assert word_profile(texts, top=3) == {"the": 0.3, "cat": 0.2, "café": 0.1}
    full = word_profile(texts)
    assert len(full) == 7
    assert sum(full.values()) == pytest.approx(1.0)
    assert sum(word_profile(texts, top=2).values()) <= 1
    assert all(word == word.lower() for word in full)
    assert word_profile(["", "123 !!"]) == {}


def test_features_are_the_image_features() -> None:
    assert FEATURES == ("width", "height", "brightness", "brightness_p99", "contrast", "sharpness")
