"""Recovery metrics for planted dictionaries (``docs/method.md`` section 4).

Atoms are unit-normalised, learned atoms are matched to true atoms with the Hungarian algorithm on
``|cos|`` (``scipy.optimize.linear_sum_assignment``), optionally maximised over circular shifts (a
convolutional model recovers an atom only up to a shift); reported as mean and worst matched ``|cos|``
and the sine distance ``sqrt(1 - cos^2)``. Coherence is the mean off-diagonal ``|D^T D|``. The generative
model they are used with is :mod:`saeno.synthetic` (which re-exports these names).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from saeno.errors import ShapeError


def _to_numpy(a: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().double().numpy()
    return np.asarray(a, dtype=np.float64)


def unit_normalize(atoms: np.ndarray | torch.Tensor) -> np.ndarray:
    """Flatten atoms to ``(p, m)`` rows of unit Euclidean norm (all-zero atoms stay zero).

    Parameters
    ----------
    atoms : array or tensor, shape (p, ...)

    Returns
    -------
    numpy.ndarray
        ``(p, m)`` float64.
    """
    a = _to_numpy(atoms)
    if a.ndim < 2:
        raise ShapeError(f"atoms must have shape (p, ...) with at least 2 axes, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ShapeError("atoms contain NaN or inf values")
    a = a.reshape(a.shape[0], -1)
    n = np.linalg.norm(a, axis=1, keepdims=True)
    return np.divide(a, n, out=np.zeros_like(a), where=n > 0)


def similarity(
    learned: np.ndarray | torch.Tensor,
    true: np.ndarray | torch.Tensor,
    *,
    shift_invariant: bool = False,
    ndim: int | None = None,
) -> np.ndarray:
    """Matrix of ``|cos|`` between unit-normalised learned and true atoms, ``(p_learned, p_true)``.

    Parameters
    ----------
    learned, true : array or tensor, shape (p, C, *grid)
        Atoms on the same grid.
    shift_invariant : bool
        Maximise ``|cos|`` over circular shifts of the grid (for convolutional models).
    ndim : int, optional
        Grid dimensions for ``shift_invariant`` (default: all axes after the channel axis).
    """
    la, ta = _to_numpy(learned), _to_numpy(true)
    if la.shape[1:] != ta.shape[1:]:
        raise ShapeError(
            f"learned atoms {la.shape[1:]} and true atoms {ta.shape[1:]} must be on the same grid; "
            "render both at one resolution"
        )
    lu, tu = unit_normalize(la), unit_normalize(ta)
    if not shift_invariant:
        return np.abs(lu @ tu.T)
    nd = la.ndim - 2 if ndim is None else int(ndim)
    if nd < 1 or la.ndim < 2 + nd:
        raise ShapeError(f"shift-invariant matching needs atoms of shape (p, C, *grid), got {la.shape}")
    lu = lu.reshape(la.shape)
    tu = tu.reshape(ta.shape)
    axes = tuple(range(lu.ndim - nd, lu.ndim))
    lf = np.fft.rfftn(lu, axes=axes)
    tf = np.fft.rfftn(tu, axes=axes)
    s = lu.shape[-nd:]
    out = np.empty((la.shape[0], ta.shape[0]))
    for i in range(la.shape[0]):
        # circular cross-correlation of learned atom i with every true atom, summed over non-grid axes
        cc = np.fft.irfftn(np.conj(lf[i])[None] * tf, s=s, axes=tuple(a for a in axes))
        cc = cc.reshape(ta.shape[0], -1, int(np.prod(s))).sum(axis=1)
        out[i] = np.abs(cc).max(axis=1)
    return np.minimum(out, 1.0)


@dataclass(frozen=True)
class Recovery:
    """Hungarian matching of learned to true atoms.

    ``cos`` (p_true,): matched ``|cos|`` per true atom (0 when unmatched); ``assignment`` (p_true,): the
    learned atom matched to each true atom (-1 when unmatched).
    """

    cos: np.ndarray
    assignment: np.ndarray

    @property
    def mean_cos(self) -> float:
        """Mean matched ``|cos|``."""
        return float(self.cos.mean())

    @property
    def min_cos(self) -> float:
        """Worst matched ``|cos|``."""
        return float(self.cos.min())

    @property
    def sine(self) -> np.ndarray:
        """Sine distance ``sqrt(1 - cos^2)`` per true atom."""
        return np.sqrt(np.clip(1.0 - self.cos**2, 0.0, 1.0))

    @property
    def mean_sine(self) -> float:
        """Mean sine distance."""
        return float(self.sine.mean())

    @property
    def max_sine(self) -> float:
        """Worst sine distance."""
        return float(self.sine.max())

    def as_dict(self) -> dict[str, float]:
        """The summary numbers, JSON-able."""
        return {
            "mean_cos": self.mean_cos,
            "min_cos": self.min_cos,
            "mean_sine": self.mean_sine,
            "max_sine": self.max_sine,
        }


def match_atoms(
    learned: np.ndarray | torch.Tensor,
    true: np.ndarray | torch.Tensor,
    *,
    shift_invariant: bool = False,
    ndim: int | None = None,
) -> Recovery:
    """Match learned atoms to true atoms (Hungarian algorithm on ``|cos|``).

    Parameters
    ----------
    learned : array or tensor, shape (p_learned, C, *grid) or (p_learned, m)
    true : array or tensor, shape (p_true, C, *grid) or (p_true, m)
    shift_invariant, ndim
        See :func:`similarity`.

    Returns
    -------
    Recovery
    """
    sim = similarity(learned, true, shift_invariant=shift_invariant, ndim=ndim)
    rows, cols = linear_sum_assignment(sim, maximize=True)
    cos = np.zeros(sim.shape[1])
    assignment = np.full(sim.shape[1], -1, dtype=np.int64)
    cos[cols] = sim[rows, cols]
    assignment[cols] = rows
    return Recovery(cos=cos, assignment=assignment)


def coherence(atoms: np.ndarray | torch.Tensor) -> float:
    """Mean off-diagonal ``|D^T D|`` of the unit-normalised atoms (columns of ``D``).

    Parameters
    ----------
    atoms : array or tensor, shape (p, ...)
        At least two atoms.
    """
    u = unit_normalize(atoms)
    p = u.shape[0]
    if p < 2:
        raise ShapeError("coherence needs at least two atoms")
    g = np.abs(u @ u.T)
    return float((g.sum() - np.trace(g)) / (p * (p - 1)))
