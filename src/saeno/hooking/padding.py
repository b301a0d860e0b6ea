"""Crop domain-padded activations back to the input grid, the way neuraloperator's ``DomainPadding`` does.

``FNO.forward`` pads the lifted field with ``domain_padding.pad(x)`` (a method call, not a module call:
no hook sees it), runs the blocks on the padded grid and unpads before the projection. Padding per
dimension is ``round(p * r)`` cells on both sides, for a fraction ``p`` and an input resolution ``r``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from torch import nn


def pad_amounts(domain_padding: float | Sequence[float], grid: Sequence[int]) -> list[int]:
    """Cells added on each side of every dimension, as ``DomainPadding.pad`` computes them.

    Parameters
    ----------
    domain_padding : float or sequence of float
        Padding fraction, one for all dimensions or one per dimension.
    grid : sequence of int
        The unpadded spatial resolution.

    Returns
    -------
    list of int
        One amount per dimension.
    """
    if isinstance(domain_padding, (int, float)):
        fractions = [float(domain_padding)] * len(grid)
    else:
        fractions = [float(p) for p in domain_padding]
    return [round(p * r) for p, r in zip(fractions, grid)]


class PaddingCropper:
    """Maps padded spatial shapes of one forward pass to the slices that crop them.

    Call :meth:`set_input_grid` with the grid the operator receives (a pre-hook does it once per
    forward); :meth:`slices_for` then returns the crop for an activation's spatial shape.

    Parameters
    ----------
    padding : nn.Module
        The model's ``DomainPadding`` module (its ``domain_padding`` attribute holds the fractions).
    """

    def __init__(self, padding: nn.Module) -> None:
        self.padding = padding
        self._by_grid: dict[tuple[int, ...], tuple[tuple[int, ...], tuple | None]] = {}
        self._current: dict[tuple[int, ...], tuple | None] = {}
        self._interior: tuple[tuple[int, ...], list[int], tuple[int, ...]] | None = None
        self._warned: set[tuple[int, ...]] = set()

    def set_input_grid(self, grid: tuple[int, ...]) -> None:
        """Record the unpadded grid of the forward pass that is starting."""
        entry = self._by_grid.get(grid)
        if entry is None:
            amounts = pad_amounts(self.padding.domain_padding, grid)
            padded = tuple(r + 2 * a for r, a in zip(grid, amounts))
            slices = (Ellipsis,) + tuple(slice(a, -a) if a > 0 else slice(None) for a in amounts)
            if not any(amounts):
                slices = None
            entry = self._by_grid[grid] = (padded, slices)
        self._current = {entry[0]: entry[1]}
        fractions: Any = self.padding.domain_padding
        self._interior = (entry[0], pad_amounts(fractions, grid), grid)

    def slices_for(self, spatial_shape: tuple[int, ...]) -> tuple | None:
        """Index that crops an activation of this spatial shape, or ``None`` when it needs none."""
        key = tuple(spatial_shape)
        if key in self._current:
            return self._current[key]
        # a shape changed by resolution_scaling_factor: neuraloperator stores its own unpad indices
        stored = getattr(self.padding, "_unpad_indices", {}).get(f"{list(key)}")
        if stored is not None:
            return stored
        scaled = self._scaled_slices(key)
        if scaled is not None:
            return scaled
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(
                f"cannot tell the domain padding of an activation with grid {key}; it is left uncropped.",
                stacklevel=2,
            )
        return None

    def _scaled_slices(self, shape: tuple[int, ...]) -> tuple | None:
        """Crop of a padded field resampled by a whole-domain factor (a UNO block), when it is exact.

        A field of the padded grid ``P`` resampled to ``S`` keeps the interior ``[a, a + r)`` of each
        dimension at ``[a S / P, (a + r) S / P)``; only integer bounds give an exact crop.
        """
        if self._interior is None:
            return None
        padded, amounts, grid = self._interior
        if len(shape) != len(padded):
            return None
        out: list[slice] = []
        for s, p, a, r in zip(shape, padded, amounts, grid):
            start, stop = a * s, (a + r) * s
            if start % p or stop % p:
                return None
            out.append(slice(start // p, stop // p))
        return (Ellipsis,) + tuple(out)
