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


def best_lags(
    learned: np.ndarray | torch.Tensor, true: np.ndarray | torch.Tensor, assignment: np.ndarray
) -> np.ndarray:
    """Circular lag of each matched pair on a 1D grid: ``roll(learned[j], lag) ~ true[k]`` (up to sign).

    Parameters
    ----------
    learned, true : array or tensor, shape (p, C, n)
    assignment : numpy.ndarray of int, shape (p_true,)
        ``Recovery.assignment`` (-1 for unmatched true atoms, which get lag 0).

    Returns
    -------
    numpy.ndarray of int, shape (p_true,)
        The lag ``s`` that maximises ``|sum_y learned_j(y) . true_k(y + s)|``: a planted occurrence of
        atom k at grid position ``l`` is explained by a code of concept j at ``l + s``.
    """
    la, ta = _to_numpy(learned), _to_numpy(true)
    if la.ndim != 3 or la.shape[1:] != ta.shape[1:]:
        raise ShapeError(f"best_lags needs 1D atoms (p, C, n) on one grid, got {la.shape} and {ta.shape}")
    n = la.shape[-1]
    lags = np.zeros(ta.shape[0], dtype=np.int64)
    for k, j in enumerate(np.asarray(assignment)):
        if j < 0:
            continue
        cc = np.fft.irfft(np.conj(np.fft.rfft(la[j], axis=-1)) * np.fft.rfft(ta[k], axis=-1), n=n, axis=-1)
        lags[k] = int(np.abs(cc.sum(0)).argmax())
    return lags


def usage_evenness(active: np.ndarray | torch.Tensor) -> dict[str, float]:
    """How evenly a dictionary's concepts are used across samples.

    Parameters
    ----------
    active : array or tensor of bool, shape (N, p)
        Whether concept j fires anywhere in sample i.

    Returns
    -------
    dict
        ``"evenness"``: the effective number of concepts ``exp(H(u))`` over ``p``, where ``u_j`` is
        concept j's share of all (sample, concept) firings (1: every concept fires equally often;
        ``1/p``: one concept does all the work; 0 when nothing fires); ``"never"``: share of concepts
        that never fire; ``"max_share"``: the largest ``u_j``.
    """
    a = _to_numpy(active) > 0
    if a.ndim != 2:
        raise ShapeError(f"active must be (N, p), got {a.shape}")
    counts = a.sum(0).astype(np.float64)
    p, total = a.shape[1], counts.sum()
    if total == 0:
        return {"evenness": 0.0, "never": 1.0, "max_share": 0.0}
    u = counts / total
    h = -np.sum(u[u > 0] * np.log(u[u > 0]))
    return {
        "evenness": float(np.exp(h) / p),
        "never": float(np.mean(counts == 0)),
        "max_share": float(u.max()),
    }


def localisation_scores(
    codes: np.ndarray | torch.Tensor,
    sample: np.ndarray,
    concept: np.ndarray,
    position: np.ndarray,
    assignment: np.ndarray,
    lags: np.ndarray,
    *,
    radius: int = 1,
) -> dict[str, float]:
    """Whether learned code maps put their mass where the planted atoms occur (1D grids).

    Parameters
    ----------
    codes : array or tensor, shape (N, p_learned, n)
        Learned codes of N samples.
    sample, concept, position : numpy.ndarray of int, shape (M,)
        The planted occurrences: sample index, true concept, grid position.
    assignment, lags : numpy.ndarray of int, shape (p_true,)
        Matched learned concept and lag per true concept (:func:`match_atoms`, :func:`best_lags`).
    radius : int
        Tolerance in grid points.

    Returns
    -------
    dict
        ``"recall"``: share of planted occurrences whose matched concept has a nonzero code within
        ``radius`` points of ``position + lag``; ``"precision"``: share of the matched concepts' code
        mass ``sum |z|`` that lies within ``radius`` points of one of their expected positions in the
        same sample; ``"f1"``: their harmonic mean.
    """
    z = np.abs(_to_numpy(codes))
    if z.ndim != 3:
        raise ShapeError(f"codes must be (N, p, n), got {z.shape}")
    n = z.shape[-1]
    near = np.zeros_like(z, dtype=bool)
    hits, counted = 0, 0
    offsets = np.arange(-radius, radius + 1)
    for i, k, pos in zip(np.asarray(sample), np.asarray(concept), np.asarray(position)):
        j = assignment[k]
        if j < 0:
            continue
        window = (int(pos) + int(lags[k]) + offsets) % n
        counted += 1
        hits += bool(np.any(z[i, j, window] > 0))
        near[i, j, window] = True
    matched = np.unique(assignment[assignment >= 0])
    mass = z[:, matched].sum()
    precision = float(z[:, matched][near[:, matched]].sum() / mass) if mass > 0 else 0.0
    recall = hits / counted if counted else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"recall": float(recall), "precision": precision, "f1": float(f1)}
