"""2D incompressible Navier-Stokes in vorticity form on the torus ``[0, 1)^2``.

``w_t + u . grad(w) = nu Laplacian(w) + f``, ``u = (psi_y, -psi_x)``, ``-Laplacian(psi) = w``.

Pseudo-spectral on the grid ``(i / n, j / n)`` with 2/3-rule dealiasing of the advection term. Time stepping
as in the FNO paper's solver, Crank-Nicolson for the viscous term, but with a Heun (trapezoidal) predictor-
corrector for advection and forcing so that the scheme is second order in time (the paper's forward-Euler
advection is first order). Works on a batch of vorticity fields at once.
"""

from __future__ import annotations

import math

import numpy as np


def _wavenumbers_2d(n: int) -> tuple[np.ndarray, np.ndarray]:
    k = 2.0 * np.pi * np.fft.fftfreq(n, d=1.0 / n)
    kr = 2.0 * np.pi * np.fft.rfftfreq(n, d=1.0 / n)
    kx, ky = np.meshgrid(k, kr, indexing="ij")
    return kx, ky


def fno_forcing(n: int, amplitude: float = 0.1) -> np.ndarray:
    """The FNO paper's forcing ``amplitude * (sin(2 pi (x + y)) + cos(2 pi (x + y)))`` on the ``n``-grid."""
    x = np.arange(n) / n
    xx, yy = np.meshgrid(x, x, indexing="ij")
    return amplitude * (np.sin(2 * np.pi * (xx + yy)) + np.cos(2 * np.pi * (xx + yy)))


def solve_navier_stokes(
    w0: np.ndarray,
    t_final: float,
    viscosity: float,
    forcing: np.ndarray | float = 0.0,
    n_steps: int | None = None,
    cfl: float = 0.5,
) -> np.ndarray:
    """Integrate the vorticity equation from ``w0`` to ``t_final``.

    Parameters
    ----------
    w0 : numpy.ndarray
        Vorticity ``(n, n)`` or ``(B, n, n)`` on the grid ``(i / n, j / n)``.
    t_final : float
        Final time.
    viscosity : float
        ``nu > 0``.
    forcing : numpy.ndarray or float
        Time-independent forcing ``(n, n)`` (or 0).
    n_steps : int, optional
        Number of equal steps; by default from the CFL condition ``dt <= cfl * dx / max|u(0)|``
        with at least 10 steps per unit time.
    cfl : float
        CFL number used when ``n_steps`` is not given.

    Returns
    -------
    numpy.ndarray
        ``w(t_final)`` with the shape of ``w0``.
    """
    w0 = np.asarray(w0, dtype=np.float64)
    squeeze = w0.ndim == 2
    w = w0[None] if squeeze else w0
    n = w.shape[-1]
    kx, ky = _wavenumbers_2d(n)
    k2 = kx**2 + ky**2
    inv_k2 = np.where(k2 > 0, 1.0 / np.where(k2 > 0, k2, 1.0), 0.0)
    cut = (2.0 / 3.0) * np.pi * n  # 2/3 of the largest wavenumber 2 pi n / 2
    dealias = (np.abs(kx) < cut) & (np.abs(ky) < cut)
    f_hat = np.fft.rfft2(np.broadcast_to(np.asarray(forcing, dtype=np.float64), (n, n)))

    def velocity(w_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        psi_hat = w_hat * inv_k2
        u = np.fft.irfft2(1j * ky * psi_hat, s=(n, n))
        v = np.fft.irfft2(-1j * kx * psi_hat, s=(n, n))
        return u, v

    def rhs(w_hat: np.ndarray) -> np.ndarray:
        u, v = velocity(w_hat)
        wx = np.fft.irfft2(1j * kx * w_hat, s=(n, n))
        wy = np.fft.irfft2(1j * ky * w_hat, s=(n, n))
        return -np.fft.rfft2(u * wx + v * wy) * dealias + f_hat

    w_hat = np.fft.rfft2(w)
    if n_steps is None:
        u, v = velocity(w_hat)
        speed = max(float(np.sqrt(u**2 + v**2).max()), 1e-12)
        n_steps = max(math.ceil(10 * t_final), math.ceil(t_final / (cfl * (1.0 / n) / speed)))
    dt = t_final / n_steps
    implicit = 1.0 / (1.0 + 0.5 * dt * viscosity * k2)
    explicit = 1.0 - 0.5 * dt * viscosity * k2
    for _ in range(n_steps):
        r0 = rhs(w_hat)
        pred = (explicit * w_hat + dt * r0) * implicit
        w_hat = (explicit * w_hat + 0.5 * dt * (r0 + rhs(pred))) * implicit
    out = np.fft.irfft2(w_hat, s=(n, n))
    return out[0] if squeeze else out


def taylor_green_vorticity(n: int, t: float, viscosity: float, amplitude: float = 1.0) -> np.ndarray:
    """Decaying Taylor-Green vortex, an exact solution without forcing.

    ``w = amplitude * 8 pi^2 sin(2 pi x) sin(2 pi y) exp(-8 pi^2 nu t)``: the advection term vanishes
    because ``w`` is proportional to the stream function.
    """
    x = np.arange(n) / n
    xx, yy = np.meshgrid(x, x, indexing="ij")
    decay = math.exp(-8.0 * np.pi**2 * viscosity * t)
    return amplitude * 8.0 * np.pi**2 * np.sin(2 * np.pi * xx) * np.sin(2 * np.pi * yy) * decay
