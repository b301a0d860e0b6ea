"""The audit's statistics against independent computations: bootstrap coverage, AUROC, ROC, Ledoit-Wolf."""

import numpy as np
import pytest

from saeno.audit.stats import (
    auroc,
    benjamini_hochberg,
    bootstrap_ratio_of_sums,
    bootstrap_weights,
    ledoit_wolf,
    roc_curve,
    spearman,
)


def test_bootstrap_intervals_cover_the_true_mean_at_about_their_nominal_rate():
    """400 synthetic data sets of 60 gamma(4) draws: the 90% intervals of the mean and of a ratio of
    sums must contain the true value in about 90% of them."""
    rng = np.random.default_rng(0)
    weights = bootstrap_weights(60, 1000, seed=1)
    hits_mean = hits_ratio = 0
    reps = 400
    for _ in range(reps):
        a = rng.gamma(4.0, 1.0, size=60)  # mean 4
        b = rng.uniform(0.5, 1.5, size=60)  # mean 1; ratio of expectations E[a b] / E[b] = 4
        _, lo, hi = bootstrap_ratio_of_sums(a, np.ones_like(a), weights, level=0.9)
        hits_mean += lo <= 4.0 <= hi
        _, lo, hi = bootstrap_ratio_of_sums(a * b, b, weights, level=0.9)
        hits_ratio += lo <= 4.0 <= hi
    # binomial sd at 0.9 over 400 reps is 0.015; percentile intervals under-cover slightly at n = 60
    assert 0.84 <= hits_mean / reps <= 0.95
    assert 0.84 <= hits_ratio / reps <= 0.95


def test_bootstrap_weights_are_resamples():
    w = bootstrap_weights(7, 50, seed=0)
    assert w.shape == (50, 7) and np.all(w.sum(1) == 7) and np.all(w >= 0)


def test_auroc_matches_pair_counting_with_ties():
    rng = np.random.default_rng(3)
    neg, pos = rng.integers(0, 5, 40).astype(float), rng.integers(1, 6, 30).astype(float)
    pairs = (pos[:, None] > neg[None]).mean() + 0.5 * (pos[:, None] == neg[None]).mean()
    assert auroc(neg, pos) == pytest.approx(pairs)
    assert auroc(neg, neg.copy()) == 0.5
    assert auroc(np.zeros(5), np.ones(5)) == 1.0 and auroc(np.ones(5), np.zeros(5)) == 0.0
    fpr, tpr = roc_curve(neg, pos)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert np.trapezoid(tpr, fpr) == pytest.approx(pairs)  # trapezoids handle the tied groups


def test_spearman_and_bh():
    x = np.arange(10.0)
    assert spearman(x, x**3) == pytest.approx(1.0) and spearman(x, -x) == pytest.approx(-1.0)
    assert np.isnan(spearman(x, np.ones(10)))
    q = benjamini_hochberg(np.array([0.01, 0.04, 0.03, 0.5]))
    np.testing.assert_allclose(
        q, [0.04, 0.16 / 3, 0.16 / 3, 0.5]
    )  # p m / rank, then running min from the top


def test_ledoit_wolf_agrees_with_scikit_learn():
    sk = pytest.importorskip("sklearn.covariance")
    x = np.random.default_rng(0).normal(size=(40, 12)) @ np.random.default_rng(1).normal(size=(12, 12))
    _mean, cov, shrink = ledoit_wolf(x)
    ref = sk.LedoitWolf().fit(x)
    np.testing.assert_allclose(cov, ref.covariance_, rtol=1e-8)
    assert shrink == pytest.approx(ref.shrinkage_)


def test_spearman_agrees_with_scipy_with_ties():
    from scipy import stats

    rng = np.random.default_rng(4)
    a, b = rng.integers(0, 6, 50).astype(float), rng.normal(size=50)
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b)[0])
