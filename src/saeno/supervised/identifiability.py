"""How well can *any* edit that sees only the factual sample predict a counterfactual? An estimated floor.

An intervention changes a sample's labels and should produce the counterfactual: the same nuisance under
the new labels. When the factual sample does not determine that nuisance (a bump profile says nothing
about the duty cycle the same sample would have had as a step), no edit can reach the counterfactual,
however good. The floor of a counterfactual target is the smallest relative L2 error that a predictor
seeing only the factual sample (and its old and new labels) can reach. It is estimated here from above by
oracles fitted on reference pairs ``(factual sample, counterfactual solution)`` and scored on held-out
pairs:

- :func:`aligned_neighbours`: the ``k`` reference samples of the same label combination nearest to the
  query after the best circular shift (1D periodic fields, found at sub-grid resolution by the
  band-limited cross-correlation); the prediction is the mean of their counterfactuals moved by the same
  shifts. It suits problems whose solution moves with the initial condition (periodic, translation
  equivariant: Burgers with constant drift).
- :func:`ridge_oracle`: a ridge regression from the flattened factual field and the one-hot combination
  to the flattened counterfactual.

:func:`floor` takes the best of them. Any oracle's error bounds the true floor from above: a smaller
figure only says the target is *more* identifiable than these oracles can show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from saeno.errors import SaenoError
from saeno.supervised.intervene import rel_l2 as _rel_l2


def fourier_shift(a: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Periodic fields ``a (B, C, n)`` moved right by ``tau (B,)`` grid cells (fractional allowed):
    ``out(x) = a(x - tau)`` for the band-limited interpolant of ``a``."""
    n = a.shape[-1]
    k = np.fft.rfftfreq(n, d=1.0 / n)
    phase = np.exp(-2j * np.pi * k[None, :] * np.asarray(tau, dtype=np.float64)[:, None] / n)
    return np.fft.irfft(np.fft.rfft(a, axis=-1) * phase[:, None, :], n=n, axis=-1)


def best_shifts(query: np.ndarray, ref: np.ndarray, upsample: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """For every pair (query ``q``, reference ``r``) the circular shift ``tau`` (in grid cells, a
    multiple of ``1 / upsample``) that minimises ``||q - shift(r, tau)||^2``, and that squared distance.

    Parameters
    ----------
    query, ref : numpy.ndarray
        ``(Q, C, n)`` and ``(R, C, n)`` periodic fields.
    upsample : int
        Shift resolution: ``upsample`` candidate shifts per grid cell.

    Returns
    -------
    tau, dist2 : numpy.ndarray
        ``(Q, R)`` each.
    """
    n = query.shape[-1]
    if ref.shape[1:] != query.shape[1:]:
        raise SaenoError(f"query fields {query.shape[1:]} and reference fields {ref.shape[1:]} differ")
    qa, ra = np.fft.rfft(query, axis=-1), np.fft.rfft(ref, axis=-1)
    cross = (qa[:, None] * np.conj(ra[None, :])).sum(2)  # (Q, R, K), summed over channels
    m = n * upsample
    corr = np.fft.irfft(cross, n=m, axis=-1) * upsample  # <q, shift(r, j / upsample)> for j < m
    j = corr.argmax(-1)
    tau = j / upsample
    tau = np.where(tau > n / 2, tau - n, tau)
    best = np.take_along_axis(corr, j[..., None], -1)[..., 0]
    dist2 = (query**2).sum((1, 2))[:, None] + (ref**2).sum((1, 2))[None, :] - 2 * best
    return tau, np.maximum(dist2, 0.0)


def aligned_neighbours(
    x_ref: np.ndarray,
    y_ref: np.ndarray,
    group_ref: np.ndarray,
    x_query: np.ndarray,
    group_query: np.ndarray,
    k: int = 1,
    upsample: int = 8,
) -> np.ndarray:
    """Predict each query's counterfactual as the mean of its ``k`` shift-aligned nearest reference
    samples' counterfactuals (same group only; see the module docstring).

    Parameters
    ----------
    x_ref, y_ref : numpy.ndarray
        Reference factual inputs ``(R, C, n)`` and their counterfactual solutions ``(R, C', n)``.
    group_ref, group_query : numpy.ndarray
        ``(R,)`` and ``(Q,)`` group ids (the factual label combination).
    x_query : numpy.ndarray
        Query inputs ``(Q, C, n)``.
    k : int
        Neighbours averaged.
    upsample : int
        Shift resolution (see :func:`best_shifts`).

    Returns
    -------
    numpy.ndarray
        Predicted counterfactuals ``(Q, C', n)``.
    """
    x_ref, y_ref = np.asarray(x_ref, np.float64), np.asarray(y_ref, np.float64)
    x_query = np.asarray(x_query, np.float64)
    if x_ref.ndim != 3:
        raise SaenoError("aligned_neighbours handles 1D fields (B, C, n); use ridge_oracle for others")
    out = np.empty((len(x_query), *y_ref.shape[1:]))
    for g in np.unique(group_query):
        qi = np.flatnonzero(group_query == g)
        ri = np.flatnonzero(group_ref == g)
        if len(ri) == 0:
            raise SaenoError(f"group {g} has no reference samples: give references of every combination")
        tau, d2 = best_shifts(x_query[qi], x_ref[ri], upsample)
        kk = min(k, len(ri))
        near = np.argsort(d2, axis=1)[:, :kk]
        for q, row in zip(qi, range(len(qi))):
            moved = fourier_shift(y_ref[ri[near[row]]], tau[row, near[row]])
            out[q] = moved.mean(0)
    return out


def ridge_oracle(
    x_ref: np.ndarray,
    y_ref: np.ndarray,
    group_ref: np.ndarray,
    x_query: np.ndarray,
    group_query: np.ndarray,
    alpha: float = 1e-2,
) -> np.ndarray:
    """Ridge regression from ``[flattened x, one-hot group]`` to the flattened counterfactual."""
    groups = np.unique(np.concatenate([group_ref, group_query]))

    def feats(x: np.ndarray, g: np.ndarray) -> np.ndarray:
        onehot = (np.asarray(g)[:, None] == groups[None, :]).astype(np.float64)
        return np.concatenate([np.asarray(x, np.float64).reshape(len(x), -1), onehot], axis=1)

    f_ref, f_q = feats(x_ref, group_ref), feats(x_query, group_query)
    y = np.asarray(y_ref, np.float64).reshape(len(y_ref), -1)
    fm, ym = f_ref.mean(0), y.mean(0)
    fc = f_ref - fm
    w = np.linalg.solve(fc.T @ fc + alpha * len(fc) * np.eye(fc.shape[1]), fc.T @ (y - ym))
    return ((f_q - fm) @ w + ym).reshape(len(x_query), *y_ref.shape[1:])


@dataclass
class Floor:
    """An estimated identifiability floor.

    Attributes
    ----------
    value : float
        The best oracle's mean relative L2 on the query pairs.
    best : str
        Which oracle reached it.
    oracles : dict of str to float
        Every oracle's mean relative L2.
    """

    value: float
    best: str
    oracles: dict[str, float] = field(default_factory=dict)


def floor(
    x_ref: np.ndarray,
    y_ref: np.ndarray,
    group_ref: np.ndarray,
    x_query: np.ndarray,
    y_query: np.ndarray,
    group_query: np.ndarray,
    *,
    ks: Sequence[int] = (1, 4, 16),
    extra: Mapping[str, np.ndarray] | None = None,
) -> Floor:
    """The best mean relative L2 the oracles reach on the query pairs (see the module docstring).

    Parameters
    ----------
    x_ref, y_ref, group_ref : numpy.ndarray
        Reference pairs (factual input, counterfactual solution) and their groups.
    x_query, y_query, group_query : numpy.ndarray
        Held-out pairs the oracles are scored on.
    ks : sequence of int
        Neighbour counts of :func:`aligned_neighbours` to try (1D fields only).
    extra : dict, optional
        Further predictions of ``y_query`` from the factual samples alone (e.g. the operator applied to
        a counterfactual input that is a known function of the factual one), scored alongside.

    Returns
    -------
    Floor
    """
    scores: dict[str, float] = {}
    if np.asarray(x_ref).ndim == 3:
        for k in ks:
            pred = aligned_neighbours(x_ref, y_ref, group_ref, x_query, group_query, k=k)
            scores[f"aligned {k}-NN"] = float(_rel_l2(pred, np.asarray(y_query)).mean())
    pred = ridge_oracle(x_ref, y_ref, group_ref, x_query, group_query)
    scores["ridge"] = float(_rel_l2(pred, np.asarray(y_query)).mean())
    for name, p in (extra or {}).items():
        scores[name] = float(_rel_l2(np.asarray(p, np.float64), np.asarray(y_query)).mean())
    best = min(scores, key=scores.__getitem__)
    return Floor(scores[best], best, scores)


__all__ = ["Floor", "aligned_neighbours", "best_shifts", "floor", "fourier_shift", "ridge_oracle"]
