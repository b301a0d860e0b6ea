"""Identifiability floors: the oracles recover what the factual sample determines, and only that."""

from __future__ import annotations

import numpy as np
import pytest

from saeno.supervised import identifiability as ident

N = 64
X = np.arange(N) / N


def bump(shift: np.ndarray, width: float = 0.06) -> np.ndarray:
    d = (X[None, :] - shift[:, None] + 0.5) % 1.0 - 0.5
    return np.exp(-0.5 * (d / width) ** 2)[:, None, :]


def square(shift: np.ndarray, duty: np.ndarray) -> np.ndarray:
    """A smooth two-signed profile whose second lobe sits ``duty`` after the first."""
    return bump(shift, 0.08) - bump(shift + duty, 0.08)


def test_best_shift_finds_a_fractional_shift_and_moves_by_it():
    rng = np.random.default_rng(0)
    s = rng.uniform(0, 1, size=5)
    ref = bump(s)
    tau_true = np.array([3.25, -7.5, 0.125, 12.0, -20.375])
    query = bump(s + tau_true / N)
    tau, d2 = ident.best_shifts(query, ref, upsample=8)
    np.testing.assert_allclose(np.diag(tau), tau_true, atol=1e-9)
    assert np.diag(d2).max() < 1e-6
    moved = ident.fourier_shift(ref, tau_true)
    np.testing.assert_allclose(moved, query, atol=1e-3)


def test_floor_is_low_when_the_sample_determines_the_counterfactual():
    rng = np.random.default_rng(1)
    s_ref, s_q = rng.uniform(0, 1, 200), rng.uniform(0, 1, 50)
    duty = 0.4  # the counterfactual's shape is fixed; only the shift, visible in x, varies
    y_ref, y_q = square(s_ref, np.full(200, duty)), square(s_q, np.full(50, duty))
    g_ref, g_q = np.zeros(200, int), np.zeros(50, int)
    fl = ident.floor(bump(s_ref), y_ref, g_ref, bump(s_q), y_q, g_q)
    assert fl.value < 0.05, fl
    assert fl.oracles["aligned 1-NN"] < 0.05


def test_floor_stays_high_when_the_counterfactual_depends_on_what_the_sample_hides():
    rng = np.random.default_rng(2)
    s_ref, s_q = rng.uniform(0, 1, 200), rng.uniform(0, 1, 50)
    # the duty cycle is drawn independently of everything the bump shows
    y_ref, y_q = square(s_ref, rng.uniform(0.2, 0.8, 200)), square(s_q, rng.uniform(0.2, 0.8, 50))
    g_ref, g_q = np.zeros(200, int), np.zeros(50, int)
    fl = ident.floor(bump(s_ref), y_ref, g_ref, bump(s_q), y_q, g_q)
    assert fl.value > 0.3, fl
    # ... unless another predictor does see it: then the floor is that predictor's error
    fl2 = ident.floor(bump(s_ref), y_ref, g_ref, bump(s_q), y_q, g_q, extra={"exact": y_q})
    assert fl2.value == pytest.approx(0.0, abs=1e-12) and fl2.best == "exact"


def test_neighbours_come_from_the_same_group_only():
    rng = np.random.default_rng(3)
    s = rng.uniform(0, 1, 40)
    g = np.repeat([0, 1], 20)
    y = np.where(g[:, None, None] == 0, bump(s), -bump(s))  # the group flips the sign
    pred = ident.aligned_neighbours(bump(s), y, g, bump(s[:4]), np.array([1, 1, 0, 0]), k=1)
    assert (pred[:2].sum((1, 2)) < 0).all() and (pred[2:].sum((1, 2)) > 0).all()
    with pytest.raises(Exception, match="no reference samples"):
        ident.aligned_neighbours(bump(s), y, g, bump(s[:1]), np.array([7]))
