"""The effect of one concept on the FNO's prediction: ablate it and splice the edit into the model.

Ablation keeps the SAE's reconstruction error: at the hook the activation ``a`` is replaced by
``a - (decode(z) - decode(z with z_k = 0))``, i.e. only the concept's own contribution is removed.
Without the ablation the model is therefore exactly the clean model, and the change of the output is
due to the concept alone, not to the SAE's imperfect reconstruction.

A supervised SAE has no encoder for its concepts: ablating concept ``k`` switches its label off,
``a -> a + D(m - e_k, n) - D(m, n)`` with the samples' label mask ``m`` and their nuisance ``n``
(:meth:`~saeno.sae.supervised.SupervisedSAE.intervene`), so the caller passes the labels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from saeno.metrics import relative_l2

ABLATION_METHOD = (
    "zero-ablation with the reconstruction error kept: at the hook, a is replaced by "
    "a - (decode(z) - decode(z with z_k = 0)); the output change and the relative L2 error against "
    "the stored target are averaged over the concept's top samples"
)
ABLATION_METHOD_SUPERVISED = (
    "label switched off with the reconstruction error kept: at the hook, a is replaced by "
    "a + D(m - e_k, n) - D(m, n) (m the sample's labels, n its nuisance); the output change and the "
    "relative L2 error against the stored target are averaged over the concept's top samples"
)


def is_supervised(sae: torch.nn.Module) -> bool:
    """Whether ``sae`` is a label-gated supervised SAE (its concepts come from labels, not an encoder)."""
    return getattr(sae, "architecture", None) == "supervised"


def ablation_hook(
    sae: torch.nn.Module, concept: int, labels: torch.Tensor | None = None
) -> Callable[..., torch.Tensor]:
    """A hook function ``fn(act, *, hook)`` that removes one concept's contribution from ``act``.

    ``labels`` is the ``(B, p)`` label mask of the batch, needed (only) for a supervised SAE.
    """
    if is_supervised(sae):
        if labels is None:
            raise ValueError("ablating a supervised SAE's concept needs the samples' label mask (labels=)")
        mask = torch.as_tensor(labels, dtype=torch.float32)
        off = mask.clone()
        off[:, concept] = 0

        def edit(act: torch.Tensor, *, hook: Any = None) -> torch.Tensor:
            m, m_off = mask.to(act.device), off.to(act.device)
            return sae.intervene(act, m, m_off).to(act.dtype)

        return edit

    def fn(act: torch.Tensor, *, hook: Any = None) -> torch.Tensor:
        z = sae.encode(act)
        z_ablated = z.clone()
        z_ablated[:, concept] = 0
        return act - (sae.decode(z) - sae.decode(z_ablated)).to(act.dtype)

    return fn


@dataclass
class Effect:
    """Outputs and errors of one concept's ablation on a batch of samples (numpy arrays)."""

    y_clean: np.ndarray  # (n, C, *grid)
    y_ablated: np.ndarray  # (n, C, *grid)
    rel_change: np.ndarray  # (n,) ||y_ablated - y_clean|| / ||y_clean||
    err_clean: np.ndarray | None  # (n,) against the stored target
    err_ablated: np.ndarray | None  # (n,)


@torch.no_grad()
def ablation_effect(
    hooked: Any,
    sae: torch.nn.Module,
    hook: str,
    concept: int,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    y_clean: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> Effect:
    """Run the model with one concept ablated at ``hook`` and compare with the clean run.

    Parameters
    ----------
    hooked : saeno.HookedOperator
        The wrapped FNO (on the same device as ``x`` and the SAE).
    sae : SparseAutoencoder
        The SAE trained on ``hook``.
    hook : str
        Hook point name.
    concept : int
        Concept to ablate.
    x : torch.Tensor
        ``(n, C_in, *grid)`` model inputs.
    y : torch.Tensor, optional
        ``(n, C_out, *grid)`` targets (the PDE's solution); without it no errors are computed.
    y_clean : torch.Tensor, optional
        The clean model output on ``x``, if already computed.
    labels : torch.Tensor, optional
        ``(n, p)`` label mask of the samples (supervised SAEs only).

    Returns
    -------
    Effect
    """
    if y_clean is None:
        y_clean = hooked(x)
    with hooked.hooks(fwd_hooks=[(hook, ablation_hook(sae, concept, labels))]):
        y_ablated = hooked(x)
    rel_change = relative_l2(y_ablated, y_clean)
    err_clean = err_ablated = None
    if y is not None:
        y = y.to(y_clean.device, y_clean.dtype)
        err_clean = relative_l2(y_clean, y).cpu().numpy()
        err_ablated = relative_l2(y_ablated, y).cpu().numpy()
    return Effect(
        y_clean.cpu().numpy(), y_ablated.cpu().numpy(), rel_change.cpu().numpy(), err_clean, err_ablated
    )


__all__ = [
    "ABLATION_METHOD",
    "ABLATION_METHOD_SUPERVISED",
    "Effect",
    "ablation_effect",
    "ablation_hook",
    "is_supervised",
    "relative_l2",
]
