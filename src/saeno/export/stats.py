"""Per-concept statistics from SAE codes: activations, densities, histograms, examples, correlations.

Pure numpy/torch functions with no store, model or file access, so each can be tested on hand-made
codes. Definitions (repeated in the report):

- a concept's *activation* on a sample is the root-mean-square of its code map over the grid,
  ``sqrt(mean_x z_k(x)^2)`` (a resolution-free L2 norm), or ``|z_k|`` for a flat SAE;
- it is *active* on a sample when that activation is non-zero;
- *sample density* is the share of samples where it is active, *point density* the share of
  (sample, grid point) pairs where its code is non-zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)

DEFINITIONS = {
    "activation": "root-mean-square of the concept's code map over the grid, sqrt(mean_x z_k(x)^2) "
    "(|z_k| for a flat SAE)",
    "sample density": "share of samples where the activation is non-zero",
    "point density": "share of (sample, grid point) pairs where the code is non-zero",
    "mean activation": "mean activation over the samples where the concept is active",
    "rank": "order by mean activation over all samples (0 = most active)",
    "correlation": "Pearson correlation of per-sample activations over the exported samples",
    "quantile examples": "active samples whose activation is nearest each quantile of the active activations",
}
DEFINITIONS_SUPERVISED = {
    "code map (supervised SAE)": "size of the label block's contribution to the reconstruction at each "
    "point, RMS over channels of D(m, n) - D(m - e_k, n) in raw units; "
    "0 on samples without the label",
    "activation (supervised SAE)": "root-mean-square of that map over the grid: non-zero exactly on "
    "the samples that carry the concept's label",
}


def concept_activations(z: torch.Tensor) -> torch.Tensor:
    """Per-sample activation of each concept.

    Parameters
    ----------
    z : torch.Tensor
        Codes ``(B, p, *grid)`` (pointwise SAE, SAE-FNO) or ``(B, p)`` (flat SAE).

    Returns
    -------
    torch.Tensor
        ``(B, p)``: the root-mean-square of each code map over the grid, or ``|z|`` for flat codes.
    """
    if z.ndim < 2:
        raise ValueError(f"codes must be (B, p) or (B, p, *grid), got shape {tuple(z.shape)}")
    if z.ndim == 2:
        return z.abs()
    return z.pow(2).flatten(2).mean(dim=2).sqrt()


def nonzero_points(z: torch.Tensor) -> torch.Tensor | None:
    """Number of non-zero code entries per concept, summed over batch and grid; ``None`` for flat codes."""
    if z.ndim == 2:
        return None
    return (z != 0).transpose(0, 1).flatten(1).sum(dim=1)


@dataclass
class ConceptStats:
    """Statistics of all ``p`` concepts over ``N`` samples (numpy arrays, concepts along axis 0)."""

    sample_density: np.ndarray  # (p,)
    point_density: np.ndarray | None  # (p,), None for a flat SAE
    mean_activation: np.ndarray  # (p,) over active samples, 0 for dead concepts
    max_activation: np.ndarray  # (p,)
    mean_all: np.ndarray  # (p,) over all samples: the ranking score
    rank: np.ndarray  # (p,) rank of each concept, 0 = most active
    hist_counts: np.ndarray  # (p, n_bins)
    hist_edges: np.ndarray  # (p, n_bins + 1)


def summarize(
    acts: np.ndarray, nonzero: np.ndarray | None = None, n_points: int | None = None, n_bins: int = 20
) -> ConceptStats:
    """Summarise per-sample activations ``(N, p)`` into per-concept statistics.

    Parameters
    ----------
    acts : numpy.ndarray
        ``(N, p)`` activations from :func:`concept_activations`.
    nonzero : numpy.ndarray, optional
        ``(p,)`` non-zero code counts from :func:`nonzero_points`, summed over the ``N`` samples.
    n_points : int, optional
        Grid points per sample (needed with ``nonzero``).
    n_bins : int
        Histogram bins, spanning ``[0, max activation]`` of each concept.
    """
    acts = np.asarray(acts, dtype=np.float64)
    n, p = acts.shape
    if n == 0:
        raise ValueError("no samples to summarise")
    active = acts > 0
    n_active = active.sum(axis=0)
    sample_density = n_active / n
    sums = np.where(active, acts, 0.0).sum(axis=0)
    mean_activation = np.divide(sums, n_active, out=np.zeros(p), where=n_active > 0)
    max_activation = acts.max(axis=0)
    mean_all = acts.mean(axis=0)
    order = np.argsort(-mean_all, kind="stable")
    rank = np.empty(p, dtype=np.int64)
    rank[order] = np.arange(p)
    point_density = None
    if nonzero is not None:
        if not n_points:
            raise ValueError("n_points is needed with nonzero")
        point_density = np.asarray(nonzero, dtype=np.float64) / (n * n_points)
    counts = np.zeros((p, n_bins), dtype=np.int64)
    edges = np.zeros((p, n_bins + 1))
    for k in range(p):
        hi = max_activation[k] if max_activation[k] > 0 else 1.0
        edges[k] = np.linspace(0.0, hi, n_bins + 1)
        if n_active[k]:
            counts[k], _ = np.histogram(acts[active[:, k], k], bins=edges[k])
    return ConceptStats(
        sample_density, point_density, mean_activation, max_activation, mean_all, rank, counts, edges
    )


def top_examples(acts_k: np.ndarray, n_top: int) -> list[tuple[int, float]]:
    """The ``n_top`` samples where a concept is most active, as ``(row, activation)``, active only.

    Ties are broken by the lower row.
    """
    acts_k = np.asarray(acts_k, dtype=np.float64)
    order = np.argsort(-acts_k, kind="stable")[:n_top]
    return [(int(i), float(acts_k[i])) for i in order if acts_k[i] > 0]


def quantile_examples(
    acts_k: np.ndarray, quantiles: Sequence[float] = QUANTILES
) -> list[tuple[float, int, float]]:
    """For each quantile of the active activations, the active sample nearest it.

    Returns ``(quantile, row, activation)`` triples; empty for a dead concept.
    """
    acts_k = np.asarray(acts_k, dtype=np.float64)
    rows = np.flatnonzero(acts_k > 0)
    if rows.size == 0:
        return []
    values = acts_k[rows]
    out = []
    for q in quantiles:
        target = np.quantile(values, q)
        j = int(np.argmin(np.abs(values - target)))
        out.append((float(q), int(rows[j]), float(values[j])))
    return out


def _standardize(acts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    acts = np.asarray(acts, dtype=np.float64)
    centred = acts - acts.mean(axis=0)
    norm = np.sqrt((centred**2).sum(axis=0))
    ok = norm > 1e-12 * max(1.0, float(np.abs(acts).max(initial=0.0)))
    unit = np.divide(centred, norm, out=np.zeros_like(centred), where=ok)
    return unit, ok


def correlation_matrix(acts: np.ndarray) -> np.ndarray:
    """Pearson correlation ``(p, p)`` of per-sample activations; NaN where a column is constant."""
    unit, ok = _standardize(acts)
    corr = unit.T @ unit
    corr[~ok, :] = np.nan
    corr[:, ~ok] = np.nan
    return corr


def top_correlated(
    acts: np.ndarray, concepts: Sequence[int], n: int = 5, chunk: int = 256
) -> dict[int, list[tuple[int, float]]]:
    """For each concept in ``concepts``, the ``n`` other concepts with the largest ``|correlation|``.

    Computed in chunks so that a large dictionary never needs the full ``(p, p)`` matrix.
    Concepts whose activation is constant over the samples (dead ones) have no correlations.
    """
    unit, ok = _standardize(acts)
    out: dict[int, list[tuple[int, float]]] = {}
    concepts = [int(k) for k in concepts]
    for start in range(0, len(concepts), chunk):
        ks = concepts[start : start + chunk]
        corr = unit[:, ks].T @ unit  # (len(ks), p)
        for row, k in enumerate(ks):
            if not ok[k]:
                out[k] = []
                continue
            c = corr[row].copy()
            c[k] = 0.0
            c[~ok] = 0.0
            order = np.argsort(-np.abs(c), kind="stable")[:n]
            out[k] = [(int(j), float(np.clip(c[j], -1.0, 1.0))) for j in order if ok[j]]
    return out


def param_enrichment(
    acts_k: np.ndarray, top_rows: Sequence[int], params: Mapping[str, np.ndarray]
) -> dict[str, dict[str, float | None]]:
    """Mean of each PDE parameter on a concept's top samples versus over all samples.

    Parameters
    ----------
    acts_k : numpy.ndarray
        ``(N,)`` activations of the concept.
    top_rows : sequence of int
        Its top samples.
    params : mapping of str to numpy.ndarray
        ``(N,)`` parameter values per sample (rows aligned with ``acts_k``).

    Returns
    -------
    dict
        ``{name: {"top_mean", "overall_mean", "overall_std", "correlation"}}``; the correlation is
        Pearson between the parameter and the activation, ``None`` where either is constant.
    """
    acts_k = np.asarray(acts_k, dtype=np.float64)
    out: dict[str, dict[str, float | None]] = {}
    rows = list(top_rows)
    for name, values in params.items():
        values = np.asarray(values, dtype=np.float64)
        if values.shape != acts_k.shape:
            continue
        corr = None
        if values.std() > 0 and acts_k.std() > 0:
            corr = float(np.corrcoef(values, acts_k)[0, 1])
        out[name] = {
            "top_mean": float(values[rows].mean()) if rows else float("nan"),
            "overall_mean": float(values.mean()),
            "overall_std": float(values.std()),
            "correlation": corr,
        }
    return out


def label_enrichment(top_rows: Sequence[int], labels: Mapping[str, Sequence[str]]) -> dict[str, dict]:
    """Share of each label value on a concept's top samples versus over all samples.

    Parameters
    ----------
    top_rows : sequence of int
        The concept's top samples.
    labels : mapping of str to sequence of str
        Per-sample label of each categorical factor.

    Returns
    -------
    dict
        ``{factor: {"top": {value: share}, "overall": {value: share}, "enriched": value or None}}``;
        ``enriched`` is the value whose share grows most on the top samples (None if none grows).
    """
    out: dict[str, dict] = {}
    rows = list(top_rows)
    for factor, values in labels.items():
        values = [str(v) for v in values]
        if not values:
            continue
        uniq, counts = np.unique(values, return_counts=True)
        overall = {str(u): float(c) / len(values) for u, c in zip(uniq, counts)}
        top: dict[str, float] = {}
        for r in rows:
            top[values[r]] = top.get(values[r], 0.0) + 1.0 / len(rows)
        gains = {v: top.get(v, 0.0) - overall[v] for v in overall}
        best = max(gains, key=lambda v: gains[v]) if gains else None
        enriched = best if best is not None and gains[best] > 1e-9 else None
        out[factor] = {"top": top, "overall": overall, "enriched": enriched}
    return out


__all__ = [
    "DEFINITIONS",
    "DEFINITIONS_SUPERVISED",
    "QUANTILES",
    "ConceptStats",
    "concept_activations",
    "correlation_matrix",
    "label_enrichment",
    "nonzero_points",
    "param_enrichment",
    "quantile_examples",
    "summarize",
    "top_correlated",
    "top_examples",
]
