"""Navier-Stokes solver: decaying Taylor-Green vortex (exact) and second-order self-convergence."""

import numpy as np

from saeno.pde.grf import sample_grf
from saeno.pde.navier_stokes import fno_forcing, solve_navier_stokes, taylor_green_vorticity

NU = 0.05


def test_taylor_green_second_order_in_time():
    n, t = 16, 1.0
    w0 = taylor_green_vorticity(n, 0.0, NU, amplitude=0.01)
    exact = taylor_green_vorticity(n, t, NU, amplitude=0.01)
    errors = np.array([np.abs(solve_navier_stokes(w0, t, NU, n_steps=s) - exact).max() for s in (5, 10, 20)])
    orders = np.log2(errors[:-1] / errors[1:])
    assert np.all(np.abs(orders - 2.0) < 0.15), orders
    assert errors[-1] < 2e-2 * np.abs(exact).max()


def test_self_convergence_with_advection_and_forcing():
    w0 = sample_grf(1, (16, 16), alpha=2.5, tau=7.0, sigma=7.0**1.5, rng=np.random.default_rng(1))[0] * 5
    f = fno_forcing(16)
    ref = solve_navier_stokes(w0, 0.5, 1e-3, f, n_steps=320)
    errors = np.array(
        [np.abs(solve_navier_stokes(w0, 0.5, 1e-3, f, n_steps=s) - ref).max() for s in (20, 40, 80)]
    )
    orders = np.log2(errors[:-1] / errors[1:])
    assert np.all(orders > 1.8), orders
    # advection matters here: the answer is far from pure viscous decay plus forcing
    linear = solve_navier_stokes(w0 * 1e-6, 0.5, 1e-3, f, n_steps=40)
    assert np.abs(ref - linear).max() > 0.1 * np.abs(ref).max()


def test_mean_vorticity_stays_zero():
    w0 = sample_grf(2, (16, 16), alpha=2.5, tau=7.0, sigma=40.0, rng=np.random.default_rng(2))
    w = solve_navier_stokes(w0, 0.2, 1e-3, fno_forcing(16))
    assert np.abs(w.mean(axis=(1, 2))).max() < 1e-12
