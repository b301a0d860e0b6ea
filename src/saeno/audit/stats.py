"""Statistics of the audit: percentile bootstrap over samples, AUROC and ROC curves, rank correlation,
the Ledoit-Wolf shrinkage covariance and the Benjamini-Hochberg correction.

Everything works on numpy arrays and knows nothing of stores or SAEs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats as _st


def bootstrap_weights(n: int, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """``(n_boot, n)`` multiplicities of each sample in ``n_boot`` resamples with replacement."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    w = np.zeros((n_boot, n), dtype=np.float64)
    np.add.at(w, (np.repeat(np.arange(n_boot), n), idx.ravel()), 1.0)
    return w


def percentile_interval(boot: np.ndarray, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper percentile bounds over axis 0 of bootstrap replicates (NaNs ignored)."""
    alpha = (1.0 - level) / 2.0
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lo = np.nanquantile(boot, alpha, axis=0)
            hi = np.nanquantile(boot, 1.0 - alpha, axis=0)
    return lo, hi


def bootstrap_ratio_of_sums(
    num: np.ndarray, den: np.ndarray, weights: np.ndarray, level: float = 0.9
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimate and percentile interval of ``sum_i num[i] / sum_i den[i]`` (per column) over samples.

    ``num`` and ``den`` are ``(n,)`` or ``(n, K)`` per-sample sums; ``weights`` from
    :func:`bootstrap_weights`. A mean is the case ``den = 1``.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        est = num.sum(0) / den.sum(0)
        boot = (weights @ num) / (weights @ den)
    lo, hi = percentile_interval(boot, level)
    return est, lo, hi


def bootstrap_statistic(
    stat: Callable[[np.ndarray], np.ndarray | float],
    n: int,
    n_boot: int = 1000,
    level: float = 0.9,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Percentile bootstrap of any statistic ``stat(rows)`` of resampled sample indices (slow path)."""
    rng = np.random.default_rng(seed)
    est = np.asarray(stat(np.arange(n)), dtype=np.float64)
    boot = np.stack([np.asarray(stat(rng.integers(0, n, n)), dtype=np.float64) for _ in range(n_boot)])
    lo, hi = percentile_interval(boot, level)
    return est, lo, hi


def auroc(negatives: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve of a score that should be higher on ``positives``.

    The Mann-Whitney estimate ``P(s+ > s-) + P(s+ = s-) / 2`` (ties count half): exactly 0.5 when the
    two samples are identical, 1.0 when every positive scores above every negative.
    """
    neg = np.asarray(negatives, dtype=np.float64).ravel()
    pos = np.asarray(positives, dtype=np.float64).ravel()
    neg, pos = neg[np.isfinite(neg)], pos[np.isfinite(pos)]
    if not len(neg) or not len(pos):
        return float("nan")
    ranks = _st.rankdata(np.concatenate([neg, pos]))
    u = ranks[len(neg) :].sum() - len(pos) * (len(pos) + 1) / 2.0
    return float(u / (len(neg) * len(pos)))


def roc_curve(negatives: np.ndarray, positives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every threshold (from the highest score down), ties grouped."""
    neg = np.asarray(negatives, dtype=np.float64).ravel()
    pos = np.asarray(positives, dtype=np.float64).ravel()
    scores = np.concatenate([neg, pos])
    label = np.concatenate([np.zeros(len(neg)), np.ones(len(pos))])
    order = np.argsort(-scores, kind="stable")
    s, lab = scores[order], label[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    tp = np.cumsum(lab)[last]
    fp = np.cumsum(1 - lab)[last]
    fpr = np.r_[0.0, fp / max(len(neg), 1)]
    tpr = np.r_[0.0, tp / max(len(pos), 1)]
    return fpr, tpr


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (NaN when fewer than three finite pairs or a constant input)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return float("nan")
    ra, rb = _st.rankdata(a[ok]), _st.rankdata(b[ok])
    return float(np.corrcoef(ra, rb)[0, 1])  # Pearson of the ranks (ties: mid-ranks)


def ledoit_wolf(features: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean, Ledoit-Wolf shrinkage covariance and shrinkage intensity of ``(n, d)`` features.

    The covariance is ``(1 - s) S + s mu I`` with ``S`` the sample covariance (divided by n),
    ``mu = trace(S) / d`` and ``s`` the Ledoit-Wolf (2004) estimate of the optimal intensity.
    """
    x = np.asarray(features, dtype=np.float64)
    n, d = x.shape
    mean = x.mean(0)
    xc = x - mean
    s = xc.T @ xc / n
    mu = np.trace(s) / d
    delta = ((s - mu * np.eye(d)) ** 2).sum() / d
    beta = sum(((np.outer(r, r) - s) ** 2).sum() for r in xc) / (n * n * d)
    beta = min(beta, delta)
    shrink = 0.0 if delta == 0 else beta / delta
    return mean, (1 - shrink) * s + shrink * mu * np.eye(d), float(shrink)


def mann_whitney_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Mann-Whitney U test p-value (1.0 when both samples are constant and equal)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if not len(a) or not len(b):
        return float("nan")
    if np.ptp(np.concatenate([a, b])) == 0:
        return 1.0
    return float(_st.mannwhitneyu(a, b, alternative="two-sided").pvalue)


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values) of a vector of p-values (NaNs kept)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    pv = p[ok]
    m = len(pv)
    if not m:
        return q
    order = np.argsort(pv)
    ranked = pv[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    q[ok] = out
    return q
