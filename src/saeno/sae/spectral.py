"""A small spectral convolution ``C_in -> C_out`` with K Fourier modes per dimension (1D, 2D, 3D).

Written here instead of reusing neuralop's ``SpectralConv`` because the SAE needs two things that class
does not give directly: the convolution kernel rendered as a function on any grid (the concepts), and an
exact, documented mode convention for the equivalence with pointwise and flat SAEs.

Conventions. Frequencies ``|w| < K`` are kept in every dimension: ``w in {-(K-1), ..., K-1}`` for the
leading dimensions and ``w in {0, ..., K-1}`` for the last (real FFT) one, so the weight has shape
``(C_in, C_out, 2K-1, ..., 2K-1, K)`` (complex, stored as a real tensor with a trailing pair axis). The
forward transform is scaled by ``1/N`` (``norm="forward"``) and the inverse is not, so the operator acts
the same way on a smooth function sampled at any resolution. On a grid too coarse for K modes the modes
that fit (``|w| < (N+1)//2``, never the Nyquist mode) are used.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class _ContiguousBmm(torch.autograd.Function):
    """``torch.bmm`` whose forward and backward products all take contiguous operands.

    On CPU with several threads and passive OpenMP waiting (``OMP_WAIT_POLICY=PASSIVE``, which
    saeno's CLI sets), ``bmm`` on permuted views (and on the permuted gradients autograd hands to its
    backward) takes a strided path that was ~7x slower than on contiguous copies; the copies are small.
    """

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
    """Per-mode channel mixing ``y[b, o, m] = sum_i x[b, i, m] w[i, o, m]`` of complex tensors.

    Computed as one real batched matrix product over the modes, ``[Re x, Im x] @ [[Re w, Im w],
    [-Im w, Re w]]`` with contiguous operands in both passes: on CPU under passive OpenMP waiting,
    PyTorch's complex ``einsum`` made an SAE-FNO training step 1.5-1.8x slower (neutral with spinning
    threads; ``benchmarks/spectral_mix.py``).

    Parameters
    ----------
    x : Tensor
        Complex ``(B, C_in, *modes)``.
    w : Tensor
        Complex ``(C_in, C_out, *modes)``.

    Returns
    -------
    Tensor
        Complex ``(B, C_out, *modes)``.
    """
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
    """Frequencies kept on a grid of ``n`` points (``last``: the real-FFT dimension)."""
    k = min(modes, (n + 1) // 2)
    return list(range(k)) if last else list(range(k)) + list(range(-(k - 1), 0))


class SpectralConv(nn.Module):
    """Spectral convolution ``y = F^-1[R . (F x)_{|w| < K}]``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts.
    modes : int
        K, the number of frequencies kept per dimension (``|w| < K``).
    ndim : int
        Grid dimension (1, 2 or 3).
    """

    def __init__(self, in_channels: int, out_channels: int, modes: int, ndim: int) -> None:
        super().__init__()
        if ndim not in (1, 2, 3):
            raise ValueError(f"ndim must be 1, 2 or 3, got {ndim}")
        if modes < 1:
            raise ValueError(f"modes must be >= 1, got {modes}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.modes, self.ndim = modes, ndim
        mode_shape = [2 * modes - 1] * (ndim - 1) + [modes]
        scale = 1.0 / math.sqrt(in_channels * math.prod(mode_shape))
        self.weight = nn.Parameter(torch.randn(in_channels, out_channels, *mode_shape, 2) * scale)
        self._index_cache: dict[tuple, tuple[tuple[Tensor, ...], tuple[Tensor, ...]]] = {}

    @property
    def complex_weight(self) -> Tensor:
        """The weight as a complex tensor ``(C_in, C_out, *modes)`` (a view)."""
        return torch.view_as_complex(self.weight)

    def _indices(self, grid: tuple[int, ...], device: torch.device):
        key = (grid, str(device))
        if key not in self._index_cache:
            fft_idx, w_idx = [], []
            for d, n in enumerate(grid):
                last = d == len(grid) - 1
                freqs = kept_frequencies(n, self.modes, last)
                fft_idx.append([f % n for f in freqs])
                w_idx.append([f % (2 * self.modes - 1) if not last else f for f in freqs])
            nd = len(grid)

            def grids(lists: list[list[int]]) -> tuple[Tensor, ...]:
                out = []
                for d, values in enumerate(lists):
                    shape = [1] * nd
                    shape[d] = len(values)
                    out.append(torch.tensor(values, device=device).view(shape))
                return tuple(out)

            self._index_cache[key] = (grids(fft_idx), grids(w_idx))
        return self._index_cache[key]

    def transfer(self, grid: tuple[int, ...], device: torch.device | None = None) -> Tensor:
        """The weight placed on the real-FFT grid of ``grid``: complex ``(C_in, C_out, *fft_grid)``."""
        device = self.weight.device if device is None else device
        fft_idx, w_idx = self._indices(tuple(grid), device)
        fft_shape = (*grid[:-1], grid[-1] // 2 + 1)
        w = self.complex_weight
        out = w.new_zeros((w.shape[0], w.shape[1], *fft_shape))
        out[(slice(None), slice(None), *fft_idx)] = w[(slice(None), slice(None), *w_idx)]
        return out

    def forward(self, x: Tensor) -> Tensor:
        """Apply to ``x`` of shape ``(B, C_in, *grid)``; returns ``(B, C_out, *grid)``."""
        grid = tuple(x.shape[2:])
        dims = tuple(range(2, 2 + self.ndim))
        x_ft = torch.fft.rfftn(x, dim=dims, norm="forward")
        fft_idx, w_idx = self._indices(grid, x.device)
        sel = (slice(None), slice(None), *fft_idx)
        w = self.complex_weight[(slice(None), slice(None), *w_idx)]
        y = mix_modes(x_ft[sel], w)
        out_ft = x_ft.new_zeros((x.shape[0], self.out_channels, *x_ft.shape[2:]))
        out_ft[sel] = y
        return torch.fft.irfftn(out_ft, s=grid, dim=dims, norm="forward")

    def kernel(self, grid: tuple[int, ...]) -> Tensor:
        """The convolution kernel sampled on ``grid``: real ``(C_in, C_out, *grid)``.

        ``kernel[i, o](x) = sum_w R[i, o, w] exp(2 pi i w.x)``, the response to a unit point mass at the
        origin; it does not depend on the resolution (the same trigonometric polynomial is sampled).
        """
        grid = tuple(grid)
        dims = tuple(range(2, 2 + len(grid)))
        return torch.fft.irfftn(self.transfer(grid), s=grid, dim=dims, norm="forward")
