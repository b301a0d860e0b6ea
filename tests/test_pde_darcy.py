"""Darcy solver: second-order convergence to a manufactured solution, and the sampling recipe."""

import numpy as np
import pytest

from saeno.pde.darcy import darcy_banded, darcy_matrix, sample_coefficients, solve_darcy


def _manufactured(n):
    """u = sin(pi x) sin(pi y), a = 1 + 0.5 sin(2 pi x) sin(2 pi y); f = -div(a grad u) by hand."""
    x = np.arange(n) / n
    xx, yy = np.meshgrid(x, x, indexing="ij")
    pi = np.pi
    u = np.sin(pi * xx) * np.sin(pi * yy)
    a = 1 + 0.5 * np.sin(2 * pi * xx) * np.sin(2 * pi * yy)
    ax = pi * np.cos(2 * pi * xx) * np.sin(2 * pi * yy)
    ay = pi * np.sin(2 * pi * xx) * np.cos(2 * pi * yy)
    ux = pi * np.cos(pi * xx) * np.sin(pi * yy)
    uy = pi * np.sin(pi * xx) * np.cos(pi * yy)
    f = -(ax * ux + ay * uy + a * (-2 * pi**2 * u))
    return a, f, u


def test_manufactured_solution_converges_at_second_order():
    errors = []
    for n in (16, 32, 64):
        a, f, u = _manufactured(n)
        errors.append(np.abs(solve_darcy(a, f) - u).max())
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert errors[-1] < 5e-4
    assert np.all(orders > 1.9) and np.all(orders < 2.1), orders


def test_constant_coefficient_matches_series_solution():
    # -Laplacian(u) = 1 on the unit square: u(1/2, 1/2) = 0.0736713... (classical series value)
    n = 64
    u = solve_darcy(np.ones((n, n)), 1.0)
    assert u[n // 2, n // 2] == pytest.approx(0.0736713, abs=2e-4)
    assert np.all(u[0] == 0) and np.all(u[:, 0] == 0)
    np.testing.assert_allclose(u[1:, 1:], u[1:, 1:].T, atol=1e-12)  # symmetric problem


def test_matrix_is_symmetric_positive_definite():
    a = sample_coefficients(1, 8, np.random.default_rng(0))[0]
    m = darcy_matrix(a).toarray()
    np.testing.assert_allclose(m, m.T)
    assert np.linalg.eigvalsh(m).min() > 0


def test_coefficients_are_two_valued_and_seeded():
    a1 = sample_coefficients(3, 32, np.random.default_rng(5))
    a2 = sample_coefficients(3, 32, np.random.default_rng(5))
    np.testing.assert_array_equal(a1, a2)
    assert set(np.unique(a1)) == {3.0, 12.0}
    assert 0.2 < (a1 == 12).mean() < 0.8


def test_banded_storage_holds_the_sparse_matrix():
    # rebuild the dense matrix from LAPACK's upper banded storage, ab[m + i - j, j] = A[i, j] for i <= j
    a = sample_coefficients(1, 9, np.random.default_rng(3))[0]
    dense = darcy_matrix(a).toarray()
    ab = darcy_banded(a)
    bw = ab.shape[0] - 1
    rebuilt = np.zeros_like(dense)
    for i in range(len(dense)):
        for j in range(i, min(len(dense), i + bw + 1)):
            rebuilt[i, j] = rebuilt[j, i] = ab[bw + i - j, j]
    np.testing.assert_array_equal(rebuilt, dense)


@pytest.mark.parametrize("n", [8, 33, 64])
def test_banded_solve_equals_the_sparse_lu_solve(n):
    import scipy.sparse.linalg as spla

    rng = np.random.default_rng(n)
    for a in sample_coefficients(3, n, rng):
        f = rng.uniform(0.5, 1.5, (n, n))
        rhs = f[1:, 1:].ravel() / n**2
        ref = np.zeros((n, n))
        ref[1:, 1:] = spla.spsolve(darcy_matrix(a), rhs).reshape(n - 1, n - 1)
        u = solve_darcy(a, f)
        np.testing.assert_allclose(u, ref, rtol=1e-10, atol=1e-14 * np.abs(ref).max())
        residual = darcy_matrix(a) @ u[1:, 1:].ravel() - rhs
        assert np.abs(residual).max() < 1e-9 * np.abs(rhs).max()


def test_solve_many_is_bit_identical_to_scipy_for_any_thread_count():
    # the threaded solve calls the same LAPACK routine without the GIL: same bits as solve_darcy
    from threadpoolctl import threadpool_limits

    from saeno.pde import banded_lapack
    from saeno.pde.darcy import solve_darcy_many

    assert banded_lapack.available()
    coeffs = sample_coefficients(6, 32, np.random.default_rng(11))
    forcing = np.random.default_rng(12).standard_normal((32, 32))
    with threadpool_limits(limits=1, user_api="blas"):
        for f in (1.0, forcing):
            want = np.stack([solve_darcy(a, f) for a in coeffs])
            for threads in (1, 2, 3):
                got = solve_darcy_many(coeffs, f, threads=threads)
                assert got.shape == want.shape
                assert np.array_equal(got, want), threads


def test_solve_many_refuses_a_matrix_that_is_not_positive_definite():
    from numpy.linalg import LinAlgError

    from saeno.pde.banded_lapack import solve_banded_many

    ab = darcy_banded(np.ones((8, 8)))
    ab[-1, 3] = -1.0  # a negative diagonal entry
    with pytest.raises(LinAlgError, match="not positive definite"):
        solve_banded_many([(ab, np.ones(ab.shape[1]))] * 2, threads=2)
