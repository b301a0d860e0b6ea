"""Turn what users pass as ``data`` into batches with a fixed row numbering.

A source is a tensor of inputs ``(N, C, *grid)``, a map-style Dataset or a DataLoader whose items or
batches are tensors, ``(x, y)`` pairs or dicts ``{"x", "y", "index", "params"}`` (the contract of
``saeno.datasets.load``). :func:`iter_batches` yields :class:`Batch` objects whose rows are numbered
from 0 in the order the data gives them; tensors and Datasets are cut into batches aligned to
multiples of ``batch_size`` (so that a resumed capture runs exactly the batches an uninterrupted one
ran), DataLoaders keep their own batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from saeno.errors import ShapeError, StoreError


@dataclass
class Batch:
    """Rows ``start .. start + len(x)`` of the data."""

    start: int
    x: torch.Tensor
    y: torch.Tensor | None = None
    index: np.ndarray | None = None
    params: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.x.shape[0])


def dataset_of(data: Any) -> Any:
    """The Dataset behind ``data`` (a DataLoader's dataset, else ``data`` itself)."""
    return data.dataset if isinstance(data, DataLoader) else data


def length_of(data: Any) -> int | None:
    """Number of samples in ``data``, or None when it cannot be known up front."""
    if isinstance(data, torch.Tensor):
        return int(data.shape[0])
    ds = dataset_of(data)
    try:
        return len(ds)
    except TypeError:
        return None


def _as_batch(start: int, item: Any) -> Batch:
    if isinstance(item, torch.Tensor):
        return Batch(start, item)
    if isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], torch.Tensor):
        return Batch(start, item[0], item[1])
    if isinstance(item, dict):
        if "x" not in item:
            raise ShapeError(
                f"data items are dicts without an 'x' key (keys: {sorted(item)}); give dicts "
                "{'x': inputs, 'y': targets, 'index': ..., 'params': {...}} or plain input tensors"
            )
        index = item.get("index")
        if index is not None:
            index = torch.as_tensor(index).cpu().numpy().astype(np.int64).reshape(-1)
        params = {
            str(k): torch.as_tensor(v).cpu().numpy().astype(np.float64).reshape(-1)
            for k, v in (item.get("params") or {}).items()
        }
        return Batch(start, item["x"], item.get("y"), index, params)
    raise ShapeError(
        f"cannot capture from data items of type {type(item).__name__}; give a tensor of inputs "
        "(N, C, *grid), a Dataset or a DataLoader of tensors or {'x', 'y'} dicts"
    )


def iter_batches(data: Any, batch_size: int, start: int, stop: int | None) -> Iterator[Batch]:
    """Yield the batches holding rows ``start .. stop`` (the first may begin before ``start``).

    Parameters
    ----------
    data
        Tensor, Dataset or DataLoader.
    batch_size
        Rows per batch for tensors and Datasets (a DataLoader keeps its own batching).
    start
        First row needed. Tensor and Dataset batches begin at multiples of ``batch_size``, so the
        first batch may hold earlier rows; DataLoader batches that end before ``start`` are
        yielded with ``x`` only so the caller can check their indices (their forward is skipped).
    stop
        One past the last row needed, or None for all rows.
    """
    if batch_size < 1:
        raise StoreError(f"batch_size must be at least 1, got {batch_size}")
    first = (start // batch_size) * batch_size
    if isinstance(data, torch.Tensor):
        n = data.shape[0] if stop is None else min(stop, data.shape[0])
        for lo in range(first, n, batch_size):
            yield Batch(lo, data[lo : min(lo + batch_size, n)])
        return
    if isinstance(data, DataLoader):
        row = 0
        for item in data:
            batch = _as_batch(row, item)
            row += len(batch)
            yield batch
            if stop is not None and row >= stop:
                return
        return
    if isinstance(data, Dataset) or hasattr(data, "__getitem__"):
        n = len(data) if stop is None else min(stop, len(data))
        loader = DataLoader(Subset(data, range(first, n)), batch_size=batch_size, shuffle=False)
        row = first
        for item in loader:
            batch = _as_batch(row, item)
            if batch.index is None:
                batch.index = np.arange(row, row + len(batch), dtype=np.int64)
            row += len(batch)
            yield batch
        return
    raise ShapeError(
        f"cannot capture from data of type {type(data).__name__}; give a tensor of inputs "
        "(N, C, *grid), a Dataset or a DataLoader"
    )
