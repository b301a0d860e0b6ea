"""Data-parallel SAE training with :class:`torch.nn.parallel.DistributedDataParallel`.

Every rank holds a replica of the SAE and streams its own disjoint shard of the store
(:class:`saeno.distributed.data.ShardedBatches`, ``global batch = per-rank batch x world size``); DDP
averages the gradients, so each Adam step equals the step of one process on the union of the ranks'
batches, which is the global batch ``ShardedBatches(shard=None)`` yields. The loop is that of
:func:`saeno.train_sae` (same loss, AuxK, learning-rate schedule and checkpoint format); what differs:

- the loss is computed inside the DDP module's ``forward`` (DDP only all-reduces gradients of
  forwards it ran);
- the "fired" mask of the dead-concept counters is all-reduced (MAX) every step, so the counters, the
  AuxK switch and the decoder renormalisation are identical on every rank;
- logged losses are averaged over the ranks; ``ev`` and ``l0`` are those of rank 0's share;
- rank 0 alone writes checkpoints and the log; a resume makes every rank load the step rank 0 chose.

BatchTopK selects over each rank's share of the batch (not the global batch), and its inference
threshold follows rank 0 (DDP broadcasts buffers): close to, not equal to, one process.
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from saeno.distributed import env
from saeno.distributed.data import ShardedBatches
from saeno.distributed.env import DistInfo
from saeno.errors import SaenoError
from saeno.sae.base import SparseAutoencoder
from saeno.train.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_trainer_state,
    prune_checkpoints,
    save_checkpoint,
)
from saeno.train.data import channel_moments
from saeno.train.logging import TrainLogger
from saeno.train.schedules import default_lr, lr_factor
from saeno.train.trainer import (
    NORMALIZE_MODES,
    TrainResult,
    _fired,
    _log_row,
    _normalization_from,
    sae_loss,
)


class _Loss(nn.Module):
    """The SAE plus its training loss (:func:`saeno.train.trainer.sae_loss`), so that DDP runs the
    whole forward."""

    def __init__(self, sae: SparseAutoencoder, aux_k: int, aux_coef: float) -> None:
        super().__init__()
        self.sae, self.aux_k, self.aux_coef = sae, aux_k, aux_coef

    def forward(self, batch: Tensor, dead: Tensor, aux_on: bool) -> tuple[Tensor, ...]:
        return sae_loss(self.sae, batch, dead, aux_on, self.aux_k, self.aux_coef)


def _all_reduce(t: Tensor, info: DistInfo, op: Any = None) -> Tensor:
    if info.world_size > 1:
        dist.all_reduce(t, op=op or dist.ReduceOp.SUM)
    return t


def _resume_point(ckpt_dir: Path | None, resume: bool | str | Path, info: DistInfo) -> Path | None:
    """The checkpoint every rank resumes from: rank 0's choice, checked visible on every rank."""
    if not resume:
        return None
    if resume is not True:
        path = Path(resume)
    else:
        if ckpt_dir is None:
            raise SaenoError("resume=True needs checkpoint_dir (CLI: --out DIR --resume)")
        found = latest_checkpoint(ckpt_dir) if info.is_main else None
        step = torch.tensor([-1 if found is None else int(found.name.split("_")[1])],
                            dtype=torch.long, device=info.device)
        if info.world_size > 1:
            dist.broadcast(step, src=0)
        if int(step) < 0:
            return None
        path = ckpt_dir / f"step_{int(step):08d}"
    seen = _all_reduce(torch.tensor([0 if path.exists() else 1], device=info.device), info)
    if int(seen):
        raise CheckpointError(f"checkpoint {path} is not visible on {int(seen)} rank(s): put "
                              "--out on a file system every node mounts")
    return path


def train_distributed(
    sae: SparseAutoencoder,
    store: Any,
    *,
    hook: str | None = None,
    steps: int | None = None,
    epochs: int | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    normalize: str = "channel",
    aux_k: int | None = None,
    aux_coef: float = 1 / 32,
    dead_window: int = 200,
    lr_warmup_steps: int = 0,
    lr_decay_frac: float = 0.2,
    shuffle_buffer: int | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    keep_checkpoints: int = 2,
    resume: bool | str | Path = False,
    log_csv: str | Path | None = None,
    log_every: int = 100,
    progress: bool = True,
    seed: int = 0,
    info: DistInfo | None = None,
) -> TrainResult:
    """Train ``sae`` on a store hook with every rank of the process group (DDP).

    Every rank calls it with the same arguments and an identically built ``sae``. The parameters are
    those of :func:`saeno.train_sae`, except:

    Parameters
    ----------
    store
        An :class:`saeno.store.ActivationStore` every rank can read (shared file system or URL).
    batch_size
        The global batch (points for pointwise SAEs, default 4096; fields otherwise, default 16); a
        multiple of the world size. Each rank takes ``batch_size // world_size`` per step.
    checkpoint_dir, log_csv
        Written by rank 0 only; ``checkpoint_dir`` must be visible to every rank for ``resume``.
    info
        The process group (default :func:`saeno.distributed.env.current`; a single process when
        none is initialised, which then trains on ``ShardedBatches(num_shards=1)``).

    Returns
    -------
    TrainResult
        On every rank (the weights are the same on all of them); ``checkpoint`` is rank 0's.

    Notes
    -----
    With the same global batch and seed, the result equals ``saeno.train_sae(sae,
    ShardedBatches(store, hook, view=sae.view, batch_size=batch_size, num_shards=world_size,
    seed=seed), normalize="none", ...)`` after the same normalisation, up to float rounding of the
    gradient averaging.
    """
    info = info or env.current()
    if normalize not in NORMALIZE_MODES:
        raise SaenoError(f"normalize={normalize!r} is unknown: use one of {NORMALIZE_MODES}")
    if steps is not None and epochs is not None:
        raise SaenoError("give steps or epochs, not both")
    if (steps is not None and steps < 1) or (epochs is not None and epochs < 1):
        raise SaenoError("steps and epochs must be >= 1")
    if sae.sparsity.name == "batchtopk" and info.world_size > 1 and info.is_main:
        warnings.warn("BatchTopK selects within each rank's share of the batch under DDP: the run "
                      "is close to, not equal to, single-process training", stacklevel=2)
    device = info.device
    view = sae.view
    if batch_size is None:
        batch_size = 4096 if view == "points" else 16
    source = ShardedBatches(store, hook, view=view, batch_size=batch_size,
                            num_shards=info.world_size, shard=info.rank, seed=seed,
                            shuffle_buffer=shuffle_buffer)
    hook = source.hook
    if epochs is None and steps is None:
        epochs = 1
    total = steps if steps is not None else epochs * source.steps_per_epoch
    base_lr = float(lr) if lr is not None else default_lr(sae.n_concepts)
    if aux_k is None:
        aux_k = min(sae.n_concepts // 2, 256)
    signature = {"sae": sae.config(), "batch_size": batch_size, "seed": seed, "steps": steps,
                 "epochs": epochs, "lr": base_lr, "aux_k": aux_k, "aux_coef": aux_coef,
                 "dead_window": dead_window, "lr_warmup_steps": lr_warmup_steps,
                 "lr_decay_frac": lr_decay_frac, "world_size": info.world_size}

    sae.to(device)
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    start_from = _resume_point(ckpt_dir, resume, info)
    since_fired = torch.zeros(sae.n_concepts, dtype=torch.long, device=device)
    step = epoch = batch_in_epoch = samples = 0
    aux_active = False
    opt_state = None
    if start_from is not None:
        state, tensors, opt_state = load_trainer_state(start_from)
        if state["signature"]["sae"] != signature["sae"]:
            raise CheckpointError(f"checkpoint {start_from} is for another model "
                                  f"({state['signature']['sae']}); build the same SAE to resume")
        planned = state["signature"].get("world_size", 1)
        if (planned, state["signature"].get("batch_size")) != (info.world_size, batch_size):
            raise CheckpointError(
                f"checkpoint {start_from} was written by {planned} process(es) with global batch "
                f"{state['signature'].get('batch_size')}; resume with the same --nproc-per-node/"
                "--nnodes and --batch-size (the data shards depend on both)")
        from safetensors.torch import load_file

        sae.load_state_dict(load_file(str(start_from / "sae_weights.safetensors")), strict=True)
        sae.to(device)
        since_fired = tensors["since_fired"].to(device)
        step, epoch = state["step"], state["epoch"]
        batch_in_epoch, samples = state["batch_in_epoch"], state["samples"]
        aux_active = state["aux_active"]
    else:
        torch.manual_seed(seed)
        if normalize != "none":
            mean, var = _moments(store, hook, source)
            sae.set_normalization(*_normalization_from(mean, var, normalize))
        sae.normalize_decoder_()
    sae.hook = hook
    if source.fingerprint is not None:
        sae.model_fingerprint = source.fingerprint

    module = _Loss(sae, aux_k, aux_coef)
    ddp = (DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)
           if info.world_size > 1 else module)
    optimizer = torch.optim.Adam(sae.parameters(), lr=base_lr, betas=(0.9, 0.999))
    if opt_state is not None:
        optimizer.load_state_dict(opt_state)

    logger = TrainLogger(log_csv if info.is_main else None, config=signature,
                         resume=start_from is not None)
    from tqdm.auto import tqdm

    pbar = tqdm(total=total, initial=step, disable=not (progress and info.is_main), unit="step",
                desc=f"train_sae ({info.world_size} processes)")
    history: list[dict[str, Any]] = []
    acc = torch.zeros(4, dtype=torch.float32, device=device)  # loss, mse, aux, penalty
    acc_n = 0
    last_ckpt: Path | None = None
    last_ckpt_step = -1  # the same on every rank (last_ckpt is None off rank 0)
    start_samples, t0 = samples, time.perf_counter()
    sae.train()

    def checkpoint() -> Path | None:
        path = None
        if info.is_main:
            assert ckpt_dir is not None
            state = {"step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch,
                     "samples": samples, "aux_active": aux_active, "signature": signature}
            path = save_checkpoint(ckpt_dir / f"step_{step:08d}", sae, optimizer, state,
                                   {"since_fired": since_fired})
            prune_checkpoints(ckpt_dir, keep_checkpoints, path)
        env.barrier(info)
        return path

    while step < total:
        for batch in source.epoch(epoch, skip=batch_in_epoch):
            batch = batch.to(device, non_blocking=True)
            f = lr_factor(step, total, lr_warmup_steps, lr_decay_frac)
            for group in optimizer.param_groups:
                group["lr"] = base_lr * f
            dead = since_fired >= dead_window
            loss, mse, aux, penalty, out = ddp(batch, dead, aux_active)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sae.normalize_decoder_()
            fired = _all_reduce(_fired(out).to(torch.int32), info, dist.ReduceOp.MAX)
            since_fired = torch.where(fired.bool(), 0, since_fired + 1)
            acc += torch.stack([loss.detach(), mse.detach(), aux, penalty]).float()
            acc_n += 1
            step += 1
            batch_in_epoch += 1
            samples += batch.shape[0] * info.world_size
            at_end = step >= total
            if step % log_every == 0 or at_end:
                _all_reduce(acc, info)
                acc /= info.world_size
                named = dict(zip(("loss", "mse", "aux", "penalty"), acc))
                row = _log_row(step, samples, base_lr * f, named, acc_n, out, since_fired,
                               dead_window)
                history.append(row)
                logger.log(row)
                pbar.update(step - pbar.n)
                pbar.set_postfix(loss=f"{row['loss']:.4g}", ev=f"{row['ev']:.3f}",
                                 dead=f"{row['dead_fraction']:.2f}")
                aux_active = aux_k > 0 and row["dead_fraction"] > 0
                acc.zero_()
                acc_n = 0
            if ckpt_dir is not None and checkpoint_every and step % checkpoint_every == 0:
                last_ckpt, last_ckpt_step = checkpoint(), step
            if at_end:
                break
        else:
            epoch += 1
            batch_in_epoch = 0
            continue
        break
    pbar.update(step - pbar.n)
    pbar.close()
    logger.close()
    elapsed = time.perf_counter() - t0
    if ckpt_dir is not None and last_ckpt_step != step:
        last_ckpt = checkpoint()
    sae.eval()
    done = samples - start_samples
    return TrainResult(sae=sae, steps=step, samples=samples, elapsed_s=elapsed,
                       samples_per_s=done / elapsed if elapsed > 0 else math.nan,
                       history=history, checkpoint=last_ckpt)


def _moments(store: Any, hook: str, source: ShardedBatches) -> tuple[Any, Any]:
    """The store's statistics (exact, merged at capture); a pass over the data for complex hooks."""
    import numpy as np

    mean, var = store.stats(hook)
    if not (np.iscomplexobj(mean) or np.iscomplexobj(var)):
        return np.asarray(mean, dtype=np.float64), np.asarray(var, dtype=np.float64)
    whole = ShardedBatches(store, hook, view=source.view, batch_size=source.batch_size,
                           num_shards=source.num_shards, seed=source.seed,
                           shuffle_buffer=source.shuffle_buffer)
    return channel_moments(whole.epoch(0), max_batches=64)
