"""A faster execution of a neuraloperator FNO's forward pass, for training it on CPU.

:func:`fast_forward` installs, for the duration of a ``with`` block, instance-level ``forward``
methods on two kinds of submodules of a neuraloperator model and removes them afterwards, so the model
stays a plain neuraloperator FNO (same classes, parameters and state dict) and computes the same
function, up to the order of floating-point sums:

- every ``nn.Conv1d`` with kernel size 1 (the FNO's lifting, projection, channel MLPs and skips) runs as
  one batched matrix product ``W @ x`` instead of a oneDNN convolution, whose forward and backward on
  ``(batch, channels, points)`` inputs were about 3x slower on one CPU thread;
- every dense ``SpectralConv`` on real data in 1 or 2 dimensions runs as truncated discrete Fourier
  transforms (one small real matrix product per dimension, only for the kept modes) and a batched real
  product over the modes, instead of full FFTs, shifts, a zero-filled spectrum and a complex ``einsum``.
  The kept modes, their order and the normalisation are read from the module and follow neuraloperator's
  own indexing (including its shift of the leading dimensions), and the inverse transform treats the
  spectrum as the real inverse FFT does (the imaginary part of the zero-frequency column drops out).

A module the fast path does not cover (factorised or separable weights, complex data, half precision,
resolution scaling, an output shape other than the input's, a grid smaller than the kept modes) runs its
own forward. ``tests/test_zoo_fast_forward.py`` compares outputs and gradients with the plain forward.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["fast_forward", "pointwise_conv_forward", "spectral_conv_forward"]


def _is_pointwise_conv(module: nn.Module) -> bool:
    return (
        type(module) is nn.Conv1d
        and module.kernel_size == (1,)
        and module.stride == (1,)
        and module.padding == (0,)
        and module.dilation == (1,)
        and module.groups == 1
        and module.padding_mode == "zeros"
    )


def pointwise_conv_forward(conv: nn.Conv1d) -> Callable[[Tensor], Tensor]:
    """The forward of a kernel-1 ``Conv1d`` as a batched product ``W @ x`` (+ bias), same parameters."""
    plain = conv.forward

    def forward(x: Tensor) -> Tensor:
        if x.ndim != 3:
            return plain(x)
        w = conv.weight[:, :, 0]
        expanded = w.expand(x.shape[0], *w.shape)
        if conv.bias is None:
            return torch.bmm(expanded, x)
        return torch.baddbmm(conv.bias[None, :, None], expanded, x)

    return forward


def _spectral_weight(conv: nn.Module) -> Tensor | None:
    """The dense complex weight ``(C_in, C_out, *modes)`` of a neuraloperator SpectralConv, or None."""
    weight: Any = conv.weight
    tensor: Any = weight if isinstance(weight, Tensor) else None
    if tensor is None and type(weight).__name__ == "DenseTensor":
        tensor = getattr(weight, "tensor", None)
    if not isinstance(tensor, Tensor):
        return None
    return tensor if tensor.dtype == torch.complex64 and tensor.ndim == 2 + int(conv.order) else None


def _is_spectral_conv(module: nn.Module) -> bool:
    if type(module).__name__ != "SpectralConv" or not type(module).__module__.startswith("neuralop."):
        return False
    return (
        getattr(module, "order", 0) in (1, 2)
        and not getattr(module, "complex_data", True)
        and not getattr(module, "separable", True)
        and getattr(module, "fno_block_precision", None) == "full"
        and getattr(module, "resolution_scaling_factor", 0) is None
        and getattr(module, "fft_norm", None) in ("forward", "backward", "ortho")
        and list(module.n_modes) == list(module.max_n_modes)
        and _spectral_weight(module) is not None
    )


def _norm_scales(norm: str, points: int) -> tuple[float, float]:
    """Scale of the forward and of the inverse transform for ``torch.fft``'s ``norm``."""
    if norm == "forward":
        return 1.0 / points, 1.0
    if norm == "backward":
        return 1.0, 1.0 / points
    return 1.0 / math.sqrt(points), 1.0 / math.sqrt(points)


def _shifted_bins(n: int, kept: int) -> tuple[list[int], list[int]]:
    """FFT bins read by neuraloperator on a leading (shifted) dimension, and the bins written back.

    neuraloperator shifts the spectrum with ``fftshift``, keeps ``kept`` entries around the centre,
    and shifts the output spectrum with ``fftshift`` again; the same operations on bin numbers give the
    bins read (input) and written (output) for each kept mode, in order.
    """
    shifted = torch.fft.fftshift(torch.arange(n)).tolist()
    centre = n // 2
    positions = range(centre - kept // 2, centre + kept // 2 + kept % 2)
    read = [shifted[p] for p in positions]
    written = [shifted.index(p) for p in positions]
    return read, written


class _Transforms:
    """The real DFT matrices of one SpectralConv at one grid, dtype and device."""

    def __init__(self, conv: nn.Module, grid: tuple[int, ...], kept: tuple[int, ...], like: Tensor) -> None:
        f64 = torch.float64
        scale_in, scale_out = _norm_scales(conv.fft_norm, math.prod(grid))
        w_points, l_modes = grid[-1], kept[-1]
        n = torch.arange(w_points, dtype=f64)
        freq = torch.arange(l_modes, dtype=f64)
        angle = 2 * math.pi * torch.outer(n, freq) / w_points  # (W, L)
        # forward along the last axis: [Re | Im] of sum_n x e^{-i angle}
        self.last_in = torch.cat([angle.cos(), -angle.sin()], 1) * scale_in  # (W, 2L)
        # inverse along the last axis, as the real inverse FFT: weight 2 except at 0 and Nyquist
        weight = torch.full((l_modes,), 2.0, dtype=f64)
        weight[0] = 1.0
        if w_points % 2 == 0 and l_modes - 1 == w_points // 2:
            weight[-1] = 1.0
        cos_out = (angle.cos() * weight).T * scale_out  # (L, W)
        sin_out = -(angle.sin() * weight).T * scale_out
        self.last_out = torch.cat([cos_out, sin_out], 0)  # (2L, W): [Zr | Zi] @ last_out
        if len(grid) == 2:
            h_points, k_modes = grid[0], kept[0]
            read, written = _shifted_bins(h_points, k_modes)
            m = torch.arange(h_points, dtype=f64)
            phi = 2 * math.pi * torch.outer(torch.tensor(read, dtype=f64), m) / h_points  # (K, H)
            # [Ch; Sh] applied along the first axis: (H, 2K) on the right of the transposed field
            self.first_in = torch.cat([phi.cos(), phi.sin()], 0).T
            psi = 2 * math.pi * torch.outer(m, torch.tensor(written, dtype=f64)) / h_points  # (H, K)
            # [[C', -S'], [S', C']] applied to [Or; Oi] stacked on the mode axis: (2H, 2K)
            self.first_out = torch.cat(
                [torch.cat([psi.cos(), -psi.sin()], 1), torch.cat([psi.sin(), psi.cos()], 1)], 0
            )
        for key, value in list(vars(self).items()):
            setattr(self, key, value.to(dtype=like.dtype, device=like.device).contiguous())


def _mix(q: Tensor, weight: Tensor) -> Tensor:
    """``out[b, o, m] = sum_c q[b, c, m] weight[c, o, m]`` for complex ``q`` given as ``[Re; Im]``.

    ``q`` is ``(B, 2C, M)`` (real parts, then imaginary parts, on the channel axis), ``weight`` complex
    ``(C, O, M)``; returns ``(B, 2O, M)`` the same way.
    """
    batch, _, modes = q.shape
    wr, wi = weight.real, weight.imag
    # per mode, [Re q, Im q] @ [[Re w, Im w], [-Im w, Re w]]
    block = torch.cat([torch.cat([wr, wi], 1), torch.cat([-wi, wr], 1)], 0)  # (2C, 2O, M)
    out = torch.bmm(q.permute(2, 0, 1).contiguous(), block.permute(2, 0, 1).contiguous())  # (M, B, 2O)
    return out.permute(1, 2, 0)


def spectral_conv_forward(conv: nn.Module) -> Callable[..., Tensor]:
    """The forward of a neuraloperator ``SpectralConv`` (dense, real data, 1D or 2D) by truncated DFTs.

    Falls back to the module's own forward for inputs it does not cover (see the module docstring).
    """
    plain = conv.forward
    cache: dict[tuple[Any, ...], _Transforms] = {}

    def forward(x: Tensor, output_shape: Any = None) -> Tensor:
        grid = tuple(x.shape[2:])
        weight = _spectral_weight(conv)
        if (
            weight is None
            or x.dtype != torch.float32
            or len(grid) != conv.order
            or (output_shape is not None and tuple(output_shape) != grid)
        ):
            return plain(x, output_shape=output_shape)
        kept = tuple(weight.shape[2:])
        fft_size = (*grid[:-1], grid[-1] // 2 + 1)
        if any(k > s for k, s in zip(kept, fft_size)):
            return plain(x, output_shape=output_shape)
        key = (grid, kept, x.device, x.dtype)
        if key not in cache:
            cache[key] = _Transforms(conv, grid, kept, x)
        t = cache[key]
        batch, channels = x.shape[:2]
        out_channels = weight.shape[1]
        modes = kept[-1]
        p = torch.matmul(x, t.last_in)  # (B, C, *lead, 2L): [Re | Im] along the last axis
        if len(grid) == 1:
            q = torch.cat([p[..., :modes], p[..., modes:]], 1)  # (B, 2C, L)
            o = _mix(q, weight)  # (B, 2O, L)
            z = torch.cat([o[:, :out_channels], o[:, out_channels:]], -1)  # (B, O, 2L): [Zr | Zi]
        else:
            k_modes = kept[0]
            r = torch.matmul(p.transpose(-1, -2), t.first_in)  # (B, C, 2L, 2K): [Pr; Pi] x [Ch | Sh]
            pr_c, pr_s = r[:, :, :modes, :k_modes], r[:, :, :modes, k_modes:]
            pi_c, pi_s = r[:, :, modes:, :k_modes], r[:, :, modes:, k_modes:]
            qr = pr_c + pi_s  # (B, C, L, K)
            qi = pi_c - pr_s
            q = torch.cat([qr, qi], 1).transpose(-1, -2).reshape(batch, 2 * channels, k_modes * modes)
            o = _mix(q, weight.reshape(*weight.shape[:2], -1))  # (B, 2O, K * L)
            o = o.reshape(batch, 2, out_channels, k_modes, modes).transpose(1, 2)  # (B, O, 2, K, L)
            zz = torch.matmul(
                t.first_out, o.reshape(batch, out_channels, 2 * k_modes, modes)
            )  # (B, O, 2H, L)
            h_points = grid[0]
            z = torch.cat([zz[:, :, :h_points], zz[:, :, h_points:]], -1)  # (B, O, H, 2L): [Zr | Zi]
        y = torch.matmul(z, t.last_out)
        if conv.bias is not None:
            y = y + conv.bias
        return y

    return forward


@contextlib.contextmanager
def fast_forward(model: nn.Module) -> Iterator[int]:
    """Run ``model``'s kernel-1 ``Conv1d`` and dense neuraloperator ``SpectralConv`` modules on the fast path.

    Parameters
    ----------
    model : torch.nn.Module
        Any module; only the submodules described in the module docstring are changed, and only
        inside the block (their instance ``forward`` attributes are removed on exit).

    Yields
    ------
    int
        How many submodules run on the fast path.
    """
    patched: list[nn.Module] = []
    try:
        for module in model.modules():
            if "forward" in vars(module):
                continue  # a forward set on the instance by someone else: leave it
            if _is_pointwise_conv(module):
                module.forward = pointwise_conv_forward(module)  # type: ignore[method-assign]
            elif _is_spectral_conv(module):
                module.forward = spectral_conv_forward(module)  # type: ignore[method-assign]
            else:
                continue
            patched.append(module)
        yield len(patched)
    finally:
        for module in patched:
            vars(module).pop("forward", None)
