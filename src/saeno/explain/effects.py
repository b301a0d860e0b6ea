"""Ablation effects of concepts on the FNO's output: which concepts matter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

# ---------------------------------------------------------------------------------------------
# ablation effects


def ablate_hook(sae: Any, k: int):
    def fn(act: torch.Tensor, *, hook: Any = None) -> torch.Tensor:
        z = sae.encode(act)
        z_off = z.clone()
        z_off[:, k] = 0
        return act - (sae.decode(z) - sae.decode(z_off)).to(act.dtype)

    return fn


@torch.no_grad()
def ablation_effects(
    hooked: Any,
    sae: Any,
    hook: str,
    x: np.ndarray,
    activity: np.ndarray,
    concepts: Sequence[int],
    n_top: int,
    device: torch.device,
) -> dict[int, float]:
    """Mean relative L2 change of the FNO's output when concept k is ablated, on its top samples.

    Ablation keeps the SAE's reconstruction error: ``a -> a - (decode(z) - decode(z with z_k = 0))``.
    """
    out: dict[int, float] = {}
    for k in concepts:
        top = np.argsort(-activity[:, k], kind="stable")[:n_top]
        top = top[activity[top, k] > 0]
        if top.size == 0:
            continue
        xs = torch.as_tensor(x[top], dtype=torch.float32, device=device)
        clean = hooked(xs)
        with hooked.hooks(fwd_hooks=[(hook, ablate_hook(sae, k))]):
            ablated = hooked(xs)
        diff = (ablated - clean).flatten(1).norm(dim=1)
        ref = clean.flatten(1).norm(dim=1).clamp_min(1e-12)
        out[int(k)] = float((diff / ref).mean())
    return out
