"""Zarr v3 ``dimension_names`` and grid coordinates, so that xarray (and dask) can open a store.

Every array gets dimension names: ``sample`` first, then its channel axis, then the space axes. The channel
axis is named per array (``x_channel``, ``blocks.0.hook_out_channel``, ...) because arrays in one group
have different channel counts (inputs, outputs, hooks), which xarray refuses under one dimension name. The
space axes are ``grid_x``, ``grid_y``, ``grid_z`` (not ``x``/``y``/``z``: the store's input and output arrays
are themselves named ``x`` and ``y``, and xarray refuses a variable named like one of its dimensions that
is not its 1-D coordinate); an array on another grid than the inputs' gets ``grid_x_<size>``.
:func:`write_grid_coords` adds the 1-D coordinate arrays ``grid_x`` ... at the root: cell positions
``i / n`` on the unit interval, which ``xarray.open_datatree`` hands down to the ``acts`` group.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

SPACE = ("grid_x", "grid_y", "grid_z")


def dimension_names(name: str, shape: Sequence[int], grid: Sequence[int]) -> tuple[str, ...]:
    """Names of the axes of array ``name`` of ``shape`` ``(N, [C, *space])``; ``grid`` is the inputs' grid."""
    shape = tuple(int(s) for s in shape)
    if len(shape) <= 1:
        return ("sample",)[: len(shape)]
    base = name.split("/")[-1]
    space = shape[2:]
    same = tuple(space) == tuple(int(g) for g in grid)
    names = [SPACE[i] if same else f"{SPACE[i]}_{n}" for i, n in enumerate(space[:3])]
    names += [f"space_{i}" for i in range(3, len(space))]
    return ("sample", f"{base}_channel", *names)


def grid_coords(grid: Sequence[int]) -> dict[str, np.ndarray]:
    """The 1-D coordinate arrays ``grid_x``, ``grid_y``, ``grid_z`` of ``grid``: cell positions ``i / n``."""
    return {name: np.arange(int(n), dtype=np.float64) / int(n) for name, n in zip(SPACE, grid)}


def write_grid_coords(group: Any, grid: Sequence[int]) -> None:
    """Write the 1-D coordinate arrays ``grid_x``, ``grid_y``, ``grid_z`` of ``grid`` into ``group``."""
    for name, values in grid_coords(grid).items():
        group.create_array(name, data=values, dimension_names=(name,), overwrite=True)
