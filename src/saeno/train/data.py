"""Batch sources for the trainer: in-memory tensors, activation stores, or any iterable of tensors.

Every source yields raw batches epoch by epoch and can start an epoch at a given batch, so that a
resumed run sees exactly the batches the uninterrupted run would have seen:

- :class:`TensorSource`: one tensor holding all samples, or a tuple of tensors with one entry per sample
  each (activations and what the model's ``forward_train`` takes besides them, e.g. the label mask of a
  supervised SAE: batches are then tuples); shuffled per epoch with a generator seeded by ``(seed,
  epoch)``; the pointwise view packs fields into rows ``(N * n_points, C)`` once.
- :class:`StoreSource`: ``store.loader(hook, view, batch_size, shuffle_buffer, normalize=False,
  seed=seed + epoch)``; resuming skips the batches already consumed in the epoch.
- :class:`IterableSource`: anything iterable (a list, a DataLoader): batches as given.
- :class:`~saeno.train.multigrid.MultiGridSource`: one of the above per grid, drawn in turn (several
  stores, or a :class:`~saeno.train.multigrid.MultiGrid`).
"""

from __future__ import annotations

import inspect
import itertools
import math
import os
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from saeno.errors import SaenoError, ShapeError


def _real_stack(a: Tensor) -> Tensor:
    return torch.cat([a.real, a.imag], dim=1) if a.is_complex() else a


def channel_moments(
    batches: Iterable[Tensor], max_batches: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and variance (over samples and grid points) of raw batches.

    Complex batches count as ``2C`` real channels (real parts, then imaginary parts).
    """
    total: Tensor | None = None
    sq: Tensor | None = None
    count = 0
    for i, batch in enumerate(batches):
        if max_batches is not None and i >= max_batches:
            break
        x = _real_stack(torch.as_tensor(batch)).detach().to(torch.float64)
        dims = [0, *range(2, x.dim())]  # every dimension but the channels, without a transpose
        s, s2 = x.sum(dims), x.pow(2).sum(dims)
        total = s if total is None else total + s
        sq = s2 if sq is None else sq + s2
        count += x.numel() // x.shape[1]
    if count == 0 or total is None or sq is None:
        raise SaenoError("the training data is empty: no batch to train on")
    mean = total / count
    var = (sq / count - mean.pow(2)).clamp_min(0)
    return mean.cpu().numpy(), var.cpu().numpy()


Batch = Tensor | tuple[Tensor, ...]


def batch_to(batch: Batch, device: torch.device) -> Batch:
    """``batch`` (a tensor or a tuple of tensors) on ``device``."""
    if isinstance(batch, tuple):
        return tuple(t.to(device, non_blocking=True) for t in batch)
    return batch.to(device, non_blocking=True)


def batch_len(batch: Batch) -> int:
    """Rows (or fields) in ``batch``."""
    return int((batch[0] if isinstance(batch, tuple) else batch).shape[0])


def activations_of(batch: Batch) -> Tensor:
    """The activations of ``batch`` (its first tensor when it is a tuple)."""
    return batch[0] if isinstance(batch, tuple) else batch


class TensorSource:
    """All samples in one tensor ``(N, C, *grid)`` (or rows ``(N, C)``), or a tuple of tensors sharing
    their first dimension (the activations first), shuffled per epoch."""

    def __init__(
        self, data: Tensor | np.ndarray | tuple[Any, ...], view: str, batch_size: int, seed: int
    ) -> None:
        parts = [torch.as_tensor(t) for t in (data if isinstance(data, tuple) else (data,))]
        acts = parts[0]
        if acts.dim() < 2:
            raise ShapeError(f"training data must be (N, C, *grid) or (N, C), got {tuple(acts.shape)}")
        if any(t.shape[0] != acts.shape[0] for t in parts[1:]):
            raise ShapeError(
                f"the tensors of a training tuple need one entry per sample each; got first dimensions "
                f"{[t.shape[0] for t in parts]}"
            )
        #: the grid the activations live on (None for rows), recorded on the trained SAE
        self.grids = [tuple(int(n) for n in acts.shape[2:])] if acts.dim() > 2 else None
        if view == "points" and acts.dim() > 2:
            if len(parts) > 1:
                raise ShapeError("a pointwise SAE trains on activations alone, not on a tuple of tensors")
            acts = acts.movedim(1, -1).reshape(-1, acts.shape[1])
        elif view == "field" and acts.dim() == 2:
            raise ShapeError("this SAE trains on fields (N, C, *grid); got rows (N, C)")
        self.parts = [acts, *parts[1:]]
        self.data = acts
        self.batch_size = min(batch_size, acts.shape[0])
        self.seed = seed
        self.n_batches = acts.shape[0] // self.batch_size

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[Batch]:
        """Batches of epoch ``epoch`` from batch ``skip`` on."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(self.data.shape[0], generator=gen).to(self.data.device)
        b = self.batch_size
        for i in range(skip, self.n_batches):
            # each batch gathered on its own: no shuffled copy of the whole tensor per epoch
            rows = perm[i * b : (i + 1) * b]
            parts = [t.index_select(0, rows.to(t.device)) for t in self.parts]
            yield tuple(parts) if len(parts) > 1 else parts[0]

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and variance of the whole activation tensor."""
        per_sample = max(1, self.data[0].numel())
        return channel_moments(self.data.split(max(1, 2**20 // per_sample)))  # chunks of ~1M values

    fingerprint = None


def hook_grid(store: Any, hook: str) -> tuple[int, ...]:
    """The grid of one hook's activations (``hook_info`` when the store has it, else ``grid``)."""
    info = getattr(store, "hook_info", None)
    if callable(info):
        return tuple(info(hook)["shape"][1:])
    return tuple(store.grid)


def resolve_hook(store: Any, hook: str | None) -> str:
    """The hook to train on: ``hook``, or the store's only hook when None.

    Raises
    ------
    HookNameError
        If ``hook`` is None and the store holds several hooks, or ``hook`` is not in the store.
    """
    from saeno.store.checks import resolve_hook as resolve

    return resolve(store, hook)


class StoreSource:
    """Batches streamed from an ``ActivationStore`` hook."""

    def __init__(
        self,
        store: Any,
        hook: str | None,
        view: str,
        batch_size: int,
        seed: int,
        shuffle_buffer: int | None = None,
    ) -> None:
        hook = resolve_hook(store, hook)
        self.store, self.hook, self.view = store, hook, view
        self.grids = [hook_grid(store, hook)]
        if shuffle_buffer is None:  # the store's loader keeps store order with 0
            shuffle_buffer = max(batch_size * 16, 65536) if view == "points" else max(batch_size * 8, 256)
        self.batch_size, self.seed, self.shuffle_buffer = batch_size, seed, shuffle_buffer
        self.fingerprint = getattr(store, "fingerprint", None)
        self.n_batches = self._count()
        #: decoded chunks kept for later epochs (:func:`attach_chunk_cache`); None reads the store
        self.cache: Any = None

    def _count(self) -> int | None:
        try:
            n_rows = int(self.store.n_rows)
            if self.view == "points":
                n_rows *= math.prod(hook_grid(self.store, self.hook))
        except (AttributeError, TypeError):
            return None
        return max(1, n_rows // self.batch_size)

    def _loader(self, epoch: int) -> Iterable[Tensor]:
        return self.store.loader(
            self.hook,
            view=self.view,
            batch_size=self.batch_size,
            shuffle_buffer=self.shuffle_buffer,
            normalize=False,
            seed=self.seed + epoch,
            **({"cache": self.cache} if self.cache is not None else {}),
        )

    def takes_cache(self) -> bool:
        """Whether the store's ``loader`` takes a ``cache`` (a user's store object may not)."""
        return "cache" in inspect.signature(self.store.loader).parameters

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[Tensor]:
        """Batches of epoch ``epoch`` from batch ``skip`` on."""
        for batch in itertools.islice(iter(self._loader(epoch)), skip, None):
            yield torch.as_tensor(batch)

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """The store's running statistics (a pass over a few batches for complex activations)."""
        try:
            mean, var = self.store.stats(self.hook)
            mean, var = np.asarray(mean), np.asarray(var)
            if not (np.iscomplexobj(mean) or np.iscomplexobj(var)):
                return mean.astype(np.float64), var.astype(np.float64)
        except (AttributeError, KeyError, NotImplementedError):
            pass
        return channel_moments(self._loader(0), max_batches=64)


class IterableSource:
    """Any iterable of raw tensors; re-iterated for every epoch (a one-shot iterator gives one)."""

    def __init__(self, data: Iterable[Any]) -> None:
        self.data = data
        self.n_batches = len(data) if hasattr(data, "__len__") else None  # type: ignore[arg-type]

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[Tensor]:
        """Batches of the next pass from batch ``skip`` on."""
        for batch in itertools.islice(iter(self.data), skip, None):
            yield torch.as_tensor(batch)

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Statistics of up to 64 batches of a first pass (one-shot iterators: not allowed)."""
        if iter(self.data) is self.data:
            raise SaenoError(
                "cannot estimate the normalisation from a one-shot iterator: pass a "
                "list, a tensor, a re-iterable loader, or normalize='none' after "
                "sae.set_normalization(mean, scale)"
            )
        return channel_moments(self.data, max_batches=64)

    fingerprint = None


def attach_chunk_cache(source: Any, budget_mib: int | None, total_steps: int | None) -> Any:
    """Give the store sources of ``source`` one :class:`~saeno.store.chunk_cache.ChunkCache` when
    the run reads them more than once.

    ``budget_mib`` caps the decoded bytes held (None: a quarter of the memory available, at most 4 GiB;
    0: no cache). The store sources take part when ``total_steps`` spans more than one epoch of
    ``source`` (every epoch of several grids starts each grid's loader again). Returns the cache, or
    None when no source takes part. The batches are the same either way.
    """
    from saeno.store.chunk_cache import ChunkCache, default_budget

    n_batches = getattr(source, "n_batches", None)
    if budget_mib == 0 or total_steps is None or n_batches is None or total_steps <= n_batches:
        return None
    parts = list(getattr(source, "sources", [source]))
    chosen = [s for s in parts if isinstance(s, StoreSource) and s.takes_cache()]
    if not chosen:
        return None
    cache = ChunkCache(default_budget() if budget_mib is None else int(budget_mib) * 2**20)
    for s in chosen:
        s.cache = cache
    return cache


def open_store(data: Any) -> Any:
    """``data`` itself, or the :class:`~saeno.store.ActivationStore` at ``data`` (a path or URL)."""
    if isinstance(data, (str, os.PathLike)):
        from saeno.store.activation_store import ActivationStore

        return ActivationStore.open(data)
    return data


def make_source(
    data: Any, *, view: str, batch_size: int, seed: int, hook: str | None, shuffle_buffer: int | None = None
) -> Any:
    """Pick the batch source for ``data`` (tensor/array, activation store or its path/URL, several
    grids' stores or a :class:`~saeno.train.multigrid.MultiGrid`, iterable)."""
    from saeno.train.multigrid import as_multigrid, make_multigrid_source

    grids = as_multigrid(data)
    if grids is not None:
        return make_multigrid_source(
            grids, view=view, batch_size=batch_size, seed=seed, hook=hook, shuffle_buffer=shuffle_buffer
        )
    data = open_store(data)
    if isinstance(data, (Tensor, np.ndarray)) or (
        isinstance(data, tuple) and data and all(isinstance(t, (Tensor, np.ndarray)) for t in data)
    ):
        return TensorSource(data, view, batch_size, seed)
    if hasattr(data, "loader") and hasattr(data, "stats"):
        return StoreSource(data, hook, view, batch_size, seed, shuffle_buffer)
    if isinstance(data, Iterable):
        return IterableSource(data)
    raise SaenoError(
        f"cannot train on {type(data).__name__}: pass a tensor (N, C, *grid), a tuple of "
        "tensors (activations first), an ActivationStore with hook=, several stores (one per grid), "
        "saeno.train.MultiGrid([...]) for tensors at several grids, or an iterable of tensors"
    )
