"""Data-parallel SAE training: :func:`saeno.train_sae` with the :class:`DataParallel` strategy.

Every rank holds a replica of the SAE and streams its own disjoint shard of the store
(:class:`saeno.distributed.data.ShardedBatches`, ``global batch = per-rank batch x world size``); DDP
averages the gradients, so each Adam step equals the step of one process on the union of the ranks'
batches, which is the global batch ``ShardedBatches(shard=None)`` yields. The loop is
:func:`saeno.train_sae`'s; the strategy supplies what differs:

- the loss module (:class:`saeno.train.trainer.LossModule`) is wrapped in DDP (DDP only all-reduces
  gradients of forwards it ran);
- the "fired" mask of the dead-concept counters is all-reduced (MAX) every step, so the counters, the
  AuxK switch and the decoder renormalisation are identical on every rank; after a resampling of dead
  concepts rank 0's parameters are broadcast;
- logged losses are averaged over the ranks; ``ev`` and ``l0`` are those of rank 0's share;
- rank 0 alone writes checkpoints and logs; a resume makes every rank load the step rank 0 chose.

BatchTopK selects over each rank's share of the batch (not the global batch), and its inference
threshold follows rank 0 (DDP broadcasts buffers): close to, not equal to, one process.
"""

from __future__ import annotations

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
from saeno.sae.base import SparseAutoencoder
from saeno.train.checkpoint import CheckpointError
from saeno.train.config import TrainConfig
from saeno.train.data import open_store
from saeno.train.strategy import SingleProcess
from saeno.train.trainer import TrainResult, train_sae


class DataParallel(SingleProcess):
    """The strategy of a torch.distributed process group (``info``; default: the current one)."""

    def __init__(self, info: DistInfo | None = None) -> None:
        self.info = info or env.current()
        self.world_size, self.rank = self.info.world_size, self.info.rank
        self.is_main = self.info.is_main
        self.label = f"train_sae ({self.world_size} processes)"

    def device(self, requested: str | torch.device | None, model: nn.Module) -> torch.device:
        """This rank's device (``info.device``) unless ``requested`` names one."""
        return torch.device(requested) if requested is not None else self.info.device

    def source(
        self,
        data: Any,
        *,
        view: str,
        batch_size: int,
        seed: int,
        hook: str | None,
        shuffle_buffer: int | None,
    ) -> ShardedBatches:
        """This rank's shard of the store ``data`` (an ActivationStore or its path)."""
        return ShardedBatches(
            open_store(data),
            hook,
            view=view,
            batch_size=batch_size,
            num_shards=self.world_size,
            shard=self.rank,
            seed=seed,
            shuffle_buffer=shuffle_buffer,
        )

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` in DDP (unwrapped with one process)."""
        if self.world_size == 1:
            return module
        device = next(module.parameters()).device
        return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)

    def _all_reduce(self, t: Tensor, op: Any = None) -> Tensor:
        if self.world_size > 1:
            dist.all_reduce(t, op=op or dist.ReduceOp.SUM)
        return t

    def any_rank(self, mask: Tensor) -> Tensor:
        """Logical OR of ``mask`` over the ranks (an all-reduce MAX)."""
        return self._all_reduce(mask.to(torch.int32), dist.ReduceOp.MAX).bool()

    def mean_over_ranks(self, sums: Tensor) -> Tensor:
        """``sums`` averaged over the ranks, in place."""
        self._all_reduce(sums)
        return sums.div_(self.world_size)

    def broadcast_parameters(self, module: nn.Module) -> None:
        """Copy rank 0's parameters to every rank."""
        if self.world_size > 1:
            with torch.no_grad():
                for p in module.parameters():
                    dist.broadcast(p.data, src=0)

    def barrier(self) -> None:
        """Wait for every rank."""
        env.barrier(self.info)

    def resume_point(self, checkpoint_dir: Path | None, resume: bool | str | Path) -> Path | None:
        """The checkpoint every rank resumes from: rank 0's choice, checked visible on every rank."""
        if not resume:
            return None
        info = self.info
        if resume is not True:
            path = Path(resume)
        else:
            found = super().resume_point(checkpoint_dir, resume) if info.is_main else None
            step = torch.tensor(
                [-1 if found is None else int(found.name.split("_")[1])], dtype=torch.long, device=info.device
            )
            if self.world_size > 1:
                dist.broadcast(step, src=0)
            if int(step) < 0:
                return None
            assert checkpoint_dir is not None
            path = Path(checkpoint_dir) / f"step_{int(step):08d}"
        seen = self._all_reduce(torch.tensor([0 if path.exists() else 1], device=info.device))
        if int(seen):
            raise CheckpointError(
                f"checkpoint {path} is not visible on {int(seen)} rank(s): put "
                "--out on a file system every node mounts"
            )
        return path

    def check_resume(self, checkpoint: Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
        """Refuse a checkpoint of another world size or global batch (the shards depend on both)."""
        planned = saved.get("world_size", 1)
        if (planned, saved.get("batch_size")) != (self.world_size, current["batch_size"]):
            raise CheckpointError(
                f"checkpoint {checkpoint} was written by {planned} process(es) with global batch "
                f"{saved.get('batch_size')}; resume with the same --nproc-per-node/--nnodes and "
                "--batch-size (the data shards depend on both)"
            )

    def record(self) -> dict[str, Any]:
        """The world size (stored in the run record)."""
        return {"world_size": self.world_size}


def train_distributed(
    sae: SparseAutoencoder,
    store: Any,
    config: TrainConfig | None = None,
    *,
    info: DistInfo | None = None,
    **options: Any,
) -> TrainResult:
    """Train ``sae`` on a store hook with every rank of the process group (DDP).

    Every rank calls it with the same arguments and an identically built ``sae``: this is
    ``saeno.train_sae(sae, store, config, strategy=DataParallel(info), **options)``. ``batch_size``
    is the global batch (a multiple of the world size); ``checkpoint_dir`` and logs are written by
    rank 0 only, and ``checkpoint_dir`` must be visible to every rank for ``resume``.

    Notes
    -----
    With the same global batch and seed, the result equals ``saeno.train_sae(sae,
    ShardedBatches(store, hook, view=sae.view, batch_size=batch_size, num_shards=world_size,
    seed=seed), normalize="none", ...)`` after the same normalisation, up to float rounding of the
    gradient averaging.
    """
    strategy = DataParallel(info)
    if getattr(sae.sparsity, "name", None) == "batchtopk" and strategy.world_size > 1 and strategy.is_main:
        warnings.warn(
            "BatchTopK selects within each rank's share of the batch under DDP: the run "
            "is close to, not equal to, single-process training",
            stacklevel=2,
        )
    return train_sae(sae, store, config, strategy=strategy, **options)
