"""Differential and spectral operators on sampled fields, resolution-free (pure numpy).

Every function takes one field sampled on a regular grid, ``(*grid)``, together with the grid
spacing per axis and whether the domain is periodic, and returns a field on the same grid. Spacing
comes from the dataset card's domain (``L_i / n_i``), so the same physical quantity is computed at
every resolution.

- derivatives: second-order central differences (wrapping around on periodic domains; one-sided
  second-order stencils at the edges otherwise);
- band-pass fields: the field's Fourier modes with integer wavenumber magnitude ``|k|`` (cycles per
  domain length) in ``[lo, hi)``, transformed back (on a non-periodic domain the transform treats the
  field as periodic, which adds some energy at the edges);
- signed distances: Euclidean distance transform, measured from the interface halfway between grid
  points of different phases.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def derivative(f: np.ndarray, axis: int, h: float, periodic: bool) -> np.ndarray:
    """``df/dx_axis`` by second-order central differences."""
    if periodic:
        return (np.roll(f, -1, axis=axis) - np.roll(f, 1, axis=axis)) / (2.0 * h)
    if f.shape[axis] < 3:
        return np.gradient(f, h, axis=axis, edge_order=1)
    return np.gradient(f, h, axis=axis, edge_order=2)


def gradient(f: np.ndarray, spacing: Sequence[float], periodic: bool) -> list[np.ndarray]:
    """The partial derivatives of ``f`` along every axis."""
    return [derivative(f, i, float(h), periodic) for i, h in enumerate(spacing)]


def gradient_magnitude(f: np.ndarray, spacing: Sequence[float], periodic: bool) -> np.ndarray:
    """``|grad f|``."""
    return np.sqrt(sum(g * g for g in gradient(f, spacing, periodic)))


def laplacian(f: np.ndarray, spacing: Sequence[float], periodic: bool) -> np.ndarray:
    """``sum_i d^2 f / dx_i^2`` (three-point stencil; periodic wrap or second-order edges)."""
    out = np.zeros_like(f, dtype=np.float64)
    for axis, h in enumerate(spacing):
        if periodic:
            out += (np.roll(f, -1, axis=axis) - 2.0 * f + np.roll(f, 1, axis=axis)) / (h * h)
        else:
            d = derivative(f, axis, float(h), False)
            out += derivative(d, axis, float(h), False)
    return out


def wavenumbers(shape: Sequence[int]) -> np.ndarray:
    """Integer wavenumber magnitude ``|k|`` of every mode of an ``np.fft.fftn`` of this shape."""
    ks = np.meshgrid(*[np.fft.fftfreq(n, d=1.0 / n) for n in shape], indexing="ij")
    return np.sqrt(sum(k * k for k in ks))


def band_pass(f: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The part of ``f`` made of modes with ``lo <= |k| < hi`` (integer cycles per domain length)."""
    k = wavenumbers(f.shape)
    spec = np.fft.fftn(f)
    spec[(k < lo) | (k >= hi)] = 0.0
    return np.fft.ifftn(spec).real


def band_energy(f: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Local energy ``f_band(x)^2`` of the band ``lo <= |k| < hi``."""
    b = band_pass(f, lo, hi)
    return b * b


def spectral_derivative(f: np.ndarray, axis: int, length: float) -> np.ndarray:
    """``df/dx_axis`` of a periodic field by the FFT (domain length ``length`` along ``axis``)."""
    n = f.shape[axis]
    k = np.fft.fftfreq(n, d=1.0 / n) * (2.0 * np.pi / length)
    if n % 2 == 0:
        k[n // 2] = 0.0  # the Nyquist mode has no well-defined derivative
    shape = [1] * f.ndim
    shape[axis] = n
    return np.fft.ifft(1j * k.reshape(shape) * np.fft.fft(f, axis=axis), axis=axis).real


def stream_function(w: np.ndarray, lengths: Sequence[float]) -> np.ndarray:
    """``psi`` with ``-laplacian(psi) = w`` on a periodic 2D domain (zero-mean solution)."""
    ks = np.meshgrid(
        *[np.fft.fftfreq(n, d=1.0 / n) * (2.0 * np.pi / L) for n, L in zip(w.shape, lengths)], indexing="ij"
    )
    k2 = np.asarray(sum(k * k for k in ks), dtype=np.float64)
    spec = np.fft.fftn(w)
    k2[k2 == 0] = 1.0
    spec = spec / k2
    spec.flat[0] = 0.0
    return np.fft.ifftn(spec).real


def okubo_weiss(w: np.ndarray, lengths: Sequence[float]) -> np.ndarray:
    """Okubo-Weiss parameter ``s_n^2 + s_s^2 - w^2`` of a 2D periodic vorticity field.

    Velocity from the stream function (``u = dpsi/dy``, ``v = -dpsi/dx``, axis 0 is x); positive where
    strain dominates, negative where rotation dominates.
    """
    psi = stream_function(w, lengths)
    lx, ly = float(lengths[0]), float(lengths[1])
    u = spectral_derivative(psi, 1, ly)
    v = -spectral_derivative(psi, 0, lx)
    s_n = spectral_derivative(u, 0, lx) - spectral_derivative(v, 1, ly)
    s_s = spectral_derivative(v, 0, lx) + spectral_derivative(u, 1, ly)
    return s_n * s_n + s_s * s_s - w * w


def signed_distance(mask: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Signed distance to the boundary of ``mask``: positive inside, negative outside.

    Measured from the interface halfway between neighbouring points of different phase. A mask that
    is all true (all false) has no interface: the result is the largest distance on the grid with
    the mask's sign everywhere.
    """
    from scipy.ndimage import distance_transform_edt

    mask = np.asarray(mask, dtype=bool)
    h = np.asarray(spacing, dtype=np.float64)
    half = 0.5 * float(h.min())
    if mask.all() or not mask.any():
        far = float(np.sqrt(np.sum((h * np.asarray(mask.shape)) ** 2)))
        return np.full(mask.shape, far if mask.all() else -far)
    inside = np.asarray(distance_transform_edt(mask, sampling=h), dtype=np.float64) - half
    outside = np.asarray(distance_transform_edt(~mask, sampling=h), dtype=np.float64) - half
    return np.where(mask, inside, -outside)


def boundary_distance(coords: Sequence[np.ndarray], domain: Sequence[Sequence[float]]) -> np.ndarray:
    """Distance of every grid point to the boundary of the box ``domain`` (non-periodic domains)."""
    parts = []
    for c, (lo, hi) in zip(coords, domain):
        parts.append(np.minimum(np.asarray(c) - float(lo), float(hi) - np.asarray(c)))
    out = parts[0]
    for p in parts[1:]:
        out = np.minimum(out, p)
    return out


__all__ = [
    "band_energy",
    "band_pass",
    "boundary_distance",
    "derivative",
    "gradient",
    "gradient_magnitude",
    "laplacian",
    "okubo_weiss",
    "signed_distance",
    "spectral_derivative",
    "stream_function",
    "wavenumbers",
]
