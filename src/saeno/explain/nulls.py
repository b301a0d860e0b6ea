"""The random-init null: SAEs of the same shape with fresh weights, scored by the same protocol."""

from __future__ import annotations

from typing import Any

import torch

from saeno.explain.probes import (
    ExplainError,
)

# ---------------------------------------------------------------------------------------------
# the random-init null


def random_init_like(sae: Any, seed: int) -> Any:
    """A freshly initialised SAE of the same architecture and shape, with the same normalisation."""
    if not hasattr(sae, "config") or not hasattr(type(sae), "from_config"):
        raise ExplainError(
            f"cannot build a random-init copy of {type(sae).__name__} (it has no "
            "config()/from_config): pass null_sae= or random_null=False"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = type(sae).from_config(sae.config())
    if hasattr(fresh, "set_normalization") and hasattr(sae, "norm_mean"):
        fresh.set_normalization(sae.norm_mean.detach().cpu(), sae.norm_scale.detach().cpu())
    return fresh.eval()
