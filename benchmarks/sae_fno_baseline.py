"""The SAE-FNO training step as it was before the fast path, frozen as the speed baseline.

A verbatim copy of the compute of ``SAEFNO._encode_pre``/``_decode`` and ``SpectralConv.forward``
before the truncated-DFT rewrite: full real FFTs (``rfftn``/``irfftn``) with index placement of the
kept modes, the per-mode mixing as one real batched product (``mix_modes``), dense decoding of all
concepts and ``einsum`` pointwise products, run through the base class's ``forward_train``.
:func:`freeze` installs it on one model instance; ``benchmarks/train_speed.py`` trains that
instance beside a fast one. Do not edit: the ratio is measured against this. The pooled domain
budget (``domain_pool="sample"``) is frozen here too (``torch.topk`` and a scatter, as the library
did before its compiled selection), since the base class's path calls the library's selection.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class _ContiguousBmm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor) -> Tensor:  # noqa: D102
        a, b = a.contiguous(), b.contiguous()
        ctx.save_for_backward(a, b)
        return torch.bmm(a, b)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:  # noqa: D102
        a, b = ctx.saved_tensors
        grad = grad.contiguous()
        grad_a = torch.bmm(grad, b.transpose(1, 2).contiguous()) if ctx.needs_input_grad[0] else None
        grad_b = torch.bmm(a.transpose(1, 2).contiguous(), grad) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


def mix_modes(x: Tensor, w: Tensor) -> Tensor:
    b, c_in, mode_shape = x.shape[0], x.shape[1], x.shape[2:]
    c_out = w.shape[1]
    xr = torch.view_as_real(x.reshape(b, c_in, -1))  # (B, I, M, 2)
    wr = torch.view_as_real(w.reshape(c_in, c_out, -1))  # (I, O, M, 2)
    xs = torch.cat([xr[..., 0], xr[..., 1]], dim=1).permute(2, 0, 1)  # (M, B, 2I)
    re, im = wr[..., 0], wr[..., 1]
    ws = torch.cat([torch.cat([re, im], dim=1), torch.cat([-im, re], dim=1)], dim=0)  # (2I, 2O, M)
    y = _ContiguousBmm.apply(xs, ws.permute(2, 0, 1)).permute(1, 2, 0)  # (B, 2O, M)
    return torch.complex(y[:, :c_out], y[:, c_out:]).reshape(b, c_out, *mode_shape)


def kept_frequencies(n: int, modes: int, last: bool) -> list[int]:
    k = min(modes, (n + 1) // 2)
    return list(range(k)) if last else list(range(k)) + list(range(-(k - 1), 0))


_INDEX_CACHE: dict[tuple, Any] = {}


def _indices(modes: int, grid: tuple[int, ...], device: torch.device):
    key = (modes, grid, str(device))
    if key not in _INDEX_CACHE:
        fft_idx, w_idx = [], []
        for d, n in enumerate(grid):
            last = d == len(grid) - 1
            freqs = kept_frequencies(n, modes, last)
            fft_idx.append([f % n for f in freqs])
            w_idx.append([f % (2 * modes - 1) if not last else f for f in freqs])
        nd = len(grid)

        def grids(lists: list[list[int]]) -> tuple[Tensor, ...]:
            out = []
            for d, values in enumerate(lists):
                shape = [1] * nd
                shape[d] = len(values)
                out.append(torch.tensor(values, device=device).view(shape))
            return tuple(out)

        _INDEX_CACHE[key] = (grids(fft_idx), grids(w_idx))
    return _INDEX_CACHE[key]


def spectral_conv(conv: Any, x: Tensor) -> Tensor:
    """``SpectralConv.forward`` before the rewrite."""
    grid = tuple(x.shape[2:])
    dims = tuple(range(2, 2 + conv.ndim))
    x_ft = torch.fft.rfftn(x, dim=dims, norm="forward")
    fft_idx, w_idx = _indices(conv.modes, grid, x.device)
    sel = (slice(None), slice(None), *fft_idx)
    w = torch.view_as_complex(conv.weight)[(slice(None), slice(None), *w_idx)]
    y = mix_modes(x_ft[sel], w)
    out_ft = x_ft.new_zeros((x.shape[0], conv.out_channels, *x_ft.shape[2:]))
    out_ft[sel] = y
    return torch.fft.irfftn(out_ft, s=grid, dim=dims, norm="forward")


def channel_linear(x: Tensor, weight: Tensor) -> Tensor:
    if x.dim() == 2:
        return x @ weight.T
    return torch.einsum("oi,bi...->bo...", weight, x)


def keep_top_pooled(z: Tensor, n_keep: int) -> Tensor:
    """``saeno.sae.selection.keep_top_pooled`` before the compiled selection."""
    if z.dim() <= 2:
        return z
    flat, n = z.flatten(1), max(1, int(n_keep))
    if n >= flat.shape[-1]:
        return z
    vals, idx = flat.topk(n, dim=-1, sorted=False)
    return torch.zeros_like(flat).scatter_(-1, idx, vals).view_as(z)


def _frozen_sparsity(sp: Any) -> None:
    """Make the sparsity module ``sp`` take the frozen pooled budget (its other steps unchanged)."""
    from saeno.sae.selection import keep_top_domain, peak_mask

    def forward(pre: Tensor) -> tuple[Tensor, Tensor | None]:
        z = sp.activate(pre)
        if sp.domain_peaks is not None:
            z = z * peak_mask(z.detach(), sp.domain_peaks).to(z.dtype)
        if sp.domain_frac is not None:
            if sp.domain_pool == "sample" and z.dim() > 2:
                z = keep_top_pooled(z, sp.pooled_budget(z[0, 0].numel()))
            else:
                z = keep_top_domain(z, sp.domain_frac)
        pen = sp.penalty(pre, z)
        if sp.domain_l1 > 0:
            dom = sp.domain_l1 * z.abs().sum(1).mean()
            pen = dom if pen is None else pen + dom
        return z, pen

    sp.forward = forward


def freeze(sae: Any) -> Any:
    """Make ``sae`` (an ``SAEFNO``) train with the baseline compute; returns it."""
    from saeno.sae.base import SparseAutoencoder

    def bias(b: Tensor, like: Tensor) -> Tensor:
        return b.view(1, -1, *([1] * (like.dim() - 2)))

    def encode_pre(x: Tensor) -> Tensor:
        return spectral_conv(sae.enc_spectral, x) + channel_linear(x, sae.W_e) + bias(sae.b_e, x)

    def decode(z: Tensor, with_bias: bool) -> Tensor:
        y = spectral_conv(sae.dec_spectral, z) * sae.spectral_gain
        if sae.decoder_pointwise:
            y = y + channel_linear(z, sae.W_d)
        return y + bias(sae.b_d, y) if with_bias else y

    sae._encode_pre = encode_pre
    sae._decode = decode
    sae.forward_train = lambda a: SparseAutoencoder.forward_train(sae, a)
    _frozen_sparsity(sae.sparsity)
    return sae


def todays_optimizer():
    """Context manager: ``train_sae`` builds Adam as before (PyTorch's per-tensor loop on CPU)."""
    from unittest import mock

    import saeno.train.trainer as trainer

    def build_optimizer(sae: Any, lr: float) -> torch.optim.Optimizer:
        groups = (
            sae.param_groups(lr)
            if hasattr(sae, "param_groups")
            else [{"params": list(sae.parameters()), "lr": lr}]
        )
        optimizer = torch.optim.Adam(groups, lr=lr, betas=(0.9, 0.999))
        for group in optimizer.param_groups:
            group.setdefault("base_lr", group["lr"])
        return optimizer

    return mock.patch.object(trainer, "build_optimizer", build_optimizer)
