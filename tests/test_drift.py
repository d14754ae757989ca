"""Drift statistics on small hand-checkable inputs: PSI, KS (with ties), sampling, comparison,
and the word features (vocabulary, out-of-vocabulary rate, new words, the held-out reference)."""

from __future__ import annotations

import json
from collections.abc import Callable
from math import log
from pathlib import Path

import pytest

from appliance.datasets.ad_text import generate
from appliance.monitoring.drift import (
    EPSILON,
    FEATURES,
    FeatureDrift,
    compare,
    feature_profile,
    fold_of,
    held_out_word_features,
    ks,
    psi,
    sample,
    vocabulary,
    word_features,
    word_profile,
    words_of,
)
from appliance.tasks import get_task

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


def test_a_reference_on_two_values_mostly_one_still_has_bins() -> None:
    # Mostly 0 with a tail (an out-of-vocabulary rate): its quantiles are only 0 and 0.1.
    reference = [0.0] * 90 + [0.05] * 5 + [0.1] * 5
    assert psi(reference, reference) == 0.0
    assert psi(reference, [0.0] * 36 + [0.05] * 2 + [0.1] * 2) < 0.01  # the same shape
    # All above the reference's largest value: "at or above 0.1" held 5%, now 100%.
    moved = (1 - 0.05) * log(1 / 0.05) + (EPSILON - 0.9) * log(EPSILON / 0.9)
    moved += (EPSILON - 0.05) * log(EPSILON / 0.05)
    assert psi(reference, [0.3] * 40) == round(moved, 4)


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


def test_words_and_a_capped_vocabulary_commonest_first() -> None:
    words = ["red", "mug", "x", "café", "au", "lait", "ok"]
    assert words_of("Red MUG, 2x: café-au-lait_ok 42") == words
    texts = ["red mug", "Red lamp", "blue mug", "red"]
    assert vocabulary(texts) == ["red", "mug", "blue", "lamp"]  # ties alphabetical
    assert vocabulary(texts, top=2) == ["red", "mug"]
    assert vocabulary(["", "12 !!"]) == []


def test_word_features_count_every_unknown_occurrence_and_each_new_word_once() -> None:
    known = {"red", "mug"}
    assert word_features(["red", "mug"], known) == {"oov_rate": 0.0, "new_words": 0.0}
    assert word_features(["zebra", "zebra", "mug"], known) == {"oov_rate": 0.6667, "new_words": 1.0}
    assert word_features(["zebra", "quagga"], known) == {"oov_rate": 1.0, "new_words": 2.0}
    assert word_features([], known) == {}  # nothing to measure, not a rate of 0


def test_folds_are_stable_and_a_duplicate_shares_its_twins_fold() -> None:
    # CRC-32, not hash(): the same in every process and on every machine.
    texts = ["red mug", "red lamp", "blue mug", "green zebra"]
    assert [fold_of(t, 2) for t in texts] == [1, 0, 0, 1]
    assert [fold_of(t) for t in texts] == [0, 1, 4, 1]
    many = [f"ad number {i}" for i in range(1000)]
    sizes = [sum(fold_of(t, 2) == f for t in many) for f in (0, 1)]
    assert min(sizes) > 400  # an even enough split


def test_held_out_word_features_measure_each_row_without_its_own_fold() -> None:
    # Folds (2): "red mug" 1, "red lamp" 0, "blue mug" 0, "green zebra" 1. Fold 0 knows red,
    # lamp, blue, mug; fold 1 knows red, mug, green, zebra.
    texts = ["red mug", "red lamp", "blue mug", "green zebra", "red mug", "12 !!"]
    assert held_out_word_features(texts, folds=2) == [
        {"oov_rate": 0.0, "new_words": 0.0},
        {"oov_rate": 0.5, "new_words": 1.0},  # lamp: only fold 0 has it
        {"oov_rate": 0.5, "new_words": 1.0},  # blue
        {"oov_rate": 1.0, "new_words": 2.0},  # green, zebra: only their own row has them
        {"oov_rate": 0.0, "new_words": 0.0},  # its twin is in its own fold: no help
        {},  # no words
    ]
    # The other folds' vocabulary is capped too: with one word, fold 1 (each word once) knows
    # only "green", the first alphabetically, so "red lamp" is all new.
    capped = held_out_word_features(texts[:4], folds=2, top=1)
    assert capped[1] == {"oov_rate": 1.0, "new_words": 2.0}
    with pytest.raises(ValueError, match="folds must be at least 2"):
        held_out_word_features(texts, folds=1)


def test_the_held_out_reference_is_realistic_where_the_full_vocabulary_says_zero(
    tmp_path: Path,
) -> None:
    task = get_task("text-classification")
    rows = [json.loads(line) for line in _ads(tmp_path / "train", 600, seed=5)]
    watched = [task.words(r) for r in rows]
    known = set(vocabulary(watched))
    assert all(word_features(words_of(t), known)["oov_rate"] == 0 for t in watched)
    reference = [f["oov_rate"] for f in held_out_word_features(watched)]
    unseen = sum(r > 0 for r in reference) / len(reference)
    assert 0.05 < unseen < 0.4 and sum(reference) / len(reference) < 0.05  # typos, rare words
    # Ads from the same source, measured live against the whole vocabulary, look alike...
    fresh = [task.words(json.loads(line)) for line in _ads(tmp_path / "fresh", 200, seed=11)]
    live = [word_features(words_of(t), known) for t in fresh]
    profile = feature_profile(held_out_word_features(watched), features=("oov_rate", "new_words"))
    assert not any(d.drifted for d in compare(profile, live, 0.25, 0.3, 30))
    # ...and ads of a category the training data never had do not.
    cars = [task.words(json.loads(line)) for line in _ads(tmp_path / "cars", 200, 12, ["car"])]
    moved = compare(profile, [word_features(words_of(t), known) for t in cars], 0.25, 0.3, 30)
    assert [d.feature for d in moved if d.drifted] == ["oov_rate", "new_words"]


def _ads(out: Path, count: int, seed: int, categories: list[str] | None = None) -> list[str]:
    path = generate(out, count=count, seed=seed, categories=categories).path
    return (path / "metadata.jsonl").read_text().splitlines()
