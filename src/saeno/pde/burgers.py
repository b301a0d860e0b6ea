"""1D viscous Burgers ``u_t + (u^2 / 2)_x = nu u_xx`` on the periodic interval ``[0, 1)``.

Pseudo-spectral in space (grid ``x_i = i / n``, 2/3-rule dealiasing of the nonlinear term) and ETDRK4 in
time (Cox and Matthews 2002, with the contour-integral coefficients of Kassam and Trefethen 2005): fourth
order in time, spectrally accurate in space for smooth solutions. Works on a batch of initial conditions
at once. ``cole_hopf_solution`` gives an exact solution for tests.
"""

from __future__ import annotations

import math

import numpy as np


def _etdrk4_coefficients(lin: np.ndarray, dt: float, n_contour: int = 32) -> tuple[np.ndarray, ...]:
    """ETDRK4 coefficients for the diagonal linear operator ``lin`` (Kassam-Trefethen contour means)."""
    e = np.exp(dt * lin)
    e2 = np.exp(dt * lin / 2.0)
    roots = np.exp(1j * np.pi * (np.arange(1, n_contour + 1) - 0.5) / n_contour)
    lr = dt * lin[:, None] + roots[None, :]
    q = dt * np.real(np.mean((np.exp(lr / 2.0) - 1.0) / lr, axis=1))
    f1 = dt * np.real(np.mean((-4.0 - lr + np.exp(lr) * (4.0 - 3.0 * lr + lr**2)) / lr**3, axis=1))
    f2 = dt * np.real(np.mean((2.0 + lr + np.exp(lr) * (-2.0 + lr)) / lr**3, axis=1))
    f3 = dt * np.real(np.mean((-4.0 - 3.0 * lr - lr**2 + np.exp(lr) * (4.0 - lr)) / lr**3, axis=1))
    return e, e2, q, f1, f2, f3


def solve_burgers(
    u0: np.ndarray,
    t_final: float,
    viscosity: float,
    n_steps: int | None = None,
    cfl: float = 0.4,
) -> np.ndarray:
    """Integrate Burgers' equation from ``u0`` to ``t_final``.

    Parameters
    ----------
    u0 : numpy.ndarray
        Initial conditions ``(n,)`` or ``(B, n)`` on the grid ``x_i = i / n``.
    t_final : float
        Final time.
    viscosity : float
        ``nu > 0``.
    n_steps : int, optional
        Number of equal time steps. By default chosen from the advective CFL condition
        ``dt <= cfl * dx / max|u0|`` (the maximum of ``|u|`` does not grow for viscous Burgers).
    cfl : float
        CFL number used when ``n_steps`` is not given.

    Returns
    -------
    numpy.ndarray
        ``u(t_final)`` with the shape of ``u0``.
    """
    u0 = np.asarray(u0, dtype=np.float64)
    squeeze = u0.ndim == 1
    u = u0[None] if squeeze else u0
    n = u.shape[-1]
    if n_steps is None:
        umax = max(float(np.abs(u).max()), 1e-12)
        n_steps = max(1, math.ceil(t_final / (cfl * (1.0 / n) / umax)))
    dt = t_final / n_steps
    k = 2.0 * np.pi * np.fft.rfftfreq(n, d=1.0 / n)
    lin = -viscosity * k**2
    dealias = np.abs(np.fft.rfftfreq(n, d=1.0 / n)) < (2.0 / 3.0) * (n / 2.0)
    g = -0.5j * k * dealias  # N(v) = g * fft(ifft(v)^2)

    def nonlinear(v: np.ndarray) -> np.ndarray:
        return g * np.fft.rfft(np.fft.irfft(v, n=n, axis=-1) ** 2, axis=-1)

    e, e2, q, f1, f2, f3 = _etdrk4_coefficients(lin, dt)
    v = np.fft.rfft(u, axis=-1)
    for _ in range(n_steps):
        nv = nonlinear(v)
        a = e2 * v + q * nv
        na = nonlinear(a)
        b = e2 * v + q * na
        nb = nonlinear(b)
        c = e2 * a + q * (2.0 * nb - nv)
        nc = nonlinear(c)
        v = e * v + f1 * nv + 2.0 * f2 * (na + nb) + f3 * nc
    out = np.fft.irfft(v, n=n, axis=-1)
    return out[0] if squeeze else out


def cole_hopf_solution(x: np.ndarray, t: float, viscosity: float, amplitude: float = 0.5) -> np.ndarray:
    """An exact periodic solution of viscous Burgers via the Cole-Hopf transform.

    With ``phi(x, t) = 1 + amplitude * exp(-4 pi^2 nu t) cos(2 pi x)`` solving the heat equation
    ``phi_t = nu phi_xx``, ``u = -2 nu phi_x / phi`` solves Burgers' equation (``0 < amplitude < 1``).

    Parameters
    ----------
    x : numpy.ndarray
        Points in ``[0, 1)``.
    t : float
        Time.
    viscosity : float
        ``nu``.
    amplitude : float
        Cosine amplitude in ``phi``; closer to 1 gives steeper fronts.

    Returns
    -------
    numpy.ndarray
        ``u(x, t)``.
    """
    decay = amplitude * np.exp(-4.0 * np.pi**2 * viscosity * t)
    phi = 1.0 + decay * np.cos(2.0 * np.pi * x)
    phi_x = -2.0 * np.pi * decay * np.sin(2.0 * np.pi * x)
    return -2.0 * viscosity * phi_x / phi
