"""Embedding drift on a synthetic stand-in for a model's embeddings: a 128-dim anisotropic Gaussian
mixture with a shared offset (as mean pooling gives). Both tests stay quiet on fresh rows of the
training mixture and flag a window where 30% of the rows come from a cluster training lacked."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import numpy as np
import pytest

from appliance.monitoring.embeddings import (
    EmbeddingDrift,
    classifier_test,
    embedding_drift,
    from_blob,
    mmd_test,
    to_blob,
)

DIMS, CLUSTERS = 128, 6
TESTS = [mmd_test, classifier_test]


class World:
    """Clusters 0..5 are what training saw; cluster 6 is a category it never held."""

    def __init__(self, dims: int = DIMS, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.dims = dims
        self.scales = 1.0 / np.sqrt(1 + np.arange(dims))  # a decaying spectrum
        self.offset = rng.standard_normal(dims) * 0.5
        self.centers = rng.standard_normal((CLUSTERS + 1, dims)) * self.scales * 1.2

    def draw(self, seed: int, n: int, clusters: list[int] | None = None) -> np.ndarray:
        rng = np.random.default_rng(seed)
        which = rng.choice(clusters or list(range(CLUSTERS)), n)
        noise = rng.standard_normal((n, self.dims)) * self.scales
        return (self.offset + self.centers[which] + noise).astype(np.float32)

    def unseen_mix(self, seed: int, n: int = 100, share: float = 0.3) -> np.ndarray:
        new = round(n * share)
        return np.vstack([self.draw(seed, n - new), self.draw(seed + 1, new, [CLUSTERS])])


@pytest.fixture(scope="module")
def world() -> World:
    return World()


@pytest.fixture(scope="module")
def reference(world: World) -> np.ndarray:
    return world.draw(1, 1000)


@pytest.mark.parametrize("test", TESTS)
def test_same_distribution_is_not_flagged(
    test: Callable[..., EmbeddingDrift], world: World, reference: np.ndarray
) -> None:
    results = [test(reference, world.draw(100 + s, 100), seed=s) for s in range(20)]
    assert sum(r.drifted for r in results) <= 2
    assert np.mean([r.p_value for r in results]) > 0.2
    assert all(r.reference == 1000 and r.live == 100 for r in results)


@pytest.mark.parametrize(("test", "least"), [(mmd_test, 10), (classifier_test, 8)])
def test_an_unseen_category_is_flagged_within_100_rows(
    test: Callable[..., EmbeddingDrift], least: int, world: World, reference: np.ndarray
) -> None:
    # 30 of 100 rows from the new cluster: the classifier's AUC can reach only about
    # 0.7 · 0.5 + 0.3 · 1 = 0.65, so it misses a window now and then where MMD does not.
    results = [test(reference, world.unseen_mix(200 + 2 * s), seed=s) for s in range(10)]
    assert sum(r.drifted for r in results) >= least


@pytest.mark.parametrize("dims", [128, 16])  # 16: the classifier without its PCA step
@pytest.mark.parametrize("test", TESTS)
def test_a_mean_shift_is_flagged(test: Callable[..., EmbeddingDrift], dims: int) -> None:
    world = World(dims)
    shift = np.random.default_rng(7).standard_normal(dims) * world.scales * 0.8
    result = test(world.draw(1, 1000), world.draw(2, 100) + shift.astype(np.float32))
    assert result.drifted and result.p_value < 0.01


def test_statistics_and_to_dict(world: World, reference: np.ndarray) -> None:
    live = world.unseen_mix(300)
    mmd = mmd_test(reference, live)
    same = mmd_test(reference, world.draw(301, 100))
    assert mmd.statistic > same.statistic
    assert mmd.p_value == pytest.approx(1 / 201)  # no permutation reaches the real split
    classifier = classifier_test(reference, live)
    assert 0.55 < classifier.statistic <= 1
    d = classifier.to_dict()
    assert set(d) == {"method", "statistic", "p_value", "reference", "live", "drifted"}
    assert d["method"] == "classifier" and d["live"] == 100 and d["drifted"] is True
    assert d["statistic"] == round(classifier.statistic, 4)
    json.dumps(d)


def test_subsampling_is_seeded_and_capped(world: World, reference: np.ndarray) -> None:
    live = world.draw(400, 800)
    first = mmd_test(reference, live, seed=3, max_reference=600)
    assert (first.reference, first.live) == (600, 500)
    assert mmd_test(reference, live, seed=3, max_reference=600) == first
    assert classifier_test(reference, live, seed=3) == classifier_test(reference, live, seed=3)


def test_zero_rows_and_identical_sides() -> None:
    rows = np.zeros((40, 8), dtype=np.float32)
    rows[20:, 0] = 1.0
    result = mmd_test(rows, rows[::-1].copy())
    assert np.isfinite(result.statistic) and not result.drifted


def test_embedding_drift_chooses_by_name(world: World, reference: np.ndarray) -> None:
    live = world.draw(500, 50)
    assert embedding_drift(reference, live) == mmd_test(reference, live)
    assert embedding_drift(reference, live, "classifier", seed=4) == classifier_test(
        reference, live, seed=4
    )
    with pytest.raises(ValueError, match="valid: mmd, classifier"):
        embedding_drift(reference, live, "ks")


@pytest.mark.parametrize("test", TESTS)
def test_bad_inputs_are_refused(test: Callable[..., EmbeddingDrift], reference: np.ndarray) -> None:
    with pytest.raises(ValueError, match="reference has 128 dims but live has 64"):
        test(reference, np.ones((50, 64)))
    with pytest.raises(ValueError, match="at least 2 rows"):
        test(reference, np.ones((1, 128)))
    with pytest.raises(ValueError, match="2-D"):
        test(reference, np.ones(128))
    with pytest.raises(ValueError, match="NaN"):
        test(reference, np.full((50, 128), np.nan))


def test_too_few_permutations_for_alpha_are_refused(reference: np.ndarray) -> None:
    with pytest.raises(ValueError, match="can never give"):
        mmd_test(reference, reference[:50], alpha=0.01, permutations=50)


def test_blob_round_trip() -> None:
    rows = np.random.default_rng(0).standard_normal((7, 128)).astype(np.float32)
    blob = to_blob(rows)
    assert len(blob) == 7 * 128 * 2
    back = from_blob(blob, 128)
    assert back.dtype == np.float32 and back.shape == (7, 128)
    np.testing.assert_allclose(back, rows, rtol=1e-3, atol=1e-3)
    assert blob[:2] == np.float16(rows[0, 0]).astype("<f2").tobytes()  # little-endian halves
    assert from_blob(b"", 128).shape == (0, 128)
    with pytest.raises(ValueError, match="not whole float16 rows"):
        from_blob(blob[:-2], 128)
    with pytest.raises(ValueError, match="float16"):
        to_blob(np.array([[1e6, 0.0]]))


def test_mmd_on_full_windows_is_fast(world: World) -> None:
    reference, live = world.draw(600, 1000), world.draw(601, 500)
    mmd_test(reference, live)  # warm up BLAS
    start = time.perf_counter()
    result = mmd_test(reference, live)
    assert time.perf_counter() - start < 2.0
    assert (result.reference, result.live) == (1000, 500)
