"""Off-distribution scores per sample, fitted on the training store's features (higher = more unusual).

From the SAE:

- ``sae_recon``: mean squared reconstruction error of the hook's field in the SAE's normalised space;
- ``sae_novelty``: mean distance to the ``k`` nearest training samples in the space of concept
  magnitudes (each concept's RMS code over the grid, divided by its standard deviation in training);
- ``sae_rare``: the magnitude-weighted mean surprisal ``-log f_k`` of the concepts a sample uses, with
  ``f_k`` the (smoothed) share of training samples in which concept ``k`` is active.

Baselines that need no SAE:

- ``mahalanobis``: Mahalanobis distance of the pooled hook activations (per-channel mean and standard
  deviation over the grid) under a Ledoit-Wolf shrinkage covariance;
- ``act_norm``: the RMS of the hook's activation, as ``|log(norm / median training norm)|`` so that a
  shift to smaller activations counts as much as one to larger ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from saeno.audit.features import StoreFeatures
from saeno.audit.stats import ledoit_wolf

SAE_SCORES = ("sae_recon", "sae_novelty", "sae_rare")
BASELINE_SCORES = ("mahalanobis", "act_norm")
ALL_SCORES = SAE_SCORES + BASELINE_SCORES


@dataclass
class OffDistributionScorer:
    """The fitted reference statistics; :meth:`score` maps features to the five scores."""

    mag_scale: np.ndarray
    reference: np.ndarray  # (n_ref, p) scaled magnitudes
    surprisal: np.ndarray  # (p,)
    mean: np.ndarray
    precision: np.ndarray
    shrinkage: float
    median_norm: float
    k: int

    @classmethod
    def fit(cls, ref: StoreFeatures, k: int = 5) -> OffDistributionScorer:
        """Fit on the training store's features."""
        n = len(ref.rows)
        scale = ref.magnitude.std(0)
        scale = np.where(scale > 0, scale, 1.0)
        freq = ((ref.magnitude > 0).sum(0) + 0.5) / (n + 1.0)
        mean, cov, shrink = ledoit_wolf(ref.pooled)
        cov += 1e-9 * np.trace(cov) / len(cov) * np.eye(len(cov))
        return cls(
            mag_scale=scale,
            reference=ref.magnitude / scale,
            surprisal=-np.log(freq),
            mean=mean,
            precision=np.linalg.inv(cov),
            shrinkage=shrink,
            median_norm=float(np.median(ref.norm)),
            k=int(min(k, max(n - 1, 1))),
        )

    def novelty(self, magnitude: np.ndarray, exclude_self: bool = False) -> np.ndarray:
        """Mean distance to the ``k`` nearest reference samples (``exclude_self``: the reference rows
        themselves, leaving each one out)."""
        q = magnitude / self.mag_scale
        out = np.empty(len(q))
        for lo in range(0, len(q), 256):
            block = q[lo : lo + 256]
            d2 = (block**2).sum(1)[:, None] + (self.reference**2).sum(1)[None] - 2 * block @ self.reference.T
            d = np.sqrt(np.clip(d2, 0, None))
            if exclude_self:
                d[np.arange(len(block)), lo + np.arange(len(block))] = np.inf
            out[lo : lo + 256] = np.sort(d, axis=1)[:, : self.k].mean(1)
        return out

    def score(self, f: StoreFeatures, exclude_self: bool = False) -> dict[str, np.ndarray]:
        """The five scores of each sample of ``f``."""
        mag = f.magnitude
        total = mag.sum(1)
        rare = np.where(
            total > 0,
            (mag * self.surprisal).sum(1) / np.where(total > 0, total, 1.0),
            float(self.surprisal.max()),
        )
        d = f.pooled - self.mean
        maha = np.sqrt(np.clip(np.einsum("ij,jk,ik->i", d, self.precision, d), 0, None))
        return {
            "sae_recon": f.recon.astype(np.float64),
            "sae_novelty": self.novelty(mag, exclude_self),
            "sae_rare": rare,
            "mahalanobis": maha,
            "act_norm": np.abs(np.log(np.clip(f.norm, 1e-30, None) / max(self.median_norm, 1e-30))),
        }
