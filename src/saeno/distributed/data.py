"""Disjoint shards of a store hook whose per-step union is one global batch.

Sharding (per epoch ``e``): the store's chunks are permuted with a generator seeded by
``(seed, e)`` and dealt round-robin to ``num_shards`` shards (``perm[r::num_shards]``), so the shards
are disjoint, read whole chunks only, and change every epoch. Shard ``r`` streams its rows with
``store.loader(rows=<its rows>, batch_size=global_batch // num_shards, drop_last=True)`` and its own
shuffle seed. Step ``t`` of the epoch is the concatenation, in shard order, of every shard's ``t``-th
local batch; every shard yields the same number of steps (that of the smallest possible shard).

:class:`ShardedBatches` with ``shard=None`` yields those global batches in one process (reading every
shard): it is the single-process reference of a data-parallel run, and an ordinary iterable for
:func:`saeno.train_sae`. With ``shard=r`` it yields only shard ``r``'s local batches: what rank ``r``
of the data-parallel run reads.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from saeno.distributed.env import DistributedError
from saeno.train.data import channel_moments, resolve_hook


class ShardedBatches:
    """Global batches of one store hook, cut into ``num_shards`` disjoint per-rank shards.

    Parameters
    ----------
    store
        An :class:`saeno.store.ActivationStore`.
    hook
        The hook to stream (default: the store's only hook).
    view
        ``"points"`` (rows ``(B, C)``) or ``"field"`` (samples ``(B, C, *grid)``).
    batch_size
        Global batch: points or fields per step over all shards; a multiple of ``num_shards``.
    num_shards
        Number of shards (the world size of the data-parallel run).
    shard
        Which shard to yield; None yields whole global batches (the single-process reference).
    seed
        Seed of the chunk dealing and of the shuffling.
    shuffle_buffer
        Rows (points or fields) each shard mixes at a time (default as ``saeno.train_sae``: 16
        local batches or 65536 points, 8 local batches or 256 fields).
    """

    def __init__(
        self,
        store: Any,
        hook: str | None = None,
        *,
        view: str = "points",
        batch_size: int = 4096,
        num_shards: int = 1,
        shard: int | None = None,
        seed: int = 0,
        shuffle_buffer: int | None = None,
    ) -> None:
        hook = resolve_hook(store, hook)
        if num_shards < 1 or (shard is not None and not 0 <= shard < num_shards):
            raise DistributedError(f"shard {shard} of {num_shards} does not exist")
        if batch_size < num_shards or batch_size % num_shards:
            raise DistributedError(
                f"the global batch ({batch_size}) must be a multiple of the number of processes "
                f"({num_shards}) so that every rank gets an equal share: pass --batch-size "
                f"{max(1, round(batch_size / num_shards)) * num_shards}"
            )
        self.store, self.hook, self.view = store, hook, view
        self.batch_size, self.num_shards, self.shard, self.seed = batch_size, num_shards, shard, seed
        self.local_batch = batch_size // num_shards
        if shuffle_buffer is None:
            shuffle_buffer = (
                max(self.local_batch * 16, 65536) if view == "points" else max(self.local_batch * 8, 256)
            )
        self.shuffle_buffer = shuffle_buffer
        self.fingerprint = getattr(store, "fingerprint", None)
        self.n_rows = int(store.n_rows)
        self.chunk_size = int(store[hook].chunks[0])
        self.n_chunks = math.ceil(self.n_rows / self.chunk_size)
        self.points = math.prod(store.hook_info(hook)["shape"][1:]) if view == "points" else 1
        if self.n_chunks < num_shards:
            raise DistributedError(
                f"the store has {self.n_chunks} chunk(s) of {self.chunk_size} samples, fewer than "
                f"the {num_shards} processes: use fewer processes or capture with a smaller "
                "--chunk-size"
            )
        # the smallest shard any epoch can deal: floor(n_chunks / W) chunks, the short last one among them
        short = self.n_chunks * self.chunk_size - self.n_rows
        min_rows = (self.n_chunks // num_shards) * self.chunk_size - short
        self.steps_per_epoch = (min_rows * self.points) // self.local_batch
        if self.steps_per_epoch < 1:
            raise DistributedError(
                f"a shard holds at least {min_rows * self.points} {view}, fewer than one per-process "
                f"batch ({self.local_batch}): lower --batch-size or use fewer processes"
            )
        self._next_epoch = 0

    def shard_rows(self, epoch: int, shard: int) -> np.ndarray:
        """Store rows of ``shard`` in ``epoch`` (sorted)."""
        perm = np.random.default_rng([self.seed, epoch]).permutation(self.n_chunks)
        chunks = np.sort(perm[shard :: self.num_shards])
        rows = (chunks[:, None] * self.chunk_size + np.arange(self.chunk_size)[None, :]).reshape(-1)
        return rows[rows < self.n_rows]

    def local_batches(self, epoch: int, shard: int) -> Iterator[Tensor]:
        """The ``steps_per_epoch`` local batches of ``shard`` in ``epoch``."""
        loader = self.store.loader(
            self.hook,
            view=self.view,
            batch_size=self.local_batch,
            shuffle_buffer=self.shuffle_buffer,
            normalize=False,
            seed=self.seed * 1_000_003 + epoch * 1009 + shard,
            rows=self.shard_rows(epoch, shard),
            drop_last=True,
        )
        for batch in itertools.islice(iter(loader), self.steps_per_epoch):
            yield torch.as_tensor(batch)

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[Tensor]:
        """Batches of ``epoch`` from step ``skip`` on: this shard's, or global ones (``shard=None``)."""
        if self.shard is not None:
            yield from itertools.islice(self.local_batches(epoch, self.shard), skip, None)
            return
        parts = [self.local_batches(epoch, r) for r in range(self.num_shards)]
        for batches in itertools.islice(zip(*parts), skip, None):
            yield torch.cat(batches)

    def __iter__(self) -> Iterator[Tensor]:
        """The next epoch (each new iteration is a new epoch, as with ``store.loader``)."""
        epoch = self._next_epoch
        self._next_epoch += 1
        return self.epoch(epoch)

    def __len__(self) -> int:
        return self.steps_per_epoch

    @property
    def n_batches(self) -> int:
        """Steps per epoch (the trainer's name for it)."""
        return self.steps_per_epoch

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """The store's per-channel statistics (exact, merged at capture); for complex activations a
        pass over up to 64 global batches (the same on every rank)."""
        mean, var = self.store.stats(self.hook)
        if not (np.iscomplexobj(mean) or np.iscomplexobj(var)):
            return np.asarray(mean, dtype=np.float64), np.asarray(var, dtype=np.float64)
        whole = ShardedBatches(
            self.store,
            self.hook,
            view=self.view,
            batch_size=self.batch_size,
            num_shards=self.num_shards,
            seed=self.seed,
            shuffle_buffer=self.shuffle_buffer,
        )
        return channel_moments(whole.epoch(0), max_batches=64)
