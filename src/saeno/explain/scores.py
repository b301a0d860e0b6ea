"""Scores of a code map against probe fields: Spearman over points, AUROC of "active", IoU, nulls.

Pure numpy on flat arrays of points (the points of the samples being scored, concatenated), so every
statistic can be checked by hand. Ranks average ties (indicator probes and sparse codes have many).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: quantiles of the probe tried as the threshold "concept active where the probe is above q"
QUANTILE_GRID = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2))


def _ranks_1d(v: np.ndarray) -> np.ndarray:
    order = np.argsort(v)  # introsort: ties are averaged below, so their order does not matter
    s = v[order]
    new = np.empty(s.size, dtype=bool)
    new[:1] = True
    np.not_equal(s[1:], s[:-1], out=new[1:])
    group = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], s.size)
    out = np.empty(s.size, dtype=np.float64)
    out[order] = 0.5 * (starts + ends + 1)[group]  # mean of 1-based ranks start+1 .. end
    return out


def ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (ties get the mean of their ranks) along the last axis, as float64 (1..M)."""
    values = np.asarray(values)
    flat = values.reshape(-1, values.shape[-1])
    out = np.stack([_ranks_1d(row) for row in flat]) if flat.shape[0] else flat.astype(np.float64)
    return out.reshape(values.shape)


def standardize(r: np.ndarray) -> np.ndarray:
    """Centre and scale along the last axis so that a dot product / M is a correlation (0 if constant)."""
    c = r - r.mean(axis=-1, keepdims=True)
    s = np.sqrt(np.mean(c * c, axis=-1, keepdims=True))
    return np.divide(c, s, out=np.zeros_like(c), where=s > 0)


def spearman_many(code: np.ndarray, probes: np.ndarray) -> np.ndarray:
    """Spearman correlation of one map ``(M,)`` with each of ``(J, M)`` probes (0 for a constant one)."""
    zc = standardize(ranks(code))
    zp = standardize(ranks(probes))
    return zp @ zc / code.shape[-1]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation of two flat arrays (0 when either is constant)."""
    return float(spearman_many(a, b[None])[0])


def auroc(positive: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the ROC curve of ``score`` for the boolean labels ``positive`` (ties count half).

    None when every label is the same.
    """
    positive = np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    return auroc_from_ranks(positive, ranks(score))


def auroc_from_ranks(positive: np.ndarray, r: np.ndarray) -> float | None:
    """:func:`auroc` from the average ranks ``r`` of the score (Mann-Whitney U)."""
    positive = np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    return float((r[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def iou(a: np.ndarray, b: np.ndarray) -> float | None:
    """Intersection over union of two boolean arrays (None when both are empty)."""
    union = np.logical_or(a, b).sum()
    if union == 0:
        return None
    return float(np.logical_and(a, b).sum() / union)


def best_quantile(
    active: np.ndarray, score: np.ndarray, grid: Sequence[float] = QUANTILE_GRID
) -> tuple[float, float | None]:
    """The probe quantile ``q`` whose upper set ``score > Q_q(score)`` best matches ``active`` (IoU)."""
    best_q, best = float(grid[0]), None
    levels = np.quantile(score, grid)
    for q, level in zip(grid, levels):
        v = iou(active, score > level)
        if v is not None and (best is None or v > best):
            best_q, best = float(q), v
    return best_q, best


def above_quantile(score: np.ndarray, q: float) -> np.ndarray:
    """``score > Q_q(score)``: the probe's upper set at the quantile level ``q``."""
    return score > np.quantile(score, q)


def conjunction(r_a: np.ndarray, r_b: np.ndarray) -> np.ndarray:
    """Fuzzy AND of two probes given by their ranks: the product of the normalised ranks.

    High only where both probes are high; monotone in each, so it is a ranking like any probe.
    """
    return (r_a / r_a.size) * (r_b / r_b.size)


def normalized_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks divided by the count, in (0, 1]."""
    return ranks(values) / values.shape[-1]


# ---------------------------------------------------------------------------------------------
# the shuffled-sample null


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random permutation of ``range(n)`` without fixed points (``n >= 2``)."""
    order = rng.permutation(n)
    out = np.empty(n, dtype=np.int64)
    out[order] = np.roll(order, -1)  # each element maps to the next one of a random cycle
    return out


def shuffled_sample_null(
    zc: np.ndarray, zp: np.ndarray, n_draws: int, rng: np.random.Generator
) -> np.ndarray:
    """Correlations of the code with the probe of *other* samples, one per random derangement.

    ``zc`` and ``zp`` are ``(S, P)``: standardised ranks (over all ``S * P`` points) of the code and
    of the probe, per sample. Swapping whole samples permutes the points, so the ranks stay valid and
    the correlation under a derangement ``d`` is ``sum_i zc_i . zp_d(i) / (S P)``: one Gram matrix.
    """
    s = zc.shape[0]
    gram = zc @ zp.T  # (S, S)
    order = np.argsort(rng.random((n_draws, s)), axis=1)  # a random cycle through the samples per draw
    draws = np.empty_like(order)
    np.put_along_axis(draws, order, np.roll(order, -1, axis=1), axis=1)
    return gram[np.arange(s)[None, :], draws].sum(axis=1) / zc.size


def allowed_shifts(grid: Sequence[int]) -> np.ndarray:
    """Boolean ``(*grid)`` mask of the circular shifts of at least a quarter of every axis."""
    masks = []
    for n in grid:
        k = np.arange(n)
        q = max(1, n // 4)
        masks.append((k >= q) & (k <= n - q))
    out = masks[0]
    for m in masks[1:]:
        out = out[..., None] & m
    return out


def shifted_null(zc: np.ndarray, zp: np.ndarray, grid: Sequence[int]) -> np.ndarray:
    """Correlations of the code with the probe shifted circularly by at least a quarter of every axis.

    For probes that are the same field on every sample (coordinates, boundary distance), where
    swapping samples changes nothing. Every allowed shift is one null value (all shifts at once by the
    FFT: the circular cross-correlation of code and probe, summed over samples).
    """
    axes = tuple(range(1, len(grid) + 1))
    a = np.fft.rfftn(zc.reshape(-1, *grid), axes=axes)
    b = np.fft.rfftn(zp.reshape(-1, *grid), axes=axes)
    cross = np.fft.irfftn((a * np.conj(b)).sum(axis=0), s=tuple(grid), axes=tuple(range(len(grid))))
    return cross[allowed_shifts(grid)] / zc.size


def is_sample_invariant(values: np.ndarray, tol: float = 1e-6) -> bool:
    """Whether a ``(N, *grid)`` probe is (nearly) the same field on every sample."""
    flat = values.reshape(values.shape[0], -1)
    total = flat.var()
    if total == 0:
        return True
    return float(flat.var(axis=0).mean() / total) < tol


__all__ = [
    "QUANTILE_GRID",
    "above_quantile",
    "allowed_shifts",
    "auroc",
    "auroc_from_ranks",
    "best_quantile",
    "conjunction",
    "derangement",
    "iou",
    "is_sample_invariant",
    "normalized_ranks",
    "ranks",
    "shifted_null",
    "shuffled_sample_null",
    "spearman",
    "spearman_many",
    "standardize",
]
