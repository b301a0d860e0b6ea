"""The training loop: ``train_sae(sae, data, ...) -> TrainResult``.

Choices (documented defaults):

- Loss, in normalised space: ``||a - a_hat||^2`` summed over channels and averaged over rows (or samples
  and grid points), plus the sparsity mechanism's penalty, plus ``aux_coef * min(n_dead / aux_k, 1) *
  AuxK`` (Gao et al. 2024): the residual is reconstructed from the top ``aux_k`` dead concepts'
  pre-activations, decoder bias excluded; unlike plain AuxK the ReLU passes gradients straight
  through (:meth:`~saeno.sae.base.SparseAutoencoder.aux_codes`), so concepts whose pre-activations are
  negative everywhere (the usual dead SAE-FNO concept) are still trained. A concept is dead when it has not fired for ``dead_window``
  steps; the dead set is refreshed every step, AuxK is switched on or off at logging steps (no
  host-device synchronisation in between).
- Dead-concept resampling (``resample_every``, off by default; models with ``resample_concepts_``,
  i.e. :class:`~saeno.sae.sae_fno.SAEFNO`): every ``resample_every`` steps the concepts dead for
  ``dead_window`` steps are re-initialised from the residuals of the current batch's samples, drawn
  with probability proportional to their squared error (Bricken et al. 2023; the encoder scale is
  fitted to that sample), and their dead counters and Adam moments are reset. There is no resampling
  in the last ``resample_every`` steps, so that every resampled concept gets trained. Experimental: on
  Darcy activations (benchmarks/results/recovery_sae_fno_fix.md) it lowered the dead share only while
  resampling and made the final reconstruction worse, so it is not on by default. AuxK alone trains dead SAE-FNO concepts, but they rarely win
  the concept TopK again (METHOD.md section 6, lesson 3).
- Initialisation of a fresh run: per-channel normalisation from the store's statistics (or a pass over
  the data), so the decoder bias starts at the data mean (zero in normalised space); unit-norm decoder
  concepts, renormalised after every Adam step; encoder initialised from the decoder transpose (done
  by the model constructors).
- Learning rate: :func:`saeno.train.schedules.default_lr` (``2e-4 / sqrt(p / 16384)``, capped at 1e-2)
  with optional linear warm-up and a linear decay over the last ``lr_decay_frac`` of the steps.
- Resuming restores weights, Adam state, step, data position, dead counters, the AuxK switch and RNG
  states: an interrupted run continues exactly as the uninterrupted one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from saeno.errors import SaenoError
from saeno.sae.base import SAEOutput, SparseAutoencoder
from saeno.train.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_trainer_state,
    prune_checkpoints,
    save_checkpoint,
)
from saeno.train.data import make_source
from saeno.train.logging import TrainLogger
from saeno.train.schedules import default_lr, lr_factor

NORMALIZE_MODES = ("channel", "center", "none")


@dataclass
class TrainResult:
    """What :func:`train_sae` returns.

    Attributes
    ----------
    sae : SparseAutoencoder
        The trained model (``eval()`` mode).
    steps : int
        Optimiser steps done in total (resumed runs count the earlier ones).
    samples : int
        Rows (pointwise view) or fields consumed in total.
    elapsed_s : float
        Wall time of this call's training loop.
    samples_per_s : float
        Rows or fields per second in this call.
    history : list of dict
        The logged rows (also written to the CSV).
    checkpoint : Path or None
        The last checkpoint written.
    """

    sae: SparseAutoencoder
    steps: int
    samples: int
    elapsed_s: float
    samples_per_s: float
    history: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: Path | None = None

    @property
    def final(self) -> dict[str, Any]:
        """The last logged row (empty when nothing was logged)."""
        return self.history[-1] if self.history else {}


def _normalization_from(mean: Any, var: Any, mode: str) -> tuple[Tensor, Tensor]:
    mean = torch.as_tensor(mean, dtype=torch.float64).reshape(-1)
    var = torch.as_tensor(var, dtype=torch.float64).reshape(-1).clamp_min(0)
    if mode == "none":
        return torch.zeros_like(mean), torch.ones_like(mean)
    if mode == "center":
        scale = torch.full_like(var, math.sqrt(float(var.mean())) or 1.0)
        return mean, scale
    std = var.sqrt()
    floor = 1e-6 * float(std.max()) if std.numel() else 0.0
    std = torch.where(std > max(floor, 1e-12), std, torch.ones_like(std))
    return mean, std


def _fired(out: SAEOutput) -> Tensor:
    """``(p,)`` bool: concepts non-zero anywhere in the batch."""
    return out.fired()


def sae_loss(sae: SparseAutoencoder, batch: Tensor, dead: Tensor, aux_on: bool, aux_k: int,
             aux_coef: float) -> tuple[Tensor, Tensor, Tensor, Tensor, Any]:
    """The training loss of one batch: ``(loss, mse, aux, penalty, out)``.

    ``loss = mse + penalty + aux_coef * min(1, n_dead / aux_k) * aux``, where ``mse`` is the squared
    reconstruction error summed over channels and averaged over rows (normalised space), ``penalty``
    the sparsity's own penalty (0 for TopK) and ``aux`` the AuxK loss of the ``dead`` concepts on the
    residual, computed only when ``aux_on`` and ``aux_k > 0`` (else 0). ``aux`` and ``penalty`` are
    returned detached, for logging. Used by :func:`train_sae` and the DDP trainer alike.
    """
    out = sae.forward_train(batch)
    err = out.recon - out.target
    mse = err.pow(2).sum(1).mean()
    loss = mse
    penalty = aux = mse.detach() * 0
    if out.penalty is not None:
        loss = loss + out.penalty
        penalty = out.penalty.detach()
    if aux_on and aux_k > 0:
        e_hat = sae.decode_norm(sae.aux_codes(out.pre, dead, aux_k), bias=False)
        aux_loss = (e_hat + err.detach()).pow(2).sum(1).mean()  # residual e = -err
        scale = (dead.sum() / aux_k).clamp(max=1.0)
        loss = loss + aux_coef * scale * aux_loss
        aux = aux_loss.detach()
    return loss, mse, aux, penalty, out


def _run_signature(sae: SparseAutoencoder, **kw: Any) -> dict[str, Any]:
    return {"sae": sae.config(), **kw}


def train_sae(
    sae: SparseAutoencoder,
    data: Any,
    *,
    hook: str | None = None,
    steps: int | None = None,
    epochs: int | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    normalize: str = "channel",
    aux_k: int | None = None,
    aux_coef: float = 1 / 32,
    dead_window: int = 200,
    resample_every: int | None = None,
    lr_warmup_steps: int = 0,
    lr_decay_frac: float = 0.2,
    shuffle_buffer: int | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    keep_checkpoints: int = 2,
    resume: bool | str | Path = False,
    log_csv: str | Path | None = None,
    log_every: int = 100,
    tensorboard: bool | str | Path = False,
    wandb: bool = False,
    progress: bool = True,
    seed: int = 0,
    store_fingerprint: str | None = None,
) -> TrainResult:
    """Train a sparse autoencoder on raw activations.

    Parameters
    ----------
    sae : SparseAutoencoder
        The model (trained in place).
    data : Tensor, ndarray, ActivationStore or iterable of Tensors
        A tensor of all samples ``(N, C, *grid)`` (or rows ``(N, C)`` for a pointwise SAE), an
        ``ActivationStore`` (with ``hook``), or an iterable of raw batches. Pointwise SAEs train on
        rows (the store's ``points`` view), the others on fields.
    hook : str, optional
        The store hook to train on (needed when the store holds several).
    steps, epochs : int, optional
        Training length (give one; default one epoch). ``steps`` may span several epochs.
    lr : float, optional
        Adam learning rate (default :func:`~saeno.train.schedules.default_lr`).
    batch_size : int, optional
        Rows per batch for pointwise SAEs (default 4096), fields per batch otherwise (default 16);
        ignored for iterables, whose batches are used as given.
    device : str or torch.device, optional
        Where to train (default: the model's device).
    normalize : {"channel", "center", "none"}
        Normalisation for a fresh run: per-channel mean and standard deviation, per-channel mean and
        one global scale, or none (keep the model's current normalisation).
    aux_k : int, optional
        Dead concepts used by AuxK (default ``min(n_concepts // 2, 256)``; 0 disables AuxK).
    aux_coef : float
        Weight of the AuxK loss.
    dead_window : int
        Steps without firing after which a concept counts as dead.
    resample_every : int, optional
        Steps between resamplings of dead concepts (None: never). Needs a model with
        ``resample_concepts_`` (the SAE-FNO).
    lr_warmup_steps, lr_decay_frac : int, float
        Learning-rate schedule (see :func:`~saeno.train.schedules.lr_factor`).
    shuffle_buffer : int, optional
        Passed to ``store.loader``.
    checkpoint_dir : path, optional
        Where ``step_*`` checkpoints go (also the end of training when given).
    checkpoint_every : int, optional
        Steps between checkpoints.
    keep_checkpoints : int
        How many of the latest checkpoints to keep (0 keeps all).
    resume : bool or path
        True: continue from the latest checkpoint in ``checkpoint_dir`` (a fresh start when there is
        none); a path: continue from that checkpoint.
    log_csv : path, optional
        CSV log file (appended to on resume).
    log_every : int
        Steps between logged rows (and between host syncs).
    tensorboard, wandb : bool
        Also log there (the packages must be installed).
    progress : bool
        Show a tqdm progress bar with the losses.
    seed : int
        Seed of the data order (and of torch's RNG for a fresh run).
    store_fingerprint : str, optional
        Model fingerprint saved with the SAE (default: the store's).

    Returns
    -------
    TrainResult
    """
    if normalize not in NORMALIZE_MODES:
        raise SaenoError(f"normalize={normalize!r} is unknown: use one of {NORMALIZE_MODES}")
    if steps is not None and epochs is not None:
        raise SaenoError("give steps or epochs, not both")
    if (steps is not None and steps < 1) or (epochs is not None and epochs < 1):
        raise SaenoError("steps and epochs must be >= 1")
    device = torch.device(device) if device is not None else next(sae.parameters()).device
    view = sae.view
    if batch_size is None:
        batch_size = 4096 if view == "points" else 16
    source = make_source(data, view=view, batch_size=batch_size, seed=seed, hook=hook,
                         shuffle_buffer=shuffle_buffer)
    hook = getattr(source, "hook", hook)
    if epochs is None and steps is None:
        epochs = 1
    total = steps if steps is not None else (
        epochs * source.n_batches if source.n_batches is not None else None)
    base_lr = float(lr) if lr is not None else default_lr(sae.n_concepts)
    if aux_k is None:
        aux_k = min(sae.n_concepts // 2, 256)
    if resample_every is not None:
        if resample_every < 1:
            raise SaenoError(f"resample_every must be >= 1 or None, got {resample_every}")
        if not hasattr(sae, "resample_concepts_"):
            raise SaenoError(f"{type(sae).__name__} cannot resample dead concepts: use "
                             "resample_every=None (AuxK still applies)")
    signature = _run_signature(sae, batch_size=batch_size, seed=seed, steps=steps, epochs=epochs,
                               lr=base_lr, aux_k=aux_k, aux_coef=aux_coef, dead_window=dead_window,
                               lr_warmup_steps=lr_warmup_steps, lr_decay_frac=lr_decay_frac,
                               **({"resample_every": resample_every} if resample_every else {}))

    sae.to(device)
    optimizer = torch.optim.Adam(sae.parameters(), lr=base_lr, betas=(0.9, 0.999))
    since_fired = torch.zeros(sae.n_concepts, dtype=torch.long, device=device)
    step = epoch = batch_in_epoch = samples = 0
    aux_active = False

    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    start_from = None
    if resume:
        if resume is True:
            if ckpt_dir is None:
                raise SaenoError("resume=True needs checkpoint_dir (CLI: --out DIR --resume)")
            start_from = latest_checkpoint(ckpt_dir)
        else:
            start_from = Path(resume)
    if start_from is not None:
        state, tensors, opt_state = load_trainer_state(start_from)
        if state["signature"]["sae"] != signature["sae"]:
            raise CheckpointError(f"checkpoint {start_from} is for another model "
                                  f"({state['signature']['sae']}); build the same SAE to resume")
        from safetensors.torch import load_file

        sae.load_state_dict(load_file(str(start_from / "sae_weights.safetensors")), strict=True)
        sae.to(device)
        optimizer.load_state_dict(opt_state)
        since_fired = tensors["since_fired"].to(device)
        step, epoch = state["step"], state["epoch"]
        batch_in_epoch, samples = state["batch_in_epoch"], state["samples"]
        aux_active = state["aux_active"]
    else:
        torch.manual_seed(seed)
        if normalize != "none":
            mean, var = source.moments()
            sae.set_normalization(*_normalization_from(mean, var, normalize))
        sae.normalize_decoder_()
    if hook is not None:
        sae.hook = hook
    fingerprint = store_fingerprint or getattr(source, "fingerprint", None)
    if fingerprint is not None:
        sae.model_fingerprint = fingerprint

    logger = TrainLogger(log_csv, tensorboard=tensorboard, wandb=wandb, config=signature,
                         resume=start_from is not None)
    from tqdm.auto import tqdm

    pbar = tqdm(total=total, initial=step, disable=not progress, unit="step", desc="train_sae")
    history: list[dict[str, Any]] = []
    zero = torch.zeros((), device=device)
    acc = {"loss": zero.clone(), "mse": zero.clone(), "aux": zero.clone(), "penalty": zero.clone()}
    acc_n = 0
    last_ckpt: Path | None = None
    start_samples, t0 = samples, time.perf_counter()
    sae.train()

    def checkpoint() -> Path:
        assert ckpt_dir is not None
        state = {"step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch,
                 "samples": samples, "aux_active": aux_active, "signature": signature}
        path = save_checkpoint(ckpt_dir / f"step_{step:08d}", sae, optimizer, state,
                               {"since_fired": since_fired})
        prune_checkpoints(ckpt_dir, keep_checkpoints, path)
        return path

    while total is None or step < total:
        got_batch = False
        resumed_mid_epoch = batch_in_epoch > 0
        for batch in source.epoch(epoch, skip=batch_in_epoch):
            got_batch = True
            batch = batch.to(device, non_blocking=True)
            f = lr_factor(step, total, lr_warmup_steps, lr_decay_frac)
            for group in optimizer.param_groups:
                group["lr"] = base_lr * f
            loss, mse, aux, penalty, out = sae_loss(sae, batch, since_fired >= dead_window,
                                                    aux_active, aux_k, aux_coef)
            acc["penalty"] += penalty
            acc["aux"] += aux
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sae.normalize_decoder_()
            since_fired = torch.where(_fired(out), 0, since_fired + 1)
            if (resample_every and (step + 1) % resample_every == 0
                    and (total is None or step + 1 + resample_every <= total)):
                since_fired = _resample(sae, out, since_fired, dead_window, optimizer)
            acc["loss"] += loss.detach()
            acc["mse"] += mse.detach()
            acc_n += 1
            step += 1
            batch_in_epoch += 1
            samples += batch.shape[0]
            at_end = total is not None and step >= total
            if step % log_every == 0 or at_end:
                row = _log_row(step, samples, base_lr * f, acc, acc_n, out, since_fired,
                               dead_window)
                history.append(row)
                logger.log(row)
                pbar.update(step - pbar.n)
                pbar.set_postfix(loss=f"{row['loss']:.4g}", ev=f"{row['ev']:.3f}",
                                 l0=f"{row['l0']:.3g}", dead=f"{row['dead_fraction']:.2f}")
                aux_active = aux_k > 0 and row["dead_fraction"] > 0
                for v in acc.values():
                    v.zero_()
                acc_n = 0
            if ckpt_dir is not None and checkpoint_every and step % checkpoint_every == 0:
                last_ckpt = checkpoint()
            if at_end:
                break
        else:
            epoch += 1
            batch_in_epoch = 0
            if (not got_batch and not resumed_mid_epoch) or (steps is None and epochs is not None and epoch >= epochs):
                break
            continue
        break
    pbar.update(step - pbar.n)
    pbar.close()
    logger.close()
    elapsed = time.perf_counter() - t0
    if ckpt_dir is not None and (last_ckpt is None or not last_ckpt.name.endswith(f"{step:08d}")):
        last_ckpt = checkpoint()
    sae.eval()
    done_samples = samples - start_samples
    return TrainResult(sae=sae, steps=step, samples=samples, elapsed_s=elapsed,
                       samples_per_s=done_samples / elapsed if elapsed > 0 else math.nan,
                       history=history, checkpoint=last_ckpt)


def _resample(sae: SparseAutoencoder, out: Any, since_fired: Tensor, dead_window: int,
              optimizer: torch.optim.Optimizer) -> Tensor:
    """Re-initialise the dead concepts from residuals of the batch (see the module docstring)."""
    dead = (since_fired >= dead_window).nonzero().flatten()
    if dead.numel() == 0:
        return since_fired
    with torch.no_grad():
        resid = (out.target - out.recon).detach()
        weight = resid.pow(2).flatten(1).sum(1)
        if not bool(weight.sum() > 0):
            return since_fired
        pick = torch.multinomial(weight, dead.numel(), replacement=True)
        sae.resample_concepts_(dead, resid[pick], out.target[pick], optimizer)
        since_fired = since_fired.clone()
        since_fired[dead] = 0
    return since_fired


def _log_row(step: int, samples: int, lr: float, acc: dict[str, Tensor], n: int, out: Any,
             since_fired: Tensor, dead_window: int) -> dict[str, Any]:
    """One log row (this is where the host synchronises with the device)."""
    with torch.no_grad():
        t = out.target
        dims = [d for d in range(t.dim()) if d != 1]
        var = (t - t.mean(dim=dims, keepdim=True)).pow(2).sum()
        ev = 1.0 - float((out.recon - t).pow(2).sum() / var.clamp_min(1e-12))
        codes = out.codes
        l0 = float((codes != 0).sum(1).double().mean())
        row = {"step": step, "samples": samples, "lr": lr}
        row.update({k: float(v) / max(n, 1) for k, v in acc.items()})
        row.update({"ev": ev, "l0": l0,
                    "dead_fraction": float((since_fired >= dead_window).double().mean())})
        if codes.dim() > 2:
            row["l0_concepts"] = float((codes != 0).flatten(2).any(-1).sum(1).double().mean())
    return row
