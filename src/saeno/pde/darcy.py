"""2D Darcy flow ``-div(a grad u) = f`` on the unit square with ``u = 0`` on the boundary.

Grid convention (shared by every resolution, so coarse grids are exact subsamples of fine ones): a field of
resolution ``n`` holds the values at the vertices ``(i / n, j / n)``, ``i, j = 0 .. n - 1``. Row and column 0
lie on the boundary (``u = 0`` there); the vertices at ``x = 1`` or ``y = 1`` are not stored: they equal the
vertices at ``0`` because the coefficient is periodic and ``u`` vanishes on the whole boundary. Taking every
second point of an ``n``-grid gives the ``n / 2``-grid.

Discretisation: the standard 5-point finite-difference stencil with the coefficient at cell faces taken as
the arithmetic mean of the two vertices, second-order accurate for smooth ``a``. The matrix is symmetric
positive definite with bandwidth ``n - 1`` in the C-order numbering of the interior vertices, so each
sample is one banded Cholesky solve (LAPACK through ``scipy.linalg.solveh_banded``), a direct solve whose
result equals a sparse LU solve of :func:`darcy_matrix` to rounding and takes about half its time.
:func:`solve_darcy_many` solves several samples on several threads (the same LAPACK routine, called
without holding the GIL: :mod:`saeno.pde.banded_lapack`), each solution bit-identical to
:func:`solve_darcy`'s.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import solveh_banded

from saeno.pde.banded_lapack import solve_banded_many
from saeno.pde.grf import sample_grf

#: threads of :func:`solve_darcy_many` when none are given (None: the usable cores, at most 4); the
#: dataset generator's worker processes set it to 1
SOLVE_THREADS: int | None = None


def _face_coefficients(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Face coefficients ``east, west, north, south`` ``(n - 1, n - 1)`` around each interior vertex."""
    n = a.shape[0]
    ap = np.pad(a, ((0, 1), (0, 1)), mode="wrap")  # vertices 0..n in both directions
    east = 0.5 * (ap[1:n, 1:n] + ap[2 : n + 1, 1:n])  # between i and i+1 (axis 0)
    west = 0.5 * (ap[1:n, 1:n] + ap[0 : n - 1, 1:n])
    north = 0.5 * (ap[1:n, 1:n] + ap[1:n, 2 : n + 1])  # between j and j+1 (axis 1)
    south = 0.5 * (ap[1:n, 1:n] + ap[1:n, 0 : n - 1])
    return east, west, north, south


def darcy_banded(a: np.ndarray) -> np.ndarray:
    """The matrix of :func:`darcy_matrix` in LAPACK's upper banded storage (``solveh_banded``'s ``ab``).

    Returns
    -------
    numpy.ndarray
        ``(n, (n - 1)^2)``: row ``n - 1`` the diagonal, row ``n - 2`` the coupling of vertex ``(i, j)``
        with ``(i, j + 1)``, row 0 its coupling with ``(i + 1, j)``; the rows between are zero.
    """
    n = a.shape[0]
    m = n - 1
    east, west, north, south = _face_coefficients(a)
    ab = np.zeros((m + 1, m * m))
    ab[m] = (east + west + north + south).ravel()
    # ab[m - k, c] holds A[c - k, c]; A[r, r + 1] = -north[r] inside a row of vertices, 0 across rows
    upper1 = -north.copy()
    upper1[:, -1] = 0.0
    ab[m - 1, 1:] = upper1.ravel()[:-1]
    ab[0, m:] = -east[:-1].ravel()  # A[r, r + m] = -east[r]
    return ab


def darcy_matrix(a: np.ndarray) -> sp.csc_matrix:
    """Sparse matrix of ``-div(a grad .)`` on the interior vertices, scaled by ``h^2``.

    Parameters
    ----------
    a : numpy.ndarray
        Coefficient ``(n, n)`` at the vertices ``(i / n, j / n)``, periodic (vertex ``n`` is vertex ``0``).

    Returns
    -------
    scipy.sparse.csc_matrix
        ``((n - 1)^2, (n - 1)^2)`` matrix acting on the interior values in C order.
    """
    n = a.shape[0]
    m = n - 1
    # face coefficients around interior vertex (i, j), i, j = 1..n-1
    east, west, north, south = _face_coefficients(a)
    idx = np.arange(m * m).reshape(m, m)
    rows = [idx.ravel()]
    cols = [idx.ravel()]
    vals = [(east + west + north + south).ravel()]
    for coef, di, dj in ((east, 1, 0), (west, -1, 0), (north, 0, 1), (south, 0, -1)):
        ii, jj = np.meshgrid(np.arange(m), np.arange(m), indexing="ij")
        ni, nj = ii + di, jj + dj
        inside = (ni >= 0) & (ni < m) & (nj >= 0) & (nj < m)
        rows.append(idx[ii[inside], jj[inside]])
        cols.append(idx[ni[inside], nj[inside]])
        vals.append(-coef[inside])
    return sp.csc_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(m * m, m * m)
    )


def solve_darcy(a: np.ndarray, f: float | np.ndarray = 1.0) -> np.ndarray:
    """Solve ``-div(a grad u) = f``, ``u = 0`` on the boundary of the unit square.

    Parameters
    ----------
    a : numpy.ndarray
        Positive coefficient ``(n, n)`` at the vertices ``(i / n, j / n)`` (see the module docstring).
    f : float or numpy.ndarray
        Right-hand side: a constant, or ``(n, n)`` values at the same vertices (only interior ones are used).

    Returns
    -------
    numpy.ndarray
        ``u`` of shape ``(n, n)`` with zeros in row 0 and column 0.
    """
    a = _checked(a)
    n = a.shape[0]
    if n < 2:
        return np.zeros((n, n))
    interior = solveh_banded(darcy_banded(a), _scaled_rhs(f, n), check_finite=False)
    return _embed(interior, n)


def _checked(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"expected a square coefficient (n, n), got shape {a.shape}")
    return a


def _scaled_rhs(f: float | np.ndarray, n: int) -> np.ndarray:
    """The interior right-hand side of :func:`solve_darcy`, times ``h^2``."""
    h = 1.0 / n
    if np.isscalar(f) or np.ndim(f) == 0:
        rhs = np.full((n - 1) * (n - 1), float(f))
    else:
        rhs = np.asarray(f, dtype=np.float64)[1:, 1:].ravel()
    return rhs * h * h


def _embed(interior: np.ndarray, n: int) -> np.ndarray:
    u = np.zeros((n, n))
    u[1:, 1:] = interior.reshape(n - 1, n - 1)
    return u


def solve_darcy_many(
    coefficients: np.ndarray, f: float | np.ndarray = 1.0, threads: int | None = None
) -> np.ndarray:
    """:func:`solve_darcy` for each coefficient ``(S, n, n)``, the solves shared between threads.

    Parameters
    ----------
    coefficients : numpy.ndarray
        ``(S, n, n)`` coefficients (or a sequence of ``(n, n)`` ones).
    f : float or numpy.ndarray
        Right-hand side, the same for every sample (see :func:`solve_darcy`).
    threads : int, optional
        Threads solving at once (default :data:`SOLVE_THREADS`, else the usable cores up to 4).

    Returns
    -------
    numpy.ndarray
        ``(S, n, n)``, each sample bit-identical to ``solve_darcy(coefficients[i], f)`` for any
        thread count (one LAPACK call per sample, with the same inputs).
    """
    fields = [_checked(a) for a in coefficients]
    if not fields:
        return np.zeros((0, 0, 0))
    n = fields[0].shape[0]
    if any(a.shape != (n, n) for a in fields):
        raise ValueError("solve_darcy_many needs coefficients of one shape (S, n, n)")
    if n < 2:
        return np.zeros((len(fields), n, n))
    rhs = _scaled_rhs(f, n)
    threads = SOLVE_THREADS if threads is None else threads
    interiors = solve_banded_many([(darcy_banded(a), rhs) for a in fields], threads=threads)
    return np.stack([_embed(x, n) for x in interiors])


def sample_coefficients(
    n_samples: int,
    n: int,
    rng: np.random.Generator,
    alpha: float = 2.0,
    tau: float = 3.0,
    high: float = 12.0,
    low: float = 3.0,
) -> np.ndarray:
    """Draw the FNO paper's piecewise-constant coefficients: a GRF thresholded at zero to ``high`` / ``low``.

    Returns
    -------
    numpy.ndarray
        ``(n_samples, n, n)`` float64 with values in ``{low, high}``.
    """
    field = sample_grf(n_samples, (n, n), alpha=alpha, tau=tau, rng=rng)
    return np.where(field >= 0.0, high, low)
