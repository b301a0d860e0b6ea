"""A small training loop that records planted-atom recovery against training steps.

It is not :func:`saeno.train_sae` (which streams stores and has no notion of true atoms): Adam over the
model's parameter groups (so the SAE-FNO's spectral weights get their own rate, as in the trainer),
normalised MSE plus the sparsity penalty, the decoder renormalised after every step, no AuxK and no
resampling, so that recovery can be recorded every ``eval_every`` steps from a known initialisation.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from saeno import synthetic as S
from saeno.recovery.evaluation import as_input, model_atoms
from saeno.sae import SparseAutoencoder


@dataclass(frozen=True)
class TrainOptions:
    """Steps, batch size, base learning rate and evaluation interval of :func:`train_tracked`."""

    steps: int = 300
    batch: int = 32
    lr: float = 3e-3
    eval_every: int = 50


def prepare(model: SparseAutoencoder, x: Tensor) -> Tensor:
    """Set the normalisation (per-channel mean, one global scale) and the bias field from ``x``.

    One global scale keeps the atoms' geometry (a per-value scale would reshape them). Returns ``x``
    as the model takes it.
    """
    xin = as_input(model, x)
    mean = xin.mean(dim=[d for d in range(xin.dim()) if d != 1])
    model.set_normalization(mean, torch.full_like(mean, float(xin.std())))
    model.normalize_decoder_()
    if model.bias_field is not None:
        model.fit_bias_field_([xin[:512]])
    return xin


def train_tracked(
    model: SparseAutoencoder,
    x: Tensor,
    true: Tensor | None,
    opts: TrainOptions,
    *,
    shift: bool,
    seed: int,
) -> dict[str, Any]:
    """Train ``model`` on fields ``x (N, 1, n)`` and record recovery of ``true`` every ``eval_every`` steps.

    Parameters
    ----------
    model : SparseAutoencoder
    x : Tensor
        Training fields.
    true : Tensor or None
        True atoms ``(p, 1, n)``; None (or a model without spatial atoms) records no curve.
    opts : TrainOptions
    shift : bool
        Shift-invariant matching (convolutional settings and convolutional models).
    seed : int
        Seeds the batch draw.

    Returns
    -------
    dict
        ``{"curve": {"step", "mean_cos", "min_cos"}, "train_s"}``.
    """
    torch.manual_seed(seed)
    xin = prepare(model, x)
    opt = torch.optim.Adam(model.param_groups(opts.lr))
    gen = torch.Generator().manual_seed(seed)
    n = x.shape[-1]
    curve: dict[str, list[float]] = {"step": [], "mean_cos": [], "min_cos": []}
    track = true is not None and model_atoms(model, n) is not None
    t0 = time.perf_counter()
    model.train()
    for step in range(opts.steps + 1):
        if track and (step % opts.eval_every == 0 or step == opts.steps):
            rec = S.match_atoms(model_atoms(model, n), true, shift_invariant=shift)
            curve["step"].append(step)
            curve["mean_cos"].append(rec.mean_cos)
            curve["min_cos"].append(rec.min_cos)
        if step == opts.steps:
            break
        batch = xin[torch.randint(0, xin.shape[0], (opts.batch,), generator=gen)]
        out = model.forward_train(batch)
        loss = (out.recon - out.target).pow(2).sum(1).mean()
        if out.penalty is not None:
            loss = loss + out.penalty
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.normalize_decoder_()
    model.eval()
    return {"curve": curve, "train_s": time.perf_counter() - t0}


def steps_to(curve: dict[str, list[float]], level: float) -> float:
    """First recorded step with mean matched ``|cos| >= level`` (``inf`` if never)."""
    for s, c in zip(curve["step"], curve["mean_cos"]):
        if c >= level:
            return float(s)
    return math.inf
