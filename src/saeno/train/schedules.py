"""Learning-rate defaults and schedules (pure functions of the step, so that resuming is exact)."""

from __future__ import annotations

import math


def default_lr(n_concepts: int) -> float:
    """Default Adam learning rate ``2e-4 / sqrt(p / 16384)``, capped at ``1e-2``.

    The ``1/sqrt(p)`` scaling of Gao et al. (2024, "Scaling and evaluating sparse autoencoders"),
    anchored at their 2e-4 for 16384 latents; small dictionaries get larger rates (p=64: 3.2e-3).
    """
    return min(2e-4 / math.sqrt(n_concepts / 16384), 1e-2)


#: the learning-rate schedules of :func:`lr_factor`
LR_SCHEDULES = ("linear", "cosine")
#: the cosine schedule's final share of the base rate
COSINE_FLOOR = 0.05


def lr_factor(
    step: int,
    total_steps: int | None,
    warmup_steps: int = 0,
    decay_frac: float = 0.0,
    schedule: str = "linear",
) -> float:
    """Multiplier of the base rate at ``step`` (0-based).

    Linear warm-up over ``warmup_steps``, then ``schedule``: ``"linear"`` keeps the rate constant and
    decays it linearly to zero over the last ``decay_frac`` share of ``total_steps``; ``"cosine"``
    decays it from the full rate at step 0 to :data:`COSINE_FLOOR` of it at ``total_steps`` along a
    half cosine (``decay_frac`` unused). No decay when the total is unknown.
    """
    f = 1.0
    if warmup_steps > 0 and step < warmup_steps:
        f = (step + 1) / warmup_steps
    if schedule == "cosine":
        if total_steps:
            c = COSINE_FLOOR + (1 - COSINE_FLOOR) * 0.5 * (1 + math.cos(math.pi * step / total_steps))
            f = min(f, c)
        return f
    if total_steps and decay_frac > 0:
        decay_steps = max(1, int(round(decay_frac * total_steps)))
        start = total_steps - decay_steps
        if step >= start:
            f = min(f, max(0.0, (total_steps - step) / decay_steps))
    return f
