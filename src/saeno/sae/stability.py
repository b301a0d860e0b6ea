"""Stability of dictionaries across training runs: matched atoms, matched code maps, share reproduced.

Two SAEs trained on the same activations from different seeds learn their concepts in an arbitrary
order, so comparing them needs a matching. :func:`match_atoms` pairs the atoms of two dictionaries one
to one (Hungarian assignment, :func:`scipy.optimize.linear_sum_assignment`) so that the summed
``|cos|`` of the pairs is largest. The absolute value makes the match blind to a sign flip of an atom.

An SAE-FNO concept is a translation-equivariant function: the same pattern placed at another origin
is the same concept (its code map moves the other way). Rendered atoms of two seeds can therefore be
equal up to a periodic shift, which an unshifted cosine counts as a mismatch; with ``shifts=True`` the
cosine of each pair is maximised over all periodic shifts of the grid (a circular cross-correlation,
computed with an FFT), and the maximising shift is kept to align the code maps.

:func:`code_correlation` scores the matched pairs on samples: the Pearson correlation, over samples
and points, of the two code maps of each pair (the second rolled by the pair's shift).
:func:`compare_dictionaries` reports both and the share of atoms reproduced (matched ``|cos|`` at or
above a threshold), and :func:`chance_matched_cos` gives the level that matching two unrelated
dictionaries reaches by chance, without which a mean ``|cos|`` cannot be read: in a 32-dimensional
channel space, 64 random directions matched to 64 others reach a mean ``|cos|`` near 0.5.

Sign convention of shifts: ``shift = s`` means ``b(x) ≈ ±a(x - s)`` (``b`` is ``a`` rolled forward by
``s``); the code map of ``b`` is then that of ``a`` rolled back by ``s``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from saeno.sae.base import ConfigError

__all__ = [
    "AtomMatch",
    "StabilityScore",
    "match_atoms",
    "code_correlation",
    "compare_dictionaries",
    "chance_matched_cos",
    "expected_max_abs_cos",
    "rotated_null_cos",
]


@dataclass(frozen=True)
class AtomMatch:
    """A one-to-one matching of the atoms of dictionary ``a`` to those of ``b``.

    Attributes
    ----------
    rows, cols : numpy.ndarray
        Atom ``rows[m]`` of ``a`` is matched with atom ``cols[m]`` of ``b``.
    cos : numpy.ndarray
        ``|cos|`` of each matched pair (maximised over shifts when matched with shifts).
    shifts : numpy.ndarray
        ``(m, ndim)`` periodic shift of each pair in grid points (``b ≈ ±roll(a, shift)``); zeros when
        matched without shifts.
    similarity : numpy.ndarray
        The full ``(n_a, n_b)`` ``|cos|`` matrix the matching maximised.
    """

    rows: np.ndarray
    cols: np.ndarray
    cos: np.ndarray
    shifts: np.ndarray
    similarity: np.ndarray


@dataclass(frozen=True)
class StabilityScore:
    """Summary of :func:`compare_dictionaries`.

    Attributes
    ----------
    atom_cos : float
        Mean matched ``|cos|``.
    code_corr : float
        Mean Pearson correlation of the matched code maps (``nan`` without codes or when every
        matched pair has a constant code map).
    reproduced : float
        Share of atoms whose matched ``|cos|`` is at least ``threshold``.
    threshold : float
        The ``|cos|`` threshold behind ``reproduced``.
    n_matched : int
        Number of matched pairs (the smaller dictionary's size).
    """

    atom_cos: float
    code_corr: float
    reproduced: float
    threshold: float
    n_matched: int


def _as_real(atoms: Tensor) -> Tensor:
    atoms = torch.as_tensor(atoms)
    if atoms.is_complex():
        atoms = torch.cat([atoms.real, atoms.imag], dim=1)
    return atoms.detach().to(torch.float64).cpu()


def _check_pair(a: Tensor, b: Tensor, shifts: bool) -> None:
    if a.ndim < 2 or b.ndim < 2:
        raise ConfigError(
            f"atoms must be (n, C) vectors or (n, C, *grid) fields, got shapes {tuple(a.shape)} and "
            f"{tuple(b.shape)}"
        )
    if a.shape[1:] != b.shape[1:]:
        raise ConfigError(
            f"the two dictionaries' atoms differ in shape: {tuple(a.shape[1:])} against "
            f"{tuple(b.shape[1:])}; render both on the same grid (SparseAutoencoder.concepts(resolution))"
        )
    if shifts and a.ndim < 3:
        raise ConfigError(
            "shifts=True needs atoms rendered on a grid, (n, C, *grid); vectors (n, C) have no shifts"
        )


def match_atoms(a: Tensor, b: Tensor, *, shifts: bool = False) -> AtomMatch:
    """Match the atoms of two dictionaries one to one by largest summed ``|cos|``.

    Parameters
    ----------
    a, b : Tensor
        Atoms ``(n_a, C)`` and ``(n_b, C)``, or rendered atoms ``(n_a, C, *grid)`` and
        ``(n_b, C, *grid)`` on the same grid (:meth:`~saeno.sae.base.SparseAutoencoder.concepts`).
        Complex atoms are compared as their real and imaginary parts side by side.
    shifts : bool
        Maximise each pair's ``|cos|`` over all periodic shifts of the grid (for SAE-FNO atoms, whose
        concepts are equal up to the origin they are placed at).

    Returns
    -------
    AtomMatch
    """
    a, b = _as_real(a), _as_real(b)
    _check_pair(a, b, shifts)
    from scipy.optimize import linear_sum_assignment

    na = a.flatten(1).norm(dim=1).clamp_min(1e-300)
    nb = b.flatten(1).norm(dim=1).clamp_min(1e-300)
    grid = tuple(a.shape[2:])
    if shifts:
        dims = tuple(range(2, a.ndim))
        fa = torch.fft.rfftn(a, dim=dims)
        fb = torch.fft.rfftn(b, dim=dims)
        # xcorr[i, j, s] = sum_c sum_y a_i[c, y] b_j[c, y + s]
        xcorr = torch.fft.irfftn(
            torch.einsum("ic...,jc...->ij...", fa.conj(), fb), s=grid, dim=tuple(range(2, 2 + len(grid)))
        )
        flat = xcorr.abs().flatten(2)
        best, arg = flat.max(dim=2)
        sim = best / (na[:, None] * nb[None, :])
        shift_of = np.stack(np.unravel_index(arg.numpy(), grid), axis=-1)
    else:
        sim = (a.flatten(1) @ b.flatten(1).T).abs() / (na[:, None] * nb[None, :])
        shift_of = np.zeros(sim.shape + (len(grid),), dtype=np.int64)
    sim_np = sim.clamp(0.0, 1.0).numpy()
    rows, cols = linear_sum_assignment(-sim_np)
    return AtomMatch(
        rows=rows,
        cols=cols,
        cos=sim_np[rows, cols],
        shifts=shift_of[rows, cols].reshape(len(rows), len(grid)),
        similarity=sim_np,
    )


def code_correlation(codes_a: Tensor, codes_b: Tensor, match: AtomMatch) -> np.ndarray:
    """Pearson correlation of the code maps of each matched pair, over samples and points.

    Parameters
    ----------
    codes_a, codes_b : Tensor
        Codes of the same samples, ``(N, n, *grid)`` (or ``(rows, n)`` for a pointwise SAE's flat codes).
    match : AtomMatch
        From :func:`match_atoms`; the code map of ``b`` is rolled by each pair's shift before comparing.

    Returns
    -------
    numpy.ndarray
        One correlation per matched pair, ``nan`` where either code map is constant (never fires).
    """
    za = torch.as_tensor(codes_a).detach().to(torch.float64).cpu()
    zb = torch.as_tensor(codes_b).detach().to(torch.float64).cpu()
    if za.shape[0] != zb.shape[0] or za.shape[2:] != zb.shape[2:]:
        raise ConfigError(
            f"code maps must come from the same samples on the same grid, got shapes {tuple(za.shape)} "
            f"and {tuple(zb.shape)}"
        )
    dims = tuple(range(1, za.ndim - 1))
    out = np.full(len(match.rows), np.nan)
    for m, (i, j) in enumerate(zip(match.rows, match.cols)):
        x = za[:, i]
        y = zb[:, j]
        s = tuple(int(v) for v in match.shifts[m])
        if dims and any(s):
            # b = roll(a, s)  =>  code_b = roll(code_a, -s): roll code_b forward by s to align.
            y = torch.roll(y, shifts=s, dims=dims)
        x = x.flatten() - x.mean()
        y = y.flatten() - y.mean()
        den = float(x.norm() * y.norm())
        if den > 0:
            out[m] = float((x * y).sum()) / den
    return out


def compare_dictionaries(
    atoms_a: Tensor,
    atoms_b: Tensor,
    codes_a: Tensor | None = None,
    codes_b: Tensor | None = None,
    *,
    shifts: bool = False,
    threshold: float = 0.9,
) -> StabilityScore:
    """Matched ``|cos|`` of atoms, correlation of matched code maps and the share reproduced.

    Parameters
    ----------
    atoms_a, atoms_b : Tensor
        The two dictionaries' atoms (see :func:`match_atoms`).
    codes_a, codes_b : Tensor, optional
        Their codes of the same samples (see :func:`code_correlation`).
    shifts : bool
        Match up to periodic shifts (SAE-FNO atoms).
    threshold : float
        ``|cos|`` at or above which an atom counts as reproduced.

    Returns
    -------
    StabilityScore
    """
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f"threshold must be in (0, 1], got {threshold}")
    match = match_atoms(atoms_a, atoms_b, shifts=shifts)
    corr = math.nan
    if codes_a is not None and codes_b is not None:
        c = code_correlation(codes_a, codes_b, match)
        corr = float(np.nanmean(c)) if np.isfinite(c).any() else math.nan
    return StabilityScore(
        atom_cos=float(match.cos.mean()),
        code_corr=corr,
        reproduced=float((match.cos >= threshold).mean()),
        threshold=float(threshold),
        n_matched=len(match.rows),
    )


def expected_max_abs_cos(dim: int, n: int) -> float:
    """Expected largest ``|cos|`` of one random direction against ``n`` independent random directions.

    For directions uniform on the sphere in ``dim`` dimensions, ``sqrt(dim) cos`` is close to a standard
    normal, so this is ``E[max of n |g|] / sqrt(dim)``, integrated from the distribution of the maximum.
    It bounds from above the mean ``|cos|`` that a one-to-one matching of two unrelated dictionaries of
    ``n`` atoms reaches (a matching cannot give every atom its best partner).
    """
    if dim < 1 or n < 1:
        raise ConfigError(f"dim and n must be >= 1, got dim={dim}, n={n}")
    from scipy import stats

    t = np.linspace(0.0, 12.0, 24001)
    cdf_max = (2.0 * stats.norm.cdf(t) - 1.0) ** n
    y = 1.0 - cdf_max
    integral = float(((y[1:] + y[:-1]) * 0.5 * np.diff(t)).sum())
    return integral / math.sqrt(dim)


def chance_matched_cos(dim: int, n_a: int, n_b: int | None = None, trials: int = 8, seed: int = 0) -> float:
    """Mean matched ``|cos|`` of two independent random dictionaries (Monte Carlo over ``trials``).

    The chance level of :func:`match_atoms` without shifts for Gaussian atoms in ``dim`` dimensions
    (for pointwise SAEs: the number of channels). Rendered SAE-FNO atoms are band-limited: their
    effective dimension is the channels times the number of real Fourier coefficients kept, not the
    number of grid values.
    """
    n_b = n_a if n_b is None else n_b
    gen = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(trials):
        a = torch.randn(n_a, dim, generator=gen, dtype=torch.float64)
        b = torch.randn(n_b, dim, generator=gen, dtype=torch.float64)
        vals.append(float(match_atoms(a, b).cos.mean()))
    return float(np.mean(vals))


def rotated_null_cos(
    atoms_a: Tensor, atoms_b: Tensor, *, shifts: bool = False, trials: int = 4, seed: int = 0
) -> float:
    """Mean matched ``|cos|`` after a random rotation of ``b``'s channel space (a null for real data).

    Each trial multiplies the channel axis of ``atoms_b`` by a Haar-random orthogonal matrix, which
    keeps every atom's norm, spatial spectrum and the dictionary's Gram matrix but breaks any
    correspondence with ``atoms_a``. The matched ``|cos|`` that remains is what two dictionaries of
    this shape and smoothness reach by chance, with the same matching (and shifts) as the real score.
    """
    b = _as_real(atoms_b)
    gen = torch.Generator().manual_seed(seed)
    c = b.shape[1]
    vals = []
    for _ in range(trials):
        q, r = torch.linalg.qr(torch.randn(c, c, generator=gen, dtype=torch.float64))
        q = q * torch.sign(torch.diagonal(r))[None, :]
        rot = torch.einsum("dc,nc...->nd...", q, b)
        vals.append(float(match_atoms(atoms_a, rot, shifts=shifts).cos.mean()))
    return float(np.mean(vals))
