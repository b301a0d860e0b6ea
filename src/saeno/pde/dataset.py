"""``FieldDataset``: paired input/output fields ``(C, *grid)`` with per-sample parameters and labels."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from saeno.errors import DataFormatError


class FieldDataset(Dataset):
    """A torch Dataset of paired fields held in memory.

    Items are ``{"x": (C_in, *grid) float32 tensor, "y": (C_out, *grid) float32 tensor, "index": int,
    "params": {name: float}}`` and collate with torch's default collate.

    Parameters
    ----------
    x, y : numpy.ndarray
        ``(N, C_in, *grid)`` and ``(N, C_out, *grid)``, same ``N`` and grid.
    name : str
        Dataset name (card name or file name).
    card : dict, optional
        The dataset card (or a description of the file it came from).
    params : dict of str to numpy.ndarray, optional
        Per-sample scalar parameters, each ``(N,)``.
    labels : dict of str to list of str, optional
        Per-sample category names for each categorical factor, each of length ``N``.

    Attributes
    ----------
    grid : tuple of int
        Spatial shape.
    resolution : int or tuple of int
        ``grid[0]`` when all sides are equal, else ``grid``.
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        name: str,
        card: dict[str, Any] | None = None,
        params: dict[str, np.ndarray] | None = None,
        labels: dict[str, list[str]] | None = None,
    ) -> None:
        x = np.ascontiguousarray(x, dtype=np.float32)
        y = np.ascontiguousarray(y, dtype=np.float32)
        if x.ndim < 3 or y.ndim != x.ndim or x.shape[0] != y.shape[0] or x.shape[2:] != y.shape[2:]:
            raise DataFormatError(
                f"{name}: expected x (N, C_in, *grid) and y (N, C_out, *grid) with the same N and grid, "
                f"found x {x.shape} and y {y.shape}"
            )
        self.x = x
        self.y = y
        self.name = name
        self.card = dict(card or {})
        n = x.shape[0]
        self.params = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in (params or {}).items()}
        self.labels = {k: [str(s) for s in v] for k, v in (labels or {}).items()}
        for key, values in list(self.params.items()) + list(self.labels.items()):
            if len(values) != n:
                raise DataFormatError(
                    f"{name}: per-sample entry {key!r} has {len(values)} values for {n} samples"
                )
        self.grid = tuple(int(s) for s in x.shape[2:])
        self.resolution: int | tuple[int, ...] = self.grid[0] if len(set(self.grid)) == 1 else self.grid

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        if index < 0:
            index += len(self)
        return {
            "x": torch.from_numpy(self.x[index]),
            "y": torch.from_numpy(self.y[index]),
            "index": index,
            "params": {k: float(v[index]) for k, v in self.params.items()},
        }

    @property
    def in_channels(self) -> int:
        """Number of input channels."""
        return self.x.shape[1]

    @property
    def out_channels(self) -> int:
        """Number of output channels."""
        return self.y.shape[1]

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All inputs and outputs as ``(N, C, *grid)`` tensors (sharing memory with the dataset)."""
        return torch.from_numpy(self.x), torch.from_numpy(self.y)

    def __repr__(self) -> str:
        return (
            f"FieldDataset(name={self.name!r}, n={len(self)}, grid={self.grid}, "
            f"x_channels={self.in_channels}, y_channels={self.out_channels}, params={sorted(self.params)})"
        )
