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

from saeno.sae import topk_kernel


class _DensePre(torch.autograd.Function):
    """``x @ W + b`` whose backward is autograd's dense one (only run when the result is used)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, w: Tensor, b: Tensor) -> Tensor:
        ctx.save_for_backward(x, w)
        return torch.mm(x, w).add_(b)  # cheaper on CPU than addmm, which first copies b out

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


def select_topk(pre: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The ``k`` largest values of each row ``(N, p)`` and their columns (in no particular order).

    The compiled CPU kernel of :mod:`saeno.sae.topk_kernel` when it applies (numba installed),
    else ``torch.topk``; both give the exact TopK set.
    """
    pre = pre.detach()
    found = topk_kernel.topk_rows(pre, k)
    if found is not None:
        return found
    return pre.topk(k, dim=1, sorted=False)


class _TopKAutoencode(torch.autograd.Function):
    """Decoder of the kept codes and the whole sparse backward of a TopK SAE, in one node.

    Forward: ``y = sum_s vals[n, s] W_d[idx[n, s]] + b_d`` with ``vals = relu(pre[n, idx])`` and
    ``pre = (t - b_d) W_e + b_e``. Backward (``g = dL/dy``): the kept codes' gradient
    ``g_s = <g, W_d[idx_s]> 1[vals_s > 0]`` and from it, with one gather and three
    ``index_add`` passes over the ``N k`` kept entries, the gradients of ``W_e``, ``b_e`` and
    ``W_d``; ``b_d`` gets ``sum_n g - W_e (dL/db_e)``, which is the sum over rows of the input
    gradient ``-sum_s g_s W_e[:, idx_s]`` without forming it row by row.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        b_dec: Tensor,
        w_enc: Tensor,
        b_enc: Tensor,
        w_dec: Tensor,
        idx: Tensor,
        vals: Tensor,
    ) -> Tensor:
        ctx.save_for_backward(x, w_enc, w_dec, idx, vals)
        return F.embedding_bag(idx, w_dec, per_sample_weights=vals, mode="sum").add_(b_dec)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        x, w_enc, w_dec, idx, vals = ctx.saved_tensors
        g = g.contiguous()
        need = ctx.needs_input_grad
        found = topk_kernel.sparse_grads(x, g, w_dec, idx, vals, w_enc.shape[1])
        if found is not None:
            gw_enc_t, gw_dec, gb_enc = found
        else:
            gw_enc_t, gw_dec, gb_enc = _sparse_grads(x, g, w_dec, idx, vals, w_enc.shape[1])
        gb_dec = g.sum(0) - w_enc @ gb_enc if need[1] else None
        return (
            None,
            gb_dec,
            gw_enc_t.T if need[2] else None,
            gb_enc if need[3] else None,
            gw_dec if need[4] else None,
            None,
            None,
        )


def _sparse_grads(
    x: Tensor, g: Tensor, w_dec: Tensor, idx: Tensor, vals: Tensor, p: int
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`saeno.sae.topk_kernel.sparse_grads` with torch operations (no numba)."""
    n, k = idx.shape
    c = x.shape[1]
    flat = idx.reshape(-1)
    # dL/dvals through the ReLU: <g_n, W_d[idx_ns]> where the code is positive
    gv = torch.bmm(F.embedding(idx, w_dec), g.unsqueeze(2)).view(n, k)
    gv.mul_(vals > 0)
    gb_enc = gv.new_zeros(p).index_add_(0, flat, gv.view(-1))
    gw_enc_t = x.new_zeros(p, c).index_add_(0, flat, (gv.unsqueeze(2) * x.unsqueeze(1)).view(-1, c))
    gw_dec = x.new_zeros(p, c).index_add_(0, flat, (vals.unsqueeze(2) * g.unsqueeze(1)).view(-1, c))
    return gw_enc_t, gw_dec, gb_enc


def topk_autoencode(
    t: Tensor, b_dec: Tensor, w_enc: Tensor, b_enc: Tensor, w_dec: Tensor, k: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A TopK SAE on rows, forward and sparse backward: ``(y, pre, vals, idx)``.

    Parameters
    ----------
    t : Tensor
        Normalised input rows ``(N, C)`` (no gradient).
    b_dec, w_enc, b_enc, w_dec : Tensor
        Decoder bias ``(C,)``, encoder ``(C, p)``, encoder bias ``(p,)``, decoder ``(p, C)``.
    k : int
        Concepts kept per row.

    Returns
    -------
    y : Tensor
        Reconstruction ``(N, C)``, with the sparse backward of :class:`_TopKAutoencode`.
    pre : Tensor
        The dense pre-activations ``(t - b_dec) w_enc + b_enc``, with a dense backward that runs
        only if a loss uses them (AuxK).
    vals, idx : Tensor
        The ``k`` kept codes per row (no gradient) and their concepts.
    """
    x = t - b_dec
    pre = dense_pre(x, w_enc, b_enc)
    top, idx = select_topk(pre.detach(), k)
    vals = top.relu_()
    y = _TopKAutoencode.apply(x.detach(), b_dec, w_enc, b_enc, w_dec, idx, vals)
    return y, pre, vals, idx


__all__ = ["dense_pre", "gather_pre", "select_topk", "topk_autoencode", "topk_rows"]
