"""Calibration: real math on synthetic models with known truth (fixed seeds, no mocks)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from appliance.trust.calibration import (
    Calibrator,
    auroc,
    brier,
    choose_threshold,
    ece,
    error_auroc,
    fit_isotonic,
    fit_logistic,
    fit_platt,
    out_of_fold,
    reliability,
)


def overconfident(n: int = 2000, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A model that says about 0.95 but is right about 60% of the time (more when surer)."""
    rng = np.random.default_rng(seed)
    quality = rng.uniform(0.0, 1.0, n)
    confidence = np.clip(0.90 + 0.09 * quality + rng.normal(0.0, 0.005, n), 0.0, 1.0)
    truth = np.clip(0.6 + 0.3 * (quality - 0.5) + rng.normal(0.0, 0.05, n), 0.0, 1.0)
    correct = rng.uniform(0.0, 1.0, n) < truth
    return confidence, correct


@pytest.mark.parametrize("fit", [fit_platt, fit_isotonic])
def test_calibrating_an_overconfident_model_out_of_fold_cuts_its_ece(fit) -> None:
    confidence, correct = overconfident()
    raw = ece(confidence, correct)
    assert raw > 0.3
    calibrated = out_of_fold(fit, confidence, correct, folds=5, seed=0)
    after = ece(calibrated, correct)
    assert after < raw / 6
    assert abs(calibrated.mean() - correct.mean()) < 0.02
    assert brier(calibrated, correct) < brier(confidence, correct)
    # A monotone map keeps (almost: each fold has its own) the raw ranking of the errors.
    assert error_auroc(confidence, correct) > 0.55
    assert error_auroc(calibrated, correct) > error_auroc(confidence, correct) - 0.03


def test_ece_and_reliability_by_hand() -> None:
    confidence = np.array([0.05, 0.15, 0.15, 0.95, 1.0])
    correct = np.array([0, 0, 1, 1, 1])
    # Bins: [0, .1): gap .05 (1 row); [.1, .2): |.5 - .15| (2 rows); last bin (1.0 inside): .025.
    expected = (1 * 0.05 + 2 * 0.35 + 2 * 0.025) / 5
    assert ece(confidence, correct) == pytest.approx(expected)
    table = reliability(confidence, correct)
    assert [(row["low"], row["high"], row["count"]) for row in table] == [
        (0.0, 0.1, 1),
        (0.1, 0.2, 2),
        (0.9, 1.0, 2),
    ]
    assert table[2]["confidence"] == 0.975 and table[2]["accuracy"] == 1.0
    assert ece([], []) == 0.0 and reliability([], []) == []
    assert ece([0.5, 0.5], [True, False]) == 0.0


def test_reliability_bins_sum_to_n() -> None:
    rng = np.random.default_rng(7)
    confidence = rng.uniform(0.0, 1.0, 537)
    confidence[:5] = 1.0
    correct = rng.uniform(size=537) < confidence
    for bins in (1, 10, 15):
        table = reliability(confidence, correct, bins=bins)
        assert sum(row["count"] for row in table) == 537
        assert all(row["count"] > 0 for row in table)


def brute_auroc(scores: np.ndarray, positives: np.ndarray) -> float:
    pos, neg = scores[positives], scores[~positives]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (pos.size * neg.size))


def test_auroc_equals_the_pairwise_count_with_ties() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(2, 120))
        scores = rng.integers(0, 6, n).astype(float)  # many ties
        positives = rng.uniform(size=n) < 0.4
        if positives.all() or not positives.any():
            continue
        assert auroc(scores, positives) == pytest.approx(brute_auroc(scores, positives))
    assert auroc([1.0, 2.0], [True, True]) == 0.5
    assert auroc([], []) == 0.5
    assert auroc([0.1, 0.9], [0, 1]) == 1.0


def test_error_auroc_ranks_low_confidence_as_wrong() -> None:
    confidence = np.array([0.2, 0.3, 0.8, 0.9])
    assert error_auroc(confidence, [False, False, True, True]) == 1.0
    assert error_auroc(confidence, [True, True, False, False]) == 0.0
    rng = np.random.default_rng(5)
    c = rng.uniform(size=200)
    y = rng.uniform(size=200) < 0.5
    assert error_auroc(c, y) == pytest.approx(brute_auroc(-c, ~y))


def test_pav_on_a_known_example() -> None:
    x = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    y = np.array([0, 1, 0, 0, 1, 1])
    calibrator = fit_isotonic(x, y)
    # 0 | (1, 0, 0) pooled to 1/3 | (1, 1).
    fitted = np.interp(x, calibrator.params["x"], calibrator.params["y"])
    np.testing.assert_allclose(fitted, [0, 1 / 3, 1 / 3, 1 / 3, 1, 1])
    np.testing.assert_allclose(calibrator.apply(x), [0.001, 1 / 3, 1 / 3, 1 / 3, 0.999, 0.999])
    # Flat outside the fitted range.
    assert calibrator.apply(np.array([-5.0, 5.0])).tolist() == [0.001, 0.999]


def test_pav_pools_ties_first() -> None:
    # Without pooling the tie, its order (1 then 0) would look like a violation of its own.
    calibrator = fit_isotonic([0.2, 0.2, 0.5, 0.7], [1, 0, 1, 0])
    assert calibrator.params["x"] == [0.2, 0.5, 0.7] or calibrator.params["x"] == [0.2, 0.7]
    np.testing.assert_allclose(calibrator.apply(np.array([0.2, 0.5, 0.7])), [0.5, 0.5, 0.5])
    calibrator = fit_isotonic([0.3, 0.3, 0.3, 0.9], [1, 1, 0, 1])
    np.testing.assert_allclose(calibrator.apply(np.array([0.3, 0.9])), [2 / 3, 0.999])


def test_isotonic_is_monotone() -> None:
    rng = np.random.default_rng(11)
    x = np.round(rng.uniform(size=400), 2)  # with ties
    y = rng.uniform(size=400) < x**2
    calibrator = fit_isotonic(x, y)
    grid = np.linspace(-0.1, 1.1, 500)
    assert np.all(np.diff(calibrator.apply(grid)) >= 0)
    assert np.all(np.diff(calibrator.params["x"]) > 0)
    # The weighted mean of the fit equals the mean outcome (a property of least squares PAV).
    fitted = np.interp(x, calibrator.params["x"], calibrator.params["y"])
    assert fitted.mean() == pytest.approx(y.mean())


def test_platt_recovers_a_temperature_and_survives_separable_data() -> None:
    rng = np.random.default_rng(2)
    z = rng.normal(0.0, 2.0, 3000)
    confidence = 1.0 / (1.0 + np.exp(-z))
    correct = rng.uniform(size=3000) < 1.0 / (1.0 + np.exp(-(0.5 * z - 0.3)))
    calibrator = fit_platt(confidence, correct)
    assert calibrator.params["a"] == pytest.approx(0.5, abs=0.1)
    assert calibrator.params["b"] == pytest.approx(-0.3, abs=0.15)
    separable = fit_platt([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])
    assert np.isfinite(separable.params["a"]) and separable.params["a"] > 0
    out = separable.apply(np.array([0.1, 0.9]))
    assert out[0] < 0.1 and out[1] > 0.9
    constant = fit_platt([0.4, 0.6], [1, 1])
    assert constant.params["a"] == 0.0
    assert constant.apply(np.array([0.1, 0.9])).tolist() == [0.999, 0.999]


def test_logistic_uses_the_feature_that_carries_the_signal() -> None:
    rng = np.random.default_rng(4)
    n = 1500
    noise = rng.uniform(0.5, 1.0, n)  # a confidence that says nothing
    signal = rng.normal(0.0, 1.0, n)
    correct = rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-2.0 * signal))
    features = np.column_stack([noise, signal])
    platt = out_of_fold(fit_platt, noise, correct)
    logistic = out_of_fold(fit_logistic, features, correct)
    assert brier(logistic, correct) < brier(platt, correct) - 0.05
    fitted = fit_logistic(features, correct)
    assert abs(fitted.params["w"][1]) > 5 * abs(fitted.params["w"][0])
    # A constant column gets std 1.0 and does not break the fit.
    with_constant = fit_logistic(np.column_stack([features, np.full(n, 3.0)]), correct)
    assert with_constant.params["std"][2] == 1.0
    assert np.all(np.isfinite(with_constant.apply(np.column_stack([features, np.zeros(n)]))))


def test_calibrator_json_round_trip() -> None:
    confidence, correct = overconfident(n=300)
    features = np.column_stack([confidence, confidence**2])
    calibrators = [
        Calibrator("identity", {}),
        fit_platt(confidence, correct),
        fit_isotonic(confidence, correct),
        fit_logistic(features, correct),
    ]
    for calibrator in calibrators:
        data = json.loads(json.dumps(calibrator.to_json()))
        back = Calibrator.from_json(data)
        assert back == calibrator
        assert back.to_json() == calibrator.to_json()
        x = features if calibrator.method == "logistic" else confidence
        np.testing.assert_array_equal(back.apply(x), calibrator.apply(x))
    assert Calibrator("identity", {}).apply(np.array([-0.5, 0.5, 1.5])).tolist() == [0, 0.5, 1]
    with pytest.raises(ValueError):
        Calibrator("magic", {})


def test_out_of_fold_with_one_class_predicts_the_accuracy() -> None:
    predictions = out_of_fold(fit_platt, np.linspace(0.1, 0.9, 10), np.ones(10, dtype=bool))
    assert predictions.tolist() == [1.0] * 10
    # One wrong answer: the fold holding it trains on correct answers only.
    y = np.ones(10, dtype=bool)
    y[3] = False
    predictions = out_of_fold(fit_platt, np.linspace(0.1, 0.9, 10), y, folds=5)
    assert predictions[3] == 1.0
    assert np.all((predictions >= 0.0) & (predictions <= 1.0))


def test_choose_threshold_meets_the_target_recall() -> None:
    rng = np.random.default_rng(9)
    for trial in range(10):
        n = 300
        confidence = np.round(rng.uniform(size=n), 3)  # with ties
        correct = rng.uniform(size=n) < confidence
        wrong = ~correct
        for target in (0.3, 0.7, 0.9, 1.0):
            chosen = choose_threshold(confidence, correct, target_recall=target)
            t = chosen["threshold"]
            warned = confidence < t
            recall = (warned & wrong).sum() / wrong.sum()
            assert recall >= target
            assert chosen["recall"] == round(recall, 4)
            assert chosen["precision"] == round((warned & wrong).sum() / warned.sum(), 4)
            assert chosen["warned_share"] == round(warned.mean(), 4)
            assert chosen["wrong"] == wrong.sum() and chosen["count"] == n
            # The smallest such threshold: one observed value lower would miss the target.
            lower = confidence[confidence < t]
            if lower.size:
                below = confidence < lower.max()
                assert (below & wrong).sum() / wrong.sum() < target, (trial, target)


def test_choose_threshold_edges() -> None:
    everything_right = choose_threshold([0.2, 0.9, 0.5], [True, True, True])
    assert everything_right == {
        "threshold": 0.0,
        "recall": None,
        "precision": None,
        "warned_share": 0.0,
        "wrong": 0,
        "count": 3,
    }
    # The deciding wrong answer has the largest confidence: t lies just above it.
    chosen = choose_threshold([0.3, 0.95, 0.95], [False, True, False], target_recall=1.0)
    assert 0.95 < chosen["threshold"] <= 0.95 + 1e-6
    assert chosen["recall"] == 1.0 and chosen["warned_share"] == 1.0
    # Rounding never moves the threshold across an observed value.
    chosen = choose_threshold([0.12344, 0.123449, 0.9], [False, True, True], target_recall=1.0)
    assert 0.12344 < chosen["threshold"] <= 0.123449
    assert chosen["recall"] == 1.0 and chosen["precision"] == 1.0
