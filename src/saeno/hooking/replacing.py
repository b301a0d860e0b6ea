"""What every hook site does with an activation: run the hook functions in turn, note an operator's input.

Used by :class:`~saeno.hooking.hooked_operator.HookedOperator`; kept apart so that module stays about
the hook points and their installation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from saeno.errors import ShapeError
from saeno.hooking.hook_point import HookPoint
from saeno.hooking.padding import PaddingCropper

HookFn = Callable[..., "torch.Tensor | None"]


def call_all(fns: tuple[HookFn, ...], point: HookPoint, current: torch.Tensor) -> tuple[torch.Tensor, Any]:
    """Run every hook function in turn; each sees the previous one's replacement."""
    replaced = None
    for fn in fns:
        new = fn(current, hook=point)
        if new is not None:
            if not isinstance(new, torch.Tensor) or new.shape != current.shape:
                got = tuple(new.shape) if isinstance(new, torch.Tensor) else type(new).__name__
                raise ShapeError(
                    f"a hook function on {point.name!r} returned {got}; return None or a tensor of the "
                    f"activation's shape {tuple(current.shape)}."
                )
            current = replaced = new
    return current, replaced


def input_recorder(cropper: PaddingCropper | None, batch: dict[str, int], scope: str) -> Callable[..., None]:
    """Forward pre-hook on an operator: tell ``cropper`` its input's grid, and note the batch size."""

    def record_input(module: nn.Module, args: tuple, kwargs: dict) -> None:
        x = args[0] if args else next(iter(kwargs.values()), None)
        if isinstance(x, torch.Tensor):
            batch[scope] = int(x.shape[0])
            if cropper is not None:
                cropper.set_input_grid(tuple(x.shape[2:]))

    return record_input
