"""Decoded store chunks kept in memory across the epochs of one training run.

A training run reads its store once per epoch, and every read of a chunk decompresses it and checks
its content checksum again. :class:`ChunkCache` keeps the decoded chunks of the first reads, up to a
byte budget, and hands out the same read-only arrays afterwards. The loader's order depends only on
its seed and epoch, never on where a chunk's values come from, so the batches are bit-identical with
and without a cache (``docs/speed.md``, "Training from a store: decoded chunks kept in memory").

Chunks are kept until the budget is full; later chunks are read from the store every time. Nothing is
evicted: an epoch reads every chunk once, in a shuffled order, so the chunk read least recently would
often be the next one needed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable

import numpy as np

from saeno.errors import StoreError

#: default budget: this share of the memory available when training starts ...
DEFAULT_FRACTION = 0.25
#: ... and at most this many bytes
DEFAULT_MAX_BYTES = 4 * 2**30
#: the budget where the platform does not say how much memory is available
FALLBACK_BYTES = 512 * 2**20


def default_budget() -> int:
    """Bytes a cache may hold by default: a quarter of the memory available now, at most 4 GiB."""
    from saeno.pde.readers.common import available_memory

    free = available_memory()
    if free is None:
        return FALLBACK_BYTES
    return int(min(DEFAULT_MAX_BYTES, DEFAULT_FRACTION * free))


class ChunkCache:
    """Decoded chunks of one or more store arrays, up to ``budget_bytes`` in all.

    Parameters
    ----------
    budget_bytes
        The most bytes of decoded chunks held; 0 holds none.

    Attributes
    ----------
    nbytes : int
        Bytes held now.
    hits, misses : int
        Reads served from memory, and reads that went to the store.
    """

    def __init__(self, budget_bytes: int) -> None:
        if budget_bytes < 0:
            raise StoreError(f"a chunk cache's budget must be 0 or more bytes, got {budget_bytes}")
        self.budget = int(budget_bytes)
        self.nbytes = 0
        self.hits = self.misses = 0
        self._chunks: dict[tuple[Hashable, int], np.ndarray] = {}
        self._lock = threading.Lock()

    def reader(self, key: Hashable, read: Callable[[int], np.ndarray]) -> Callable[[int], np.ndarray]:
        """``read`` (chunk number -> decoded rows) served from this cache; ``key`` names the array.

        The arrays returned are read-only, because later reads share them.
        """

        def cached(chunk: int) -> np.ndarray:
            slot = (key, int(chunk))
            with self._lock:
                hit = self._chunks.get(slot)
                if hit is not None:
                    self.hits += 1
                    return hit
                self.misses += 1
            block = read(chunk)
            if block.base is not None:  # a view would keep a larger buffer alive than it counts
                block = block.copy()
            block.flags.writeable = False
            with self._lock:
                if slot not in self._chunks and self.nbytes + block.nbytes <= self.budget:
                    self._chunks[slot] = block
                    self.nbytes += block.nbytes
            return block

        return cached

    def __len__(self) -> int:
        """Chunks held."""
        return len(self._chunks)

    def __repr__(self) -> str:
        return (
            f"ChunkCache({self.nbytes / 2**20:.1f} of {self.budget / 2**20:.1f} MiB, "
            f"{self.hits} hits, {self.misses} misses)"
        )
