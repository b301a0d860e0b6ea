"""Statistics of sparse codes (``docs/method.md`` section 2): ``L0_concepts``, ``domain_fraction``,
``L0_per_point``, firing counts for dead concepts and densities.

Codes are ``(B, p, *grid)`` (pointwise SAE, SAE-FNO) or ``(B, p)`` (flat SAE, or rows). A concept is
*active in a sample* when its code is non-zero somewhere on the grid. Single-batch functions return
floats; :class:`CodeStats` accumulates over batches (exact means over all samples seen).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def active_concepts(z: Tensor) -> Tensor:
    """Boolean ``(B, p)``: concept k is non-zero somewhere in sample b."""
    nz = z != 0
    return nz.flatten(2).any(-1) if z.dim() > 2 else nz


def l0_concepts(z: Tensor) -> float:
    """Mean number of active concepts per sample."""
    return active_concepts(z).sum(1).double().mean().item()


def domain_fraction(z: Tensor) -> float:
    """Mean share of grid points where an active concept is non-zero (NaN for codes without a grid)."""
    if z.dim() <= 2:
        return math.nan
    nz = (z != 0).flatten(2)
    active = nz.any(-1)
    if not bool(active.any()):
        return math.nan
    frac = nz.double().mean(-1)
    return frac[active].mean().item()


def l0_per_point(z: Tensor) -> float:
    """Mean number of non-zero codes per grid point (per row for ``(N, p)`` codes)."""
    return (z != 0).sum(1).double().mean().item()


class CodeStats:
    """Accumulate code statistics over batches.

    Parameters
    ----------
    n_concepts : int
        p, the concept count.
    """

    def __init__(self, n_concepts: int) -> None:
        self.n_concepts = n_concepts
        self.n_samples = 0
        self.n_points = 0
        self.active_sum = 0.0
        self.nonzero_sum = 0.0
        self.domain_sum = 0.0
        self.domain_count = 0
        self.fired = torch.zeros(n_concepts, dtype=torch.float64)

    def update(self, z: Tensor) -> None:
        """Add one batch of codes."""
        z = z.detach()
        active = active_concepts(z)
        self.n_samples += z.shape[0]
        self.active_sum += active.sum().item()
        self.fired += active.sum(0).double().cpu()
        nz = z != 0
        self.nonzero_sum += nz.sum().item()
        self.n_points += z.numel() // z.shape[1]
        if z.dim() > 2:
            frac = nz.flatten(2).double().mean(-1)
            self.domain_sum += frac[active].sum().item()
            self.domain_count += int(active.sum().item())

    def compute(self) -> dict[str, float | Tensor]:
        """``L0_concepts``, ``domain_fraction``, ``L0_per_point``, ``dead_fraction`` and ``density``.

        ``density`` is the ``(p,)`` share of samples in which each concept was active; a concept is
        dead when it was never active in the samples seen.
        """
        n = max(self.n_samples, 1)
        density = self.fired / n
        return {
            "L0_concepts": self.active_sum / n,
            "domain_fraction": (self.domain_sum / self.domain_count if self.domain_count else math.nan),
            "L0_per_point": self.nonzero_sum / max(self.n_points, 1),
            "dead_fraction": float((self.fired == 0).double().mean()),
            "density": density,
        }
