"""Burgers solver against the Cole-Hopf exact solution: spectral in space, fourth order in time."""

import numpy as np

from saeno.pde.burgers import cole_hopf_solution, solve_burgers

NU, T, AMP = 0.02, 0.5, 0.9


def _error(n, steps):
    x = np.arange(n) / n
    u = solve_burgers(cole_hopf_solution(x, 0.0, NU, AMP), T, NU, n_steps=steps)
    return np.abs(u - cole_hopf_solution(x, T, NU, AMP)).max()


def test_fourth_order_in_time():
    errors = np.array([_error(128, s) for s in (10, 20, 40)])
    orders = np.log2(errors[:-1] / errors[1:])
    assert np.all(orders > 3.5), orders
    assert errors[-1] < 1e-7


def test_spectral_convergence_in_space():
    e32, e64 = _error(32, 400), _error(64, 400)
    assert e32 < 1e-4
    assert e64 < 1e-9  # far faster than any algebraic order
    assert e64 < e32 * 1e-4


def test_batched_equals_single_and_mean_is_conserved():
    rng = np.random.default_rng(0)
    x = np.arange(64) / 64
    u0 = np.stack([np.sin(2 * np.pi * x) + 0.3, 0.5 * np.cos(4 * np.pi * x + rng.uniform())])
    batch = solve_burgers(u0, 0.3, 0.05, n_steps=60)
    single = solve_burgers(u0[1], 0.3, 0.05, n_steps=60)
    np.testing.assert_allclose(batch[1], single, atol=1e-12)
    np.testing.assert_allclose(batch.mean(axis=1), u0.mean(axis=1), atol=1e-12)  # conservation form
