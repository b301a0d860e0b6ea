"""The SAE-FNO's training forward pass written the straightforward way, frozen as a reference.

Full real FFTs with index placement of the kept modes, dense decoding of all concepts, dense TopK
masks: the formulation the fast path in :mod:`saeno.sae.sae_fno` must reproduce. It reads the
model's parameters and uses nothing of the model's compute code but ``normalize`` and the bias
field's fit.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _kept(n: int, modes: int, last: bool) -> list[int]:
    k = min(modes, (n + 1) // 2)
    return list(range(k)) if last else list(range(k)) + list(range(-(k - 1), 0))


def _indices(grid: tuple[int, ...], modes: int) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    nd, fft_idx, w_idx = len(grid), [], []
    for d, n in enumerate(grid):
        last = d == nd - 1
        freqs = _kept(n, modes, last)
        shape = [1] * nd
        shape[d] = len(freqs)
        fft_idx.append(torch.tensor([f % n for f in freqs]).view(shape))
        w_idx.append(torch.tensor([f if last else f % (2 * modes - 1) for f in freqs]).view(shape))
    return tuple(fft_idx), tuple(w_idx)


def spectral_conv(weight: Tensor, modes: int, x: Tensor) -> Tensor:
    """``F^-1[R . (F x)_{|w|<K}]`` with full FFTs; ``weight`` ``(C_in, C_out, *modes, 2)``."""
    grid = tuple(x.shape[2:])
    dims = tuple(range(2, 2 + len(grid)))
    x_ft = torch.fft.rfftn(x, dim=dims, norm="forward")
    fft_idx, w_idx = _indices(grid, modes)
    sel = (slice(None), slice(None), *fft_idx)
    w = torch.view_as_complex(weight)[(slice(None), slice(None), *w_idx)]
    y = torch.einsum("bi...,io...->bo...", x_ft[sel], w)
    out_ft = x_ft.new_zeros((x.shape[0], weight.shape[1], *x_ft.shape[2:]))
    out_ft[sel] = y
    return torch.fft.irfftn(out_ft, s=grid, dim=dims, norm="forward")


def bias_field(coef: Tensor, modes: int, grid: tuple[int, ...]) -> Tensor:
    """The band-limited bias field ``(1, C, *grid)`` from its coefficients ``(C, *modes, 2)``."""
    fft_idx, w_idx = _indices(grid, modes)
    w = torch.view_as_complex(coef)
    spec = w.new_zeros((coef.shape[0], *grid[:-1], grid[-1] // 2 + 1))
    spec[(slice(None), *fft_idx)] = w[(slice(None), *w_idx)]
    dims = tuple(range(1, 1 + len(grid)))
    return torch.fft.irfftn(spec, s=grid, dim=dims, norm="forward").unsqueeze(0)


def channel(x: Tensor, weight: Tensor) -> Tensor:
    return torch.einsum("oi,bi...->bo...", weight, x)


def topk_concepts(pre: Tensor, k: int, domain_frac: float | None, pool: str = "concept") -> Tensor:
    """TopK over concepts scored by the RMS of their ReLU codes, then the top domain share (per
    concept, or ``pool="sample"``: ``ceil(frac * points * k)`` values over the sample's codes)."""
    r = pre.relu()
    scores = r.flatten(2).pow(2).mean(-1).sqrt()
    idx = scores.topk(k, dim=1, sorted=False).indices
    mask = torch.zeros(r.shape[:2], dtype=r.dtype).scatter_(1, idx, 1.0)
    z = r * mask.view(*mask.shape, *([1] * (r.dim() - 2)))
    if domain_frac is None:
        return z
    flat = z.flatten(1) if pool == "sample" else z.flatten(2)
    n_points = math.prod(z.shape[2:])
    n = max(1, math.ceil(domain_frac * n_points * (k if pool == "sample" else 1)))
    if n >= flat.shape[-1]:
        return z
    vals, pidx = flat.topk(n, dim=-1, sorted=False)
    return torch.zeros_like(flat).scatter_(-1, pidx, vals).view_as(z)


def encode_pre(sae, x: Tensor) -> Tensor:
    if sae.lift is not None:
        x = channel(x, sae.lift.P)
    b_e = sae.b_e.view(1, -1, *([1] * (x.dim() - 2)))
    return spectral_conv(sae.enc_spectral.weight, sae.modes, x) + channel(x, sae.W_e) + b_e


def decode(sae, z: Tensor, bias: bool = True) -> Tensor:
    y = spectral_conv(sae.dec_spectral.weight, sae.modes, z) * sae.spectral_gain
    if sae.decoder_pointwise:
        y = y + channel(z, sae.W_d)
    if bias:
        y = y + sae.b_d.view(1, -1, *([1] * (y.dim() - 2)))
    if sae.lift is not None:
        y = channel(y, sae.lift.Q)
    return y


def forward_train(sae, a: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(recon, target, codes, pre)`` of the SAE-FNO's training pass (TopK over concepts)."""
    x = sae.normalize(a)
    if sae.bias_field is not None and sae.training and not bool(sae.bias_field.fitted):
        sae.bias_field.fit_(x.detach().double().mean(0))
    b = None
    if sae.bias_field is not None:
        b = bias_field(sae.bias_field.coef, sae.bias_field.modes, tuple(x.shape[2:])).to(x.dtype)
    pre = encode_pre(sae, x if b is None else x - b)
    sp = sae.sparsity
    codes = topk_concepts(pre, sp.k, sp.domain_frac, getattr(sp, "domain_pool", "concept"))
    recon = decode(sae, codes)
    if b is not None:
        recon = recon + b
    return recon, x, codes, pre
