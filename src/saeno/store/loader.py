"""Stream batches from one array of an activation store, chunk by chunk.

:class:`StoreLoader` reads whole chunks (the unit the store compresses), optionally in a shuffled
chunk order, mixes their rows in a shuffle buffer and hands out torch batches. Reading,
decompression, shuffling and normalisation run in a prefetch thread, a few batches ahead of the
consumer. Each epoch yields every selected row exactly once (the last batch is smaller unless
``drop_last``); the order is fixed by ``(seed, epoch)``, and iterating again starts the next epoch.

Views: ``"field"`` yields ``(B, C, *grid)`` samples; ``"points"`` yields ``(B, C)`` rows, one per
sample and grid point (a pointwise SAE's input), with each row's sample (store row) and flat grid
position when ``return_index=True``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import zarr

from saeno.errors import StoreError

_END = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class StoreLoader:
    """Iterable of torch batches over the rows of one store array.

    Parameters
    ----------
    array
        The Zarr array ``(N, C, *grid)``; chunks must hold whole samples.
    n_rows
        Rows committed (rows beyond are ignored).
    view
        ``"field"`` or ``"points"``.
    batch_size
        Samples (field) or points (points) per batch.
    shuffle_buffer
        Rows (samples or points) mixed at a time; 0 keeps store order (no shuffling). With
        shuffling, chunk order is shuffled too.
    mean, scale
        Per-channel normalisation ``(a - mean) / scale``, or None for raw values.
    seed
        Seed of the shuffling; epoch ``e`` uses the generator seeded with ``(seed, e)``.
    rows
        Store rows to use (e.g. a train split), default all committed rows.
    drop_last
        Drop the last, smaller batch of each epoch.
    return_index
        Also yield the store row of each sample (field) or of each point and its flat grid position
        (points): ``(batch, rows)`` or ``(batch, rows, positions)``.
    prefetch
        Batches prepared ahead by the prefetch thread.
    read_chunk
        ``read_chunk(chunk) -> rows`` of one whole committed chunk (the store's checked reader);
        default: read the array directly.
    """

    def __init__(
        self,
        array: zarr.Array,
        n_rows: int,
        *,
        view: str = "field",
        batch_size: int = 32,
        shuffle_buffer: int = 0,
        mean: np.ndarray | None = None,
        scale: np.ndarray | None = None,
        seed: int = 0,
        rows: Any = None,
        drop_last: bool = False,
        return_index: bool = False,
        prefetch: int = 4,
        read_chunk: Callable[[int], np.ndarray] | None = None,
    ) -> None:
        if view not in ("field", "points"):
            raise StoreError(f"view must be 'field' or 'points', got {view!r}")
        if batch_size < 1:
            raise StoreError(f"batch_size must be at least 1, got {batch_size}")
        if shuffle_buffer < 0:
            raise StoreError(f"shuffle_buffer must be 0 (no shuffling) or positive, got {shuffle_buffer}")
        self.array = array
        self.n_rows = int(n_rows)
        self.view = view
        self.batch_size = int(batch_size)
        self.shuffle_buffer = int(shuffle_buffer)
        self.mean = mean
        self.scale = scale
        self.seed = seed
        self.drop_last = drop_last
        self.return_index = return_index
        self.prefetch = max(1, int(prefetch))
        self._read_chunk = read_chunk
        self.chunk_size = int(array.chunks[0])
        self.channels = int(array.shape[1])
        self.points_per_sample = int(np.prod(array.shape[2:], dtype=np.int64))
        self.rows = self._select(rows)
        self.epoch = 0

    def _select(self, rows: Any) -> np.ndarray:
        if rows is None:
            return np.arange(self.n_rows, dtype=np.int64)
        if isinstance(rows, slice):
            return np.arange(self.n_rows, dtype=np.int64)[rows]
        sel = np.asarray(rows)
        if sel.dtype == bool:
            if sel.shape != (self.n_rows,):
                raise StoreError(f"a boolean rows mask must have shape ({self.n_rows},), got {sel.shape}")
            return np.flatnonzero(sel).astype(np.int64)
        sel = np.unique(sel.astype(np.int64).reshape(-1))
        if sel.size and (sel[0] < 0 or sel[-1] >= self.n_rows):
            raise StoreError(f"rows must lie in 0..{self.n_rows - 1} (the store's committed rows)")
        return sel

    @property
    def n_items(self) -> int:
        """Rows (field) or points (points) per epoch."""
        per = self.points_per_sample if self.view == "points" else 1
        return int(self.rows.size) * per

    def __len__(self) -> int:
        full, rest = divmod(self.n_items, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self) -> Iterator[Any]:
        epoch = self.epoch
        self.epoch += 1
        q: queue.Queue[Any] = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def put(item: Any) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        def run() -> None:
            try:
                for item in self._batches(epoch):
                    if not put(item):
                        return
                put(_END)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
                put(_Failure(exc))

        thread = threading.Thread(target=run, name="saeno-loader-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                item = q.get()
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.exc
                tensors = tuple(_tensor(a) for a in item)
                yield tensors if self.return_index else tensors[0]
        finally:
            stop.set()
            thread.join()

    # -- producer side (prefetch thread) ---------------------------------------------------------

    def _chunks(self) -> list[tuple[int, np.ndarray]]:
        """(chunk number, selected store rows in it) for every chunk holding selected rows."""
        ids = self.rows // self.chunk_size
        bounds = np.flatnonzero(np.diff(ids)) + 1
        return [(int(part[0] // self.chunk_size), part) for part in np.split(self.rows, bounds) if part.size]

    def _read(self, chunk: int, sel: np.ndarray) -> tuple[np.ndarray, ...]:
        lo = chunk * self.chunk_size
        hi = min(lo + self.chunk_size, self.n_rows)
        # one whole chunk
        block = self._read_chunk(chunk) if self._read_chunk is not None else np.asarray(self.array[lo:hi])
        if sel.size != hi - lo:
            block = block[sel - lo]
        if block.dtype == np.float16 or block.dtype.kind in "iu":
            block = block.astype(np.float32)
        if self.view == "field":
            if self.mean is not None:
                shape = (1, -1) + (1,) * (block.ndim - 2)
                block = (block - self.mean.reshape(shape)) / self.scale.reshape(shape)
            return (np.ascontiguousarray(block, dtype=_out_dtype(block)), sel.copy())
        pts = np.moveaxis(block.reshape(block.shape[0], self.channels, -1), 1, 2).reshape(-1, self.channels)
        if self.mean is not None:
            pts = (pts - self.mean) / self.scale
        pts = np.ascontiguousarray(pts, dtype=_out_dtype(pts))
        g = self.points_per_sample
        return (pts, np.repeat(sel, g), np.tile(np.arange(g, dtype=np.int64), sel.size))

    def _batches(self, epoch: int) -> Iterator[tuple[np.ndarray, ...]]:
        rng = np.random.default_rng([self.seed, epoch])
        chunks = self._chunks()
        shuffle = self.shuffle_buffer > 0
        if shuffle:
            chunks = [chunks[i] for i in rng.permutation(len(chunks))]
        bs = self.batch_size
        pool: list[tuple[np.ndarray, ...]] = []
        pool_n = 0
        keep = self.shuffle_buffer // 2
        for chunk, sel in chunks:
            part = self._read(chunk, sel)
            pool.append(part)
            pool_n += len(part[0])
            if shuffle and pool_n < self.shuffle_buffer:
                continue
            merged = _shuffled(pool, rng.permutation(pool_n)) if shuffle else _concat(pool)
            emit = ((pool_n - (keep if shuffle else 0)) // bs) * bs
            for lo in range(0, emit, bs):
                yield _slice(merged, lo, lo + bs)
            pool = [_slice(merged, emit, pool_n)] if emit < pool_n else []
            pool_n -= emit
        if pool_n:
            merged = _shuffled(pool, rng.permutation(pool_n)) if shuffle else _concat(pool)
            for lo in range(0, pool_n, bs):
                if lo + bs > pool_n and self.drop_last:
                    break
                yield _slice(merged, lo, min(lo + bs, pool_n))


def _tensor(a: np.ndarray) -> torch.Tensor:
    """``a`` as a tensor; a copy when ``a`` is read-only (a view of a cached chunk, which later
    epochs share: the consumer may write into its batch)."""
    return torch.from_numpy(a if a.flags.writeable else a.copy())


def _out_dtype(a: np.ndarray) -> np.dtype:
    return np.dtype(np.complex64) if np.iscomplexobj(a) else np.dtype(np.float32)


def _concat(parts: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
    if len(parts) == 1:
        return parts[0]
    return tuple(np.concatenate(cols) for cols in zip(*parts))


def _shuffled(parts: list[tuple[np.ndarray, ...]], order: np.ndarray) -> tuple[np.ndarray, ...]:
    """``_concat(parts)`` taken in ``order``, each row copied once: every part is scattered straight
    to its rows' places in the result instead of concatenated first."""
    if len(parts) == 1:
        return tuple(a[order] for a in parts[0])
    place = np.empty_like(order)
    place[order] = np.arange(order.size)
    out = []
    for cols in zip(*parts):
        dst = np.empty((order.size, *cols[0].shape[1:]), dtype=np.result_type(*cols))
        lo = 0
        for col in cols:
            dst[place[lo : lo + len(col)]] = col
            lo += len(col)
        out.append(dst)
    return tuple(out)


def _slice(arrays: tuple[np.ndarray, ...], lo: int, hi: int) -> tuple[np.ndarray, ...]:
    return tuple(a[lo:hi] for a in arrays)
