"""Gaussian random fields: variance matches the spectrum, seeding, subsampling of the periodic grid."""

import numpy as np

from saeno.pde.grf import grf_spectrum, sample_grf


def _covariance(shape, lag, alpha, tau, sigma):
    """The field's covariance at ``lag`` (grid steps) from the operator ``sigma^2 (-Lap + tau^2)^-alpha``
    written out by hand: ``sum_{k != 0} sigma^2 (4 pi^2 |k|^2 + tau^2)^-alpha cos(2 pi k . lag / n)``."""
    total = 0.0
    for kx in range(-(shape[0] // 2), (shape[0] + 1) // 2):
        for ky in range(-(shape[1] // 2), (shape[1] + 1) // 2):
            if kx == ky == 0:
                continue
            power = sigma**2 * (4 * np.pi**2 * (kx * kx + ky * ky) + tau**2) ** (-alpha)
            total += power * np.cos(2 * np.pi * (kx * lag[0] / shape[0] + ky * lag[1] / shape[1]))
    return total


def test_pointwise_variance_and_covariance_match_the_operator():
    shape = (8, 8)
    fields = sample_grf(1500, shape, alpha=2.0, tau=3.0, sigma=5.0, rng=np.random.default_rng(0))
    expected = _covariance(shape, (0, 0), 2.0, 3.0, 5.0)
    assert abs(fields.var() / expected - 1) < 0.05
    assert abs(fields.mean()) < 0.05 * np.sqrt(expected)
    lagged = (fields * np.roll(fields, 1, axis=1)).mean()  # neighbours along x, all positions
    assert abs(lagged / _covariance(shape, (1, 0), 2.0, 3.0, 5.0) - 1) < 0.06
    assert grf_spectrum(shape, 2.0, 3.0, 5.0)[0, 0] == 0.0
    np.testing.assert_allclose(fields.mean(axis=(1, 2)), 0.0, atol=1e-10)  # constant mode removed


def test_seeded_and_smoothness_ordering():
    a = sample_grf(2, (64,), alpha=2.0, tau=5.0, rng=np.random.default_rng(3))
    b = sample_grf(2, (64,), alpha=2.0, tau=5.0, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    rough = sample_grf(200, (64,), alpha=1.0, tau=5.0, rng=np.random.default_rng(0))
    smooth = sample_grf(200, (64,), alpha=3.0, tau=5.0, rng=np.random.default_rng(0))
    ratio = lambda f: (np.diff(f, axis=1) ** 2).mean() / f.var()  # noqa: E731
    assert ratio(smooth) < ratio(rough)
