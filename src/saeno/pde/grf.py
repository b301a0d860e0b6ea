"""Gaussian random fields on the periodic unit box, sampled spectrally.

The covariance is the FNO paper's Matérn-like operator ``sigma^2 (-Laplacian + tau^2 I)^(-alpha)`` on the
torus ``[0, 1)^d``: each Fourier mode ``k`` gets an independent complex Gaussian coefficient with standard
deviation ``sigma (4 pi^2 |k|^2 + tau^2)^(-alpha / 2)``; the constant mode is removed (mean-zero fields).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def wavenumbers(n: int) -> np.ndarray:
    """Integer wavenumbers of an ``n``-point FFT on ``[0, 1)``: ``0, 1, ..., -1`` (as ``np.fft.fftfreq(n) * n``)."""
    return np.fft.fftfreq(n, d=1.0 / n)


def grf_spectrum(shape: Sequence[int], alpha: float, tau: float, sigma: float = 1.0) -> np.ndarray:
    """Standard deviation of each Fourier coefficient of the field, shape ``shape`` (FFT layout).

    Parameters
    ----------
    shape : sequence of int
        Grid size per dimension.
    alpha, tau : float
        Smoothness and inverse length scale of ``(-Laplacian + tau^2)^(-alpha)``.
    sigma : float
        Overall amplitude.

    Returns
    -------
    numpy.ndarray
        Non-negative array of shape ``shape``; zero at the constant mode.
    """
    grids = np.meshgrid(*[wavenumbers(n) for n in shape], indexing="ij")
    k2 = sum(g**2 for g in grids)
    spec = sigma * (4.0 * np.pi**2 * k2 + tau**2) ** (-alpha / 2.0)
    spec[(0,) * len(shape)] = 0.0
    return spec


def sample_grf(
    n_samples: int,
    shape: Sequence[int],
    alpha: float = 2.0,
    tau: float = 3.0,
    sigma: float = 1.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Draw mean-zero Gaussian random fields on the periodic grid ``x_i = i / n``.

    Parameters
    ----------
    n_samples : int
        Number of fields.
    shape : sequence of int
        Grid size per dimension (1 to 3 dimensions).
    alpha, tau, sigma : float
        Covariance ``sigma^2 (-Laplacian + tau^2)^(-alpha)`` (see the module docstring).
    rng : numpy.random.Generator, optional
        Source of randomness (``np.random.default_rng()`` when omitted).

    Returns
    -------
    numpy.ndarray
        Real array ``(n_samples, *shape)``, float64. The point-wise variance equals
        ``sum_k spec_k^2`` (the sum of the spectrum squared over all modes).
    """
    rng = np.random.default_rng() if rng is None else rng
    shape = tuple(int(s) for s in shape)
    spec = grf_spectrum(shape, alpha, tau, sigma)
    noise = rng.standard_normal((n_samples, *shape)) + 1j * rng.standard_normal((n_samples, *shape))
    coeffs = noise * spec / np.sqrt(2.0)
    axes = tuple(range(1, len(shape) + 1))
    # real part of an inverse FFT of Hermitian-free complex noise: each mode k and -k contribute,
    # the real part of the sum has variance sum_k spec_k^2 at every point
    n_points = int(np.prod(shape))
    field = np.fft.ifftn(coeffs, axes=axes).real * n_points * np.sqrt(2.0)
    return field
