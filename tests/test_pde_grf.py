"""Gaussian random fields: variance matches the spectrum, seeding, subsampling of the periodic grid."""

import numpy as np

from saeno.pde.grf import grf_spectrum, sample_grf


def test_pointwise_variance_matches_spectrum():
    shape = (8, 8)
    fields = sample_grf(1500, shape, alpha=2.0, tau=3.0, sigma=5.0, rng=np.random.default_rng(0))
    expected = (grf_spectrum(shape, 2.0, 3.0, 5.0) ** 2).sum()
    assert abs(fields.var() / expected - 1) < 0.05
    assert abs(fields.mean()) < 0.05 * np.sqrt(expected)
    np.testing.assert_allclose(fields.mean(axis=(1, 2)), 0.0, atol=1e-10)  # constant mode removed


def test_seeded_and_smoothness_ordering():
    a = sample_grf(2, (64,), alpha=2.0, tau=5.0, rng=np.random.default_rng(3))
    b = sample_grf(2, (64,), alpha=2.0, tau=5.0, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    rough = sample_grf(200, (64,), alpha=1.0, tau=5.0, rng=np.random.default_rng(0))
    smooth = sample_grf(200, (64,), alpha=3.0, tau=5.0, rng=np.random.default_rng(0))
    ratio = lambda f: (np.diff(f, axis=1) ** 2).mean() / f.var()  # noqa: E731
    assert ratio(smooth) < ratio(rough)
