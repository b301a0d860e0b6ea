"""What the concept report needs from a supervised SAE: per-sample concept activations and named atoms.

A supervised SAE has no concept encoder: a sample's concepts are its labels. For the report, the
activation of concept ``k`` on a sample is the size of its contribution to the reconstruction,
``||D(m, n) - D(m - e_k, n)||`` (RMS over channels and grid, raw units) when the sample carries the label,
and 0 when it does not. Atoms are :meth:`SupervisedSAE.concepts` (decoding of the block alone); names are
:attr:`SupervisedSAE.concept_names` (``"viscosity=low"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from saeno.sae.supervised import SupervisedSAE


@torch.no_grad()
def contribution_maps(sae: SupervisedSAE, a: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Where each labelled concept acts: ``(B, p, *grid)`` maps of its contribution's size.

    Entry ``[b, k]`` is the RMS over channels of ``D(m, n) - D(m - e_k, n)`` in raw units, the part
    of sample ``b``'s reconstruction that concept ``k`` adds; it is 0 where the sample does not
    carry label ``k``. These are the supervised counterpart of an SAE's code maps ``z_k(x)``.

    Parameters
    ----------
    sae : SupervisedSAE
        The model.
    a : Tensor
        Raw activations ``(B, C, *grid)`` on the SAE's device.
    mask : Tensor
        Label mask ``(B, p)`` of the samples (:meth:`SupervisedSAE.label_mask`).
    """
    mask = mask.to(a.device, torch.float32)
    n = sae.nuisance(a)
    full = sae._decode(sae.codes(mask, n), True)
    scale = sae.norm_scale.view(1, -1, *([1] * sae.ndim))
    out = full.new_zeros((a.shape[0], sae.n_concepts, *full.shape[2:]), dtype=torch.float32)
    for k in range(sae.n_concepts):
        on = mask[:, k] > 0
        if not on.any():
            continue
        m_off = mask[on].clone()
        m_off[:, k] = 0
        diff = (full[on] - sae._decode(sae.codes(m_off, n[on]), True)) * scale
        out[on, k] = diff.abs().pow(2).mean(1).sqrt().float()
    return out


@torch.no_grad()
def concept_activations(
    sae: SupervisedSAE, acts: torch.Tensor | np.ndarray, codes: Mapping[str, np.ndarray], batch_size: int = 64
) -> np.ndarray:
    """Per-sample concept activations ``(N, p)``: RMS contribution of each active label block.

    The RMS over the grid of :func:`contribution_maps`, i.e. over channels and grid of the block's
    contribution to the reconstruction (raw units); 0 for labels the sample does not carry.

    Parameters
    ----------
    sae : SupervisedSAE
        The model.
    acts : Tensor or ndarray
        Raw activations ``(N, C, *grid)``.
    codes : dict
        ``{factor: (N,) codes}`` of the samples.
    batch_size : int
        Samples per pass.
    """
    a_all = torch.as_tensor(np.asarray(acts), dtype=torch.float32)
    mask_all = sae.label_mask({f: np.asarray(codes[f]) for f in sae.factors}).cpu()
    dev = sae.norm_mean.device
    out = np.zeros((len(a_all), sae.n_concepts), dtype=np.float32)
    for s in range(0, len(a_all), batch_size):
        maps = contribution_maps(sae, a_all[s : s + batch_size].to(dev), mask_all[s : s + batch_size])
        out[s : s + len(maps)] = maps.flatten(2).pow(2).mean(2).sqrt().cpu().numpy()
    return out


def concept_summary(sae: SupervisedSAE, resolution: int | tuple[int, ...]) -> list[dict[str, Any]]:
    """One entry per concept: ``{"index", "name", "factor", "category", "atom" (C, *grid) list}``."""
    atoms = sae.concepts(resolution).cpu().numpy()
    out = []
    for k, name in enumerate(sae.concept_names):
        factor, category = name.split("=", 1)
        out.append(
            {
                "index": k,
                "name": name,
                "factor": factor,
                "category": category,
                "atom_rms": float(np.sqrt((atoms[k] ** 2).mean())),
                "atom": atoms[k].tolist(),
            }
        )
    return out


__all__ = ["concept_activations", "concept_summary", "contribution_maps"]
