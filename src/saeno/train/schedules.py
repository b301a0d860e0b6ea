"""Learning-rate defaults and schedules (pure functions of the step, so that resuming is exact)."""

from __future__ import annotations

import math


def default_lr(n_concepts: int) -> float:
    """Default Adam learning rate ``2e-4 / sqrt(p / 16384)``, capped at ``1e-2``.

    The ``1/sqrt(p)`` scaling of Gao et al. (2024, "Scaling and evaluating sparse autoencoders"),
    anchored at their 2e-4 for 16384 latents; small dictionaries get larger rates (p=64: 3.2e-3).
    """
    return min(2e-4 / math.sqrt(n_concepts / 16384), 1e-2)


def lr_factor(step: int, total_steps: int | None, warmup_steps: int = 0, decay_frac: float = 0.0) -> float:
    """Multiplier of the base rate at ``step`` (0-based).

    Linear warm-up over ``warmup_steps``, constant, then linear decay to zero over the last
    ``decay_frac`` share of ``total_steps`` (no decay when the total is unknown).
    """
    f = 1.0
    if warmup_steps > 0 and step < warmup_steps:
        f = (step + 1) / warmup_steps
    if total_steps and decay_frac > 0:
        decay_steps = max(1, int(round(decay_frac * total_steps)))
        start = total_steps - decay_steps
        if step >= start:
            f = min(f, max(0.0, (total_steps - step) / decay_steps))
    return f
