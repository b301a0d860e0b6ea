"""Baselines for supervised SAEs: ridge regression from labels, mean-difference steering, and an
unsupervised SAE with linear probes.

- :class:`RidgeFromLabels`: ``a ~ W m + b`` with ``m`` the one-hot label mask (closed-form ridge on the
  flattened field). It reconstructs a sample from its labels only (it never sees the sample), and edits
  by ``a' = a + R(m') - R(m)``.
- :class:`MeanDifference`: per factor, the mean field of each category over the training rows; an edit
  ``f: old -> new`` adds ``mean[f=new] - mean[f=old]`` (the classic steering vector).
- :func:`unsupervised_with_probes`: an SAE-FNO (TopK) trained without labels on the same rows, its
  reconstruction and logistic-regression probes from its per-concept code norms to each factor, scored
  on named splits (seen combinations and held-out combinations).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from saeno.errors import SaenoError


def one_hot(codes: Mapping[str, np.ndarray], factors: Mapping[str, Sequence[str]]) -> np.ndarray:
    """Concatenated one-hot masks ``(N, p)`` in ``factors`` order."""
    parts = [np.eye(len(c))[np.asarray(codes[f], dtype=np.int64)] for f, c in factors.items()]
    return np.concatenate(parts, axis=1)


def explained_variance(a: np.ndarray | torch.Tensor, a_hat: np.ndarray | torch.Tensor) -> float:
    """``1 - sum ||a - a_hat||^2 / sum ||a - mean(a)||^2`` (mean over samples, per channel and point)."""
    a = np.asarray(a, dtype=np.float64)
    a_hat = np.asarray(a_hat, dtype=np.float64)
    return float(1.0 - ((a - a_hat) ** 2).sum() / ((a - a.mean(axis=0, keepdims=True)) ** 2).sum())


class RidgeFromLabels:
    """Ridge regression from the one-hot label mask to the flattened field.

    Parameters
    ----------
    factors : dict
        ``{factor: [category names]}``.
    alpha : float
        Ridge penalty on the (centred) weights.
    """

    def __init__(self, factors: Mapping[str, Sequence[str]], alpha: float = 1e-2) -> None:
        self.factors = {f: list(c) for f, c in factors.items()}
        self.alpha = float(alpha)
        self.coef: np.ndarray | None = None
        self.intercept: np.ndarray | None = None
        self.shape: tuple[int, ...] = ()

    def fit(self, a: np.ndarray, codes: Mapping[str, np.ndarray]) -> RidgeFromLabels:
        """Fit on fields ``a (N, C, *grid)`` with label codes."""
        a = np.asarray(a, dtype=np.float64)
        self.shape = a.shape[1:]
        m = one_hot(codes, self.factors)
        y = a.reshape(len(a), -1)
        mm, ym = m.mean(0), y.mean(0)
        mc = m - mm
        w = np.linalg.solve(mc.T @ mc + self.alpha * np.eye(m.shape[1]), mc.T @ (y - ym))
        self.coef, self.intercept = w, ym - mm @ w
        return self

    def predict(self, codes: Mapping[str, np.ndarray]) -> np.ndarray:
        """Fields ``(N, C, *grid)`` predicted from labels."""
        if self.coef is None:
            raise SaenoError("fit the ridge baseline before predicting")
        m = one_hot(codes, self.factors)
        return (m @ self.coef + self.intercept).reshape(len(m), *self.shape)

    def intervene(
        self, a: np.ndarray, codes: Mapping[str, np.ndarray], new_codes: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        """``a + R(m') - R(m)``."""
        return np.asarray(a) + self.predict(new_codes) - self.predict(codes)


class MeanDifference:
    """Mean-difference steering vectors, one mean field per (factor, category).

    Parameters
    ----------
    factors : dict
        ``{factor: [category names]}``.
    """

    def __init__(self, factors: Mapping[str, Sequence[str]]) -> None:
        self.factors = {f: list(c) for f, c in factors.items()}
        self.means: dict[str, np.ndarray] = {}

    def fit(self, a: np.ndarray, codes: Mapping[str, np.ndarray]) -> MeanDifference:
        """Category means of fields ``a (N, C, *grid)``; a category absent from ``a`` is an error."""
        a = np.asarray(a, dtype=np.float64)
        for f, cats in self.factors.items():
            c = np.asarray(codes[f])
            counts = np.bincount(c, minlength=len(cats))
            if (counts == 0).any():
                raise SaenoError(
                    f"factor {f!r}: categories {[cats[i] for i in np.flatnonzero(counts == 0)]} have no rows"
                )
            self.means[f] = np.stack([a[c == k].mean(0) for k in range(len(cats))])
        return self

    def intervene(
        self, a: np.ndarray, codes: Mapping[str, np.ndarray], new_codes: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        """Add ``mean[f=new] - mean[f=old]`` for every factor (zero where the label is unchanged)."""
        out = np.array(a, dtype=np.float64, copy=True)
        for f in self.factors:
            old, new = np.asarray(codes[f]), np.asarray(new_codes[f])
            out += self.means[f][new] - self.means[f][old]
        return out


def unsupervised_with_probes(
    a_train: np.ndarray,
    codes_train: Mapping[str, np.ndarray],
    tests: Mapping[str, tuple[np.ndarray, Mapping[str, np.ndarray]]],
    factors: Mapping[str, Sequence[str]],
    *,
    n_concepts: int = 32,
    k: int = 8,
    modes: int = 8,
    steps: int = 1500,
    batch_size: int = 32,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Train an unsupervised SAE-FNO on ``a_train``; reconstruction and probe accuracy on named splits.

    The probes are logistic regressions from the per-concept code norms to each factor, fitted on the
    training rows. Score them on more than one split: on samples of combinations seen in training
    (fresh nuisances) a probe reads what the codes carry; on held-out combinations it must also
    generalise to combinations it never saw, a harder and different question.

    Parameters
    ----------
    a_train, codes_train : numpy.ndarray, dict
        Training fields ``(N, C, *grid)`` and their label codes.
    tests : dict
        ``{split name: (fields, codes)}`` to score on (an empty split is skipped).
    factors : dict
        ``{factor: [category names]}``.
    n_concepts, k, modes, steps, batch_size, seed, device
        The SAE-FNO and its training.

    Returns
    -------
    dict
        ``{"sae", "ev": {split: explained variance}, "probe_accuracy": {split: {factor: accuracy}}}``.
    """
    from sklearn.linear_model import LogisticRegression

    from saeno.sae.sae_fno import SAEFNO
    from saeno.train.trainer import train_sae

    torch.manual_seed(seed)
    a_tr = torch.as_tensor(np.asarray(a_train), dtype=torch.float32)
    sae = SAEFNO(
        a_tr.shape[1],
        n_concepts,
        ndim=a_tr.dim() - 2,
        modes=modes,
        sparsity={"type": "topk", "k": k, "group": "concept"},
    )
    train_sae(sae, a_tr, steps=steps, batch_size=batch_size, device=device, progress=False, seed=seed)
    sae.eval()

    def features(a: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return sae.encode(a.to(device)).flatten(2).norm(dim=2).cpu().numpy()

    feats_tr = features(a_tr)
    probes = {f: LogisticRegression(max_iter=2000).fit(feats_tr, np.asarray(codes_train[f])) for f in factors}
    ev: dict[str, float] = {}
    acc: dict[str, dict[str, float]] = {}
    for name, (a, codes) in tests.items():
        if len(a) == 0:
            continue
        a_t = torch.as_tensor(np.asarray(a), dtype=torch.float32)
        with torch.no_grad():
            recon = sae(a_t.to(device)).cpu().numpy()
        ev[name] = explained_variance(a, recon)
        feats = features(a_t)
        acc[name] = {f: float(probes[f].score(feats, np.asarray(codes[f]))) for f in factors}
    return {"sae": sae, "ev": ev, "probe_accuracy": acc}


__all__ = ["one_hot", "explained_variance", "RidgeFromLabels", "MeanDifference", "unsupervised_with_probes"]
