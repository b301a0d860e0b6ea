"""Selection primitives of the sparsity mechanisms: concept scores, TopK codes, domain TopK, peak masks.

:mod:`saeno.sae.sparsity` builds its mechanisms from these; they are plain functions on tensors with the
concepts on dimension 1 (rows ``(N, p)`` or function-valued codes ``(B, p, *grid)``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def concept_scores(r: Tensor) -> Tensor:
    """Per-sample concept scores ``||r_k||_{L2(Omega)}`` (root mean square over the grid).

    Parameters
    ----------
    r : Tensor
        Non-negative codes ``(B, p, *grid)`` or rows ``(N, p)``.

    Returns
    -------
    Tensor
        ``(B, p)`` scores (``r`` itself for rows).
    """
    if r.dim() <= 2:
        return r
    flat = r.flatten(2)
    return (flat * flat).mean(-1).sqrt()  # the same values as pow(2), without its slower path


def expand_like(mask: Tensor, like: Tensor) -> Tensor:
    return mask.view(*mask.shape, *([1] * (like.dim() - mask.dim())))


def select_top_concepts(scores: Tensor, k: int, offset: Tensor | None = None) -> Tensor:
    """The ``(B, k)`` indices of the ``k`` best concept scores ``(B, p)`` of every sample.

    ``offset`` ``(p,)`` is added to the positive scores only; a concept whose score is zero is never
    preferred over one with a positive score because of its offset.
    """
    if offset is not None:
        scores = torch.where(scores > 0, scores + offset.view(1, -1), scores.new_tensor(float("-inf")))
    return scores.topk(k, dim=1, sorted=False).indices


def topk_codes(
    pre: Tensor, k: int, group: str = "point", offset: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """TopK activation: keep the ``k`` largest concepts (per point or per sample), ReLU on the rest.

    Parameters
    ----------
    pre : Tensor
        Pre-activations, concepts on dimension 1.
    k : int
        Concepts kept per point (``group="point"``) or per sample (``group="concept"``).
    group : {"point", "concept"}
        Where the selection runs (see the module docstring).
    offset : Tensor, optional
        ``(p,)`` per-concept offsets added to the selection scores only (load balancing): they
        change which concepts are kept, never the kept values. A concept whose score is zero is
        never preferred over one with a positive score.

    Returns
    -------
    codes : Tensor
        Codes of the same shape as ``pre`` with at most ``k`` non-zero concepts per point or sample.
    idx : Tensor
        The selected concepts, ``k`` along dimension 1.
    """
    if group == "point" or pre.dim() <= 2:
        score = pre.detach() if offset is None else pre.detach() + expand_like(offset, pre).transpose(0, 1)
        idx = score.topk(k, dim=1, sorted=False).indices
        return torch.zeros_like(pre).scatter_(1, idx, pre.gather(1, idx).relu()), idx
    r = pre.relu()
    idx = select_top_concepts(concept_scores(r.detach()), k, offset)
    mask = torch.zeros(r.shape[:2], dtype=r.dtype, device=r.device).scatter_(1, idx, 1.0)
    return r * expand_like(mask, r), idx


def keep_top_pooled(z: Tensor, n_keep: int) -> Tensor:
    """Keep, per sample, the ``n_keep`` largest values of ``z`` ``(B, p, *grid)`` over all concepts
    and grid points together (one budget shared by the sample's concepts).

    ``z * mask`` with the mask of :func:`pooled_keep_mask` (the same values and gradients as
    keeping the ``torch.topk`` entries, for the non-negative codes of the sparsity mechanisms).
    """
    if z.dim() <= 2:
        return z
    flat = z.flatten(1)
    n = max(1, int(n_keep))
    if n >= flat.shape[-1]:
        return z
    return (flat * pooled_keep_mask(flat.detach(), n)).view_as(z)


class _Masked(torch.autograd.Function):
    """``vals`` (computed by the caller as ``x * mask``) with the gradient ``g * mask`` for ``x``."""

    @staticmethod
    def forward(ctx, x: Tensor, vals: Tensor, mask: Tensor) -> Tensor:  # noqa: D102
        ctx.save_for_backward(mask)
        return vals

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # noqa: D102
        (mask,) = ctx.saved_tensors
        return grad * mask, None, None


def relu_keep_pooled(flat: Tensor, n: int) -> Tensor:
    """``relu(flat)`` with only the ``n`` largest entries of each row ``(R, L)`` kept.

    The same values and gradients as ``keep_top_pooled`` of ``relu(flat)`` (:func:`pooled_keep_mask`
    on its rows). With the compiled selection, the ReLU, the selection and the masking are one pass
    (:func:`saeno.sae.topk_kernel.relu_pooled`) and the backward is one product with the mask.
    """
    from saeno.sae import topk_kernel

    if n >= flat.shape[-1]:
        return flat.relu()
    out = topk_kernel.relu_pooled(flat.detach(), n)
    if out is None:
        r = flat.relu()
        return r * pooled_keep_mask(r.detach(), n)
    vals, mask = out
    return _Masked.apply(flat, vals, mask)


def pooled_keep_mask(flat: Tensor, n: int) -> Tensor:
    """0/1 mask (``flat``'s dtype) of the ``n`` largest entries of each row of ``flat`` ``(R, L)``.

    On the CPU with numba (:func:`saeno.sae.topk_kernel.pooled_mask`) rows of non-negative values
    take a compiled selection. Its kept set is the ``n`` largest entries, except that zeros are
    never kept (a row with fewer than ``n`` positive entries keeps exactly those), and among entries
    equal to the ``n``-th largest value the lower columns win. Elsewhere, ``torch.topk`` chooses
    (on ties it leaves the choice open). For ReLU codes both give the same masked values and the
    same gradients: a kept zero carries none.
    """
    from saeno.sae import topk_kernel  # numba is imported on first use only

    mask = topk_kernel.pooled_mask(flat, n)
    if mask is not None:
        return mask
    keep = flat.topk(n, dim=-1, sorted=False).indices
    return torch.zeros_like(flat).scatter_(-1, keep, 1.0)


def keep_top_domain(z: Tensor, frac: float) -> Tensor:
    """Keep, per sample and concept, the ``ceil(frac * n_points)`` largest grid values of ``z``."""
    if z.dim() <= 2:
        return z
    flat = z.flatten(2)
    return _keep_largest(z, flat, max(1, math.ceil(frac * flat.shape[-1])))


def _keep_largest(z: Tensor, flat: Tensor, n: int) -> Tensor:
    """``z`` with only the ``n`` largest entries of each row of its view ``flat`` kept."""
    if n >= flat.shape[-1]:
        return z
    vals, idx = flat.topk(n, dim=-1, sorted=False)
    return torch.zeros_like(flat).scatter_(-1, idx, vals).view_as(z)


def peak_mask(z: Tensor, radius: int) -> Tensor:
    """Boolean mask of the positive local maxima of ``z`` ``(B, p, *grid)`` over the grid.

    A point is a peak when its value is the largest within ``radius`` points in every dimension
    (periodic boundaries, as the FNO's domain). Ties keep every tied point.
    """
    if z.dim() <= 2 or radius < 1:
        return z > 0
    nd = z.dim() - 2
    flat = z.reshape(-1, 1, *z.shape[2:])
    pad = [radius] * (2 * nd)
    padded = torch.nn.functional.pad(flat, pad, mode="circular")
    pool = (torch.nn.functional.max_pool1d, torch.nn.functional.max_pool2d, torch.nn.functional.max_pool3d)[
        nd - 1
    ]
    local_max = pool(padded, kernel_size=2 * radius + 1, stride=1)
    return ((flat >= local_max) & (flat > 0)).view_as(z)
