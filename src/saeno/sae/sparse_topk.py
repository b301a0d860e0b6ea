"""TopK encoding of rows with exact, sparse gradients.

The pointwise SAE's pre-activations ``pre = x W + b`` are an ``(N, p)`` dense product, the one cost
of a step that cannot be avoided. Under TopK only ``k`` of the ``p`` values per row reach the loss, so
autograd's dense backward (two more ``(N, C) x (C, p)`` products and an ``(N, p)`` gradient filled
with zeros) does ``p / k`` times more work than the gradient needs. The two functions here split
the pre-activations into

- :func:`dense_pre`: the full ``(N, p)`` tensor, whose backward (dense, as autograd's) runs only when a
  loss actually uses it, i.e. the AuxK term on dead concepts;
- :func:`gather_pre`: the selected values ``pre[n, idx[n, s]]``, recomputed from nothing (gathered
  from the already computed product) and with a backward of ``O(N k C)``.

Both give the gradients of the dense formulation exactly (up to the order of float summation); the
tests compare them against autograd on ``torch.addmm``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


class _DensePre(torch.autograd.Function):
    """``x @ W + b`` whose backward is autograd's dense one (only run when the result is used)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, w: Tensor, b: Tensor) -> Tensor:
        ctx.save_for_backward(x, w)
        return torch.addmm(b, x, w)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        x, w = ctx.saved_tensors
        gx = g @ w.T if ctx.needs_input_grad[0] else None
        gw = x.T @ g if ctx.needs_input_grad[1] else None
        gb = g.sum(0) if ctx.needs_input_grad[2] else None
        return gx, gw, gb


class _GatherPre(torch.autograd.Function):
    """The values ``pre[n, idx[n, s]]`` of ``pre = x @ W + b`` with an ``O(N k C)`` backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, w: Tensor, b: Tensor, idx: Tensor, vals: Tensor) -> Tensor:
        ctx.save_for_backward(x, w, idx)
        return vals.clone()

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        x, w, idx = ctx.saved_tensors
        flat = idx.reshape(-1)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = F.embedding_bag(idx, w.T.contiguous(), per_sample_weights=g.contiguous(), mode="sum")
        if ctx.needs_input_grad[1]:
            rows = (g.unsqueeze(-1) * x.unsqueeze(1)).reshape(-1, x.shape[1])
            gw = x.new_zeros(w.shape[1], w.shape[0]).index_add_(0, flat, rows).T
        if ctx.needs_input_grad[2]:
            gb = g.new_zeros(w.shape[1]).index_add_(0, flat, g.reshape(-1))
        return gx, gw, gb, None, None


def dense_pre(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """Pre-activations ``x @ w + b`` ``(N, p)``; the dense backward runs only if a loss uses them.

    Parameters
    ----------
    x : Tensor
        Centred input rows ``(N, C)``.
    w : Tensor
        Encoder weights ``(C, p)``.
    b : Tensor
        Encoder bias ``(p,)``.
    """
    return _DensePre.apply(x, w, b)


def gather_pre(x: Tensor, w: Tensor, b: Tensor, pre: Tensor, idx: Tensor) -> Tensor:
    """The selected pre-activations ``pre[n, idx[n, s]]`` with a sparse, exact backward.

    Parameters
    ----------
    x, w, b : Tensor
        As for :func:`dense_pre`; ``pre`` must equal ``x @ w + b``.
    pre : Tensor
        The pre-activations (values only; detached inside).
    idx : Tensor
        ``(N, k)`` int64 indices of the selected concepts per row.

    Returns
    -------
    Tensor
        ``(N, k)`` values, differentiable in ``x``, ``w`` and ``b``.
    """
    return _GatherPre.apply(x, w, b, idx, pre.detach().gather(1, idx))


def topk_rows(x: Tensor, w: Tensor, b: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """TopK selection of rows: ``(pre, vals, idx)`` with ``vals = relu(pre[n, idx])``.

    ``pre`` is the dense pre-activation (for AuxK; its backward only runs when it is used), ``vals``
    the ``k`` kept codes per row with a sparse backward, ``idx`` their concepts.
    """
    pre = dense_pre(x, w, b)
    top, idx = pre.detach().topk(k, dim=1, sorted=False)
    vals = _GatherPre.apply(x, w, b, idx, top).relu()
    return pre, vals, idx


__all__ = ["dense_pre", "gather_pre", "topk_rows"]
