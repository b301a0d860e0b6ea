"""The training loop: ``train_sae(sae, data, ...) -> TrainResult``.

Choices (documented defaults):

- Loss, in normalised space: ``||a - a_hat||^2`` summed over channels and averaged over rows (or samples
  and grid points), plus the sparsity mechanism's penalty, plus ``aux_coef * min(n_dead / aux_k, 1) *
  AuxK`` (Gao et al. 2024): the residual is reconstructed from the top ``aux_k`` dead concepts'
  pre-activations, decoder bias excluded; unlike plain AuxK the ReLU passes gradients straight
  through (:meth:`~saeno.sae.base.SparseAutoencoder.aux_codes`), so concepts whose pre-activations are
  negative everywhere (the usual dead SAE-FNO concept) are still trained. A concept is dead when
  it has not fired for ``dead_window`` steps; the dead set is refreshed every step, AuxK is switched on or off at logging steps (no
  host-device synchronisation in between).
- Dead-concept resampling (``resample_every``, off by default; models with ``resample_concepts_``,
  i.e. :class:`~saeno.sae.sae_fno.SAEFNO`): every ``resample_every`` steps the concepts dead for
  ``dead_window`` steps are re-initialised from the residuals of the current batch's samples, drawn
  with probability proportional to their squared error (Bricken et al. 2023; the encoder scale is
  fitted to that sample), and their dead counters and Adam moments are reset. There is no resampling
  in the last ``resample_every`` steps, so that every resampled concept gets trained. Experimental,
  hence off: AuxK alone trains dead SAE-FNO concepts, but they rarely win the concept TopK again
  (``docs/method.md``, dead concepts).
- Initialisation of a fresh run: per-channel normalisation from the store's statistics (or a pass over
  the data), so the decoder bias starts at the data mean (zero in normalised space); unit-norm decoder
  concepts, renormalised after every Adam step; encoder initialised from the decoder transpose (done
  by the model constructors).
- Learning rate: :func:`saeno.train.schedules.default_lr` (``2e-4 / sqrt(p / 16384)``, capped at 1e-2)
  times the model's ``default_lr_scale`` (2 for the SAE-FNO), with optional linear warm-up and a
  linear decay over the last ``lr_decay_frac`` of the steps (``lr_schedule="linear"``), or a cosine
  decay to 5% over all steps (``"cosine"``).
- Batches: a tensor per batch, or a tuple of tensors (activations first) when the data is a tuple, passed
  whole to the model's ``forward_train``; the model's own loss terms arrive as ``SAEOutput.penalty``
  (the sparsity penalty; a supervised SAE's nuisance-label decorrelation), and the model chooses the
  default AuxK size (:meth:`~saeno.sae.base.SparseAutoencoder.default_aux_k`; 0 for a supervised SAE).
- Default length: at least :data:`~saeno.train.config.DEFAULT_MIN_STEPS` steps and one epoch; a
  :class:`ConvergenceWarning` when the last explained variance is below 0.5 or the loss was still
  falling fast at the full learning rate (:func:`~saeno.train.convergence.convergence_warnings`).
- Strategy: the same loop runs in one process (:class:`~saeno.train.strategy.SingleProcess`) or
  data-parallel (:class:`saeno.distributed.train.DataParallel`), which wraps :class:`LossModule` in
  DDP, all-reduces the firing mask and the logged loss sums, and checkpoints and logs from rank 0.
- Resuming restores weights, Adam state, step, data position, dead counters, the AuxK switch and RNG
  states: an interrupted run continues exactly as the uninterrupted one.
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from saeno.errors import SaenoError
from saeno.sae.base import SparseAutoencoder
from saeno.train.checkpoint import (
    load_trainer_state,
    prune_checkpoints,
    save_checkpoint,
)
from saeno.train.config import NORMALIZE_MODES, TrainConfig, as_path, default_steps
from saeno.train.convergence import (
    FALLING_FAST,
    MIN_EV,
    ConvergenceWarning,
    convergence_warnings,
    decay_start,
)
from saeno.train.data import Batch, activations_of, attach_chunk_cache, batch_len, batch_to
from saeno.train.guards import FiniteLossGuard, check_resume, check_train_args
from saeno.train.logging import TrainLogger
from saeno.train.result import TrainResult, log_row, summary_lines
from saeno.train.schedules import default_lr, lr_factor
from saeno.train.strategy import SingleProcess

__all__ = [
    "FALLING_FAST",
    "MIN_EV",
    "NORMALIZE_MODES",
    "ConvergenceWarning",
    "LossModule",
    "TrainConfig",
    "TrainResult",
    "build_optimizer",
    "convergence_warnings",
    "sae_loss",
    "summary_lines",
    "train_sae",
]

#: the summed loss terms of a log row, in the order of :func:`sae_loss`'s first four results
LOSS_TERMS = ("loss", "mse", "aux", "penalty")


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


def sae_loss(
    sae: SparseAutoencoder, batch: Batch, dead: Tensor, aux_on: bool, aux_k: int, aux_coef: float
) -> tuple[Tensor, Tensor, Tensor, Tensor, Any]:
    """The training loss of one batch: ``(loss, mse, aux, penalty, out)``.

    ``loss = mse + penalty + aux_coef * min(1, n_dead / aux_k) * aux``, where ``mse`` is the squared
    reconstruction error summed over channels and averaged over rows (normalised space), ``penalty``
    the sparsity's own penalty (0 for TopK) and ``aux`` the AuxK loss of the ``dead`` concepts on the
    residual, computed only when ``aux_on`` and ``aux_k > 0`` (else 0). ``aux`` and ``penalty`` are
    returned detached, for logging. A tuple ``batch`` is passed to ``sae.forward_train`` as its
    arguments (activations first; e.g. the label mask of a supervised SAE, whose ``penalty`` is its
    own loss term).
    """
    out = sae.forward_train(*batch) if isinstance(batch, tuple) else sae.forward_train(batch)
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


class LossModule(nn.Module):
    """The SAE plus its training loss (:func:`sae_loss`): the module a strategy may wrap (DDP
    all-reduces the gradients of forwards it ran, so the whole loss runs inside ``forward``)."""

    def __init__(self, sae: SparseAutoencoder, aux_k: int, aux_coef: float) -> None:
        super().__init__()
        self.sae, self.aux_k, self.aux_coef = sae, aux_k, aux_coef

    def forward(self, batch: Batch, dead: Tensor, aux_on: bool) -> tuple[Tensor, ...]:
        return sae_loss(self.sae, batch, dead, aux_on, self.aux_k, self.aux_coef)


def build_optimizer(sae: SparseAutoencoder, lr: float) -> torch.optim.Optimizer:
    """Adam over ``sae.param_groups(lr)`` when the model defines it, else one group at ``lr``.

    Every group remembers its own base rate (``base_lr``); the schedule scales each of them.
    """
    groups = (
        sae.param_groups(lr)
        if hasattr(sae, "param_groups")
        else [{"params": list(sae.parameters()), "lr": lr}]
    )
    # multi-tensor kernels (torch's CPU default is a per-tensor loop); results are unchanged
    multi = all(p.device.type in ("cpu", "cuda") for g in groups for p in g["params"])
    optimizer = torch.optim.Adam(groups, lr=lr, betas=(0.9, 0.999), foreach=multi or None)
    for group in optimizer.param_groups:
        group.setdefault("base_lr", group["lr"])
    return optimizer


def train_sae(
    sae: SparseAutoencoder,
    data: Any,
    config: TrainConfig | None = None,
    *,
    strategy: SingleProcess | None = None,
    **options: Any,
) -> TrainResult:
    """Train a sparse autoencoder on raw activations.

    Parameters
    ----------
    sae : SparseAutoencoder
        The model (trained in place).
    data : Tensor, ndarray, ActivationStore, path or iterable of Tensors
        A tensor of all samples ``(N, C, *grid)`` (or rows ``(N, C)`` for a pointwise SAE), an
        ``ActivationStore`` or its path or URL (with ``hook`` when it holds several), or an iterable
        of raw batches. Pointwise SAEs train on rows (the store's ``points`` view), the others on
        fields.
    config : TrainConfig, optional
        The options (default: :class:`~saeno.train.config.TrainConfig`'s defaults).
    strategy : optional
        How to run: :class:`~saeno.train.strategy.SingleProcess` (default) or
        :class:`saeno.distributed.train.DataParallel`.
    **options
        Fields of :class:`~saeno.train.config.TrainConfig` replacing those of ``config``:
        ``hook``, ``steps``, ``epochs``, ``lr``, ``batch_size``, ``device``, ``normalize``, ``aux_k``,
        ``aux_coef``, ``dead_window``, ``resample_every``, ``lr_warmup_steps``, ``lr_decay_frac``,
        ``shuffle_buffer``, ``cache_mib``, ``checkpoint_dir``, ``checkpoint_every``, ``keep_checkpoints``,
        ``resume``, ``log_csv``, ``log_every``, ``tensorboard``, ``wandb``, ``progress``, ``seed``,
        ``store_fingerprint``. Without ``steps`` or ``epochs`` the run takes at least
        :data:`~saeno.train.config.DEFAULT_MIN_STEPS` steps and one epoch.

    Returns
    -------
    TrainResult
        With :attr:`TrainResult.warnings` (also issued as :class:`ConvergenceWarning`) when the run
        looks unconverged.
    """
    cfg = TrainConfig.build(config, **options)
    check_train_args(
        lr=cfg.lr,
        batch_size=cfg.batch_size,
        dead_window=cfg.dead_window,
        log_every=cfg.log_every,
        checkpoint_every=cfg.checkpoint_every,
        keep_checkpoints=cfg.keep_checkpoints,
        aux_k=cfg.aux_k,
    )
    strategy = strategy or SingleProcess()
    device = strategy.device(cfg.device, sae)
    view = sae.view
    batch_size = cfg.batch_size or (4096 if view == "points" else 16)
    source = strategy.source(
        data,
        view=view,
        batch_size=batch_size,
        seed=cfg.seed,
        hook=cfg.hook,
        shuffle_buffer=cfg.shuffle_buffer,
    )
    hook = getattr(source, "hook", cfg.hook)
    from saeno.train.multigrid import MultiGridSource, check_sae_grids

    several = isinstance(source, MultiGridSource)
    if several:
        check_sae_grids(sae, source)
    epochs = cfg.epochs
    if cfg.steps is not None:
        total: int | None = cfg.steps
    elif epochs is not None:
        total = epochs * source.n_batches if source.n_batches is not None else None
    else:
        total = default_steps(source.n_batches)
    attach_chunk_cache(source, cfg.cache_mib, total)
    base_lr = float(cfg.lr) if cfg.lr is not None else default_lr(sae.n_concepts) * sae.default_lr_scale
    aux_k = cfg.aux_k if cfg.aux_k is not None else sae.default_aux_k()
    resample_every = cfg.resample_every
    if resample_every is not None and not hasattr(sae, "resample_concepts_"):
        raise SaenoError(
            f"{type(sae).__name__} cannot resample dead concepts: use "
            "resample_every=None (AuxK still applies)"
        )
    signature = {
        "sae": sae.config(),
        "batch_size": batch_size,
        "seed": cfg.seed,
        "steps": cfg.steps,
        "epochs": epochs,
        "total_steps": total,
        "lr": base_lr,
        "aux_k": aux_k,
        "aux_coef": cfg.aux_coef,
        "dead_window": cfg.dead_window,
        "lr_warmup_steps": cfg.lr_warmup_steps,
        "lr_decay_frac": cfg.lr_decay_frac,
        **({"resample_every": resample_every} if resample_every else {}),
        **({"grids": source.record()} if several else {}),
        **strategy.record(),
        "config": cfg.record(),
    }

    sae.to(device)
    since_fired = torch.zeros(sae.n_concepts, dtype=torch.long, device=device)
    step = epoch = batch_in_epoch = samples = 0
    aux_active = False
    opt_state = None
    ckpt_dir = as_path(cfg.checkpoint_dir)
    start_from = strategy.resume_point(ckpt_dir, cfg.resume)
    if start_from is not None:
        state, tensors, opt_state = load_trainer_state(start_from)
        check_resume(
            start_from,
            state["signature"],
            signature,
            hook=hook,
            fingerprint=cfg.store_fingerprint or getattr(source, "fingerprint", None),
        )
        strategy.check_resume(start_from, state["signature"], signature)
        from safetensors.torch import load_file

        sae.load_state_dict(load_file(str(start_from / "sae_weights.safetensors")), strict=True)
        sae.to(device)
        since_fired = tensors["since_fired"].to(device)
        step, epoch = state["step"], state["epoch"]
        batch_in_epoch, samples = state["batch_in_epoch"], state["samples"]
        aux_active = state["aux_active"]
    else:
        torch.manual_seed(cfg.seed)
        if cfg.normalize != "none":
            mean, var = source.moments()
            sae.set_normalization(*_normalization_from(mean, var, cfg.normalize))
        if getattr(sae, "bias_field", None) is not None and source.n_batches is not None:
            # the training mean field, in normalised units
            sae.fit_bias_field_(activations_of(b) for b in source.epoch(0))
        sae.normalize_decoder_()
    if hook is not None:
        sae.hook = hook
    grids = getattr(source, "grids", None)
    if grids:  # evaluation marks these grids as the training grids
        sae.metadata["train_grids"] = [[int(n) for n in g] for g in grids]
    fingerprint = cfg.store_fingerprint or getattr(source, "fingerprint", None)
    if fingerprint is not None:
        sae.model_fingerprint = fingerprint

    loss_module = strategy.wrap(LossModule(sae, aux_k, cfg.aux_coef))
    optimizer = build_optimizer(sae, base_lr)
    if opt_state is not None:
        optimizer.load_state_dict(opt_state)

    logger = TrainLogger(
        cfg.log_csv if strategy.is_main else None,
        tensorboard=cfg.tensorboard if strategy.is_main else False,
        wandb=cfg.wandb and strategy.is_main,
        config=signature,
        resume=start_from is not None,
        resume_step=step if start_from is not None else None,
    )
    guard = FiniteLossGuard(device)
    from tqdm.auto import tqdm

    desc = strategy.label
    pbar = tqdm(
        total=total, initial=step, disable=not (cfg.progress and strategy.is_main), unit="step", desc=desc
    )
    history: list[dict[str, Any]] = []
    acc = torch.zeros(len(LOSS_TERMS), dtype=torch.float32, device=device)
    acc_n = 0
    last_ckpt: Path | None = None
    last_ckpt_step = -1  # the same on every rank (last_ckpt is None off the main rank)
    start_samples, t0 = samples, time.perf_counter()
    sae.train()

    def checkpoint() -> Path | None:
        path = None
        guard.check(source)
        if strategy.is_main:
            assert ckpt_dir is not None
            state = {
                "step": step,
                "epoch": epoch,
                "batch_in_epoch": batch_in_epoch,
                "samples": samples,
                "aux_active": aux_active,
                "signature": signature,
            }
            path = save_checkpoint(
                ckpt_dir / f"step_{step:08d}", sae, optimizer, state, {"since_fired": since_fired}
            )
            prune_checkpoints(ckpt_dir, cfg.keep_checkpoints, path)
        strategy.barrier()
        return path

    while total is None or step < total:
        got_batch = False
        resumed_mid_epoch = batch_in_epoch > 0
        for batch in source.epoch(epoch, skip=batch_in_epoch):
            got_batch = True
            batch = batch_to(batch, device)
            f = lr_factor(step, total, cfg.lr_warmup_steps, cfg.lr_decay_frac, cfg.lr_schedule)
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * f
            loss, mse, aux, penalty, out = loss_module(batch, since_fired >= cfg.dead_window, aux_active)
            guard.update(loss, step, epoch, batch_in_epoch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sae.normalize_decoder_()
            fired = strategy.any_rank(out.fired())
            since_fired = torch.where(fired, 0, since_fired + 1)
            if (
                resample_every
                and (step + 1) % resample_every == 0
                and (total is None or step + 1 + resample_every <= total)
            ):
                since_fired = _resample(sae, out, since_fired, cfg.dead_window, optimizer)
                strategy.broadcast_parameters(sae)
            acc += torch.stack([loss.detach(), mse.detach(), aux, penalty]).float()
            acc_n += 1
            step += 1
            batch_in_epoch += 1
            samples += batch_len(batch) * strategy.world_size
            at_end = total is not None and step >= total
            if step % cfg.log_every == 0 or at_end:
                guard.check(source)
                strategy.mean_over_ranks(acc)
                row = log_row(
                    step,
                    samples,
                    base_lr * f,
                    dict(zip(LOSS_TERMS, acc)),
                    acc_n,
                    out,
                    since_fired,
                    cfg.dead_window,
                )
                history.append(row)
                logger.log(row)
                pbar.update(step - pbar.n)
                pbar.set_postfix(
                    loss=f"{row['loss']:.4g}",
                    ev=f"{row['ev']:.3f}",
                    l0=f"{row['l0']:.3g}",
                    dead=f"{row['dead_fraction']:.2f}",
                    lr=f"{row['lr']:.2g}",
                )
                aux_active = aux_k > 0 and row["dead_fraction"] > 0
                acc.zero_()
                acc_n = 0
            if ckpt_dir is not None and cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                last_ckpt, last_ckpt_step = checkpoint(), step
            if at_end:
                break
        else:
            epoch += 1
            batch_in_epoch = 0
            if (not got_batch and not resumed_mid_epoch) or (
                cfg.steps is None and epochs is not None and epoch >= epochs
            ):
                break
            continue
        break
    pbar.update(step - pbar.n)
    pbar.close()
    logger.close()
    elapsed = time.perf_counter() - t0
    if ckpt_dir is not None and last_ckpt_step != step:
        last_ckpt = checkpoint()
    sae.eval()
    done_samples = samples - start_samples
    found = convergence_warnings(
        history, decay_start(total, cfg.lr_decay_frac, cfg.lr_schedule, cfg.lr_warmup_steps)
    )
    if strategy.is_main:
        for message in found:
            warnings.warn(message, ConvergenceWarning, stacklevel=2)
    return TrainResult(
        sae=sae,
        steps=step,
        samples=samples,
        elapsed_s=elapsed,
        samples_per_s=done_samples / elapsed if elapsed > 0 else math.nan,
        history=history,
        checkpoint=last_ckpt,
        warnings=found,
    )


def _resample(
    sae: SparseAutoencoder, out: Any, since_fired: Tensor, dead_window: int, optimizer: torch.optim.Optimizer
) -> Tensor:
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
