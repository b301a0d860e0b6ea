"""Concepts that move: per concept, how its activation frequency and magnitude change between the
training store and a shifted store, with a two-sided Mann-Whitney test on the per-sample magnitudes
(the RMS code over the grid, zero where inactive) and Benjamini-Hochberg q-values over concepts."""

from __future__ import annotations

from typing import Any

import numpy as np

from saeno.audit.stats import benjamini_hochberg, mann_whitney_p

#: a concept is "switched on" by a shift when it is active in at most OFF_FREQ of the training samples
#: and in at least ON_FREQ of the shifted ones (and significantly so); "switched off" the other way
OFF_FREQ = 0.05
ON_FREQ = 0.2


def concept_moves(train_mag: np.ndarray, shifted_mag: np.ndarray, alpha: float = 0.05) -> dict[str, Any]:
    """Frequency and magnitude change of every concept, its p- and q-value, and the switched ones.

    Parameters
    ----------
    train_mag, shifted_mag
        ``(n, p)`` per-sample concept magnitudes of the training and the shifted store.
    alpha
        False-discovery rate for calling a concept significantly moved.
    """
    f0, f1 = (train_mag > 0).mean(0), (shifted_mag > 0).mean(0)
    m0, m1 = train_mag.mean(0), shifted_mag.mean(0)
    p = np.array([mann_whitney_p(train_mag[:, k], shifted_mag[:, k]) for k in range(train_mag.shape[1])])
    q = benjamini_hochberg(p)
    sig = np.nan_to_num(q, nan=1.0) < alpha
    on = [int(k) for k in np.flatnonzero(sig & (f0 <= OFF_FREQ) & (f1 >= ON_FREQ))]
    off = [int(k) for k in np.flatnonzero(sig & (f1 <= OFF_FREQ) & (f0 >= ON_FREQ))]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(m0 > 0, m1 / m0, np.where(m1 > 0, np.inf, 1.0))
    order = np.argsort(np.nan_to_num(q, nan=1.0), kind="stable")

    def fl(v: np.ndarray) -> list[float | None]:
        return [None if not np.isfinite(x) else float(x) for x in v]

    return {
        "alpha": alpha,
        "test": "two-sided Mann-Whitney U on per-sample magnitudes, BH q-values",
        "freq_train": fl(f0),
        "freq_shifted": fl(f1),
        "magnitude_train": fl(m0),
        "magnitude_shifted": fl(m1),
        "magnitude_ratio": fl(ratio),
        "p": fl(p),
        "q": fl(q),
        "n_significant": int(sig.sum()),
        "switched_on": on,
        "switched_off": off,
        "most_moved": [int(k) for k in order[:10] if sig[k]],
    }
