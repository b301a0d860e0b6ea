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

Compute: no FFT. Only the kept modes are needed, so the transforms are truncated DFTs, one small real
matrix product per dimension (:func:`to_modes`, :func:`from_modes`, matrices cached per grid), and the
mode mixing is a batched product over the modes (:func:`mix_spectrum`); ``docs/speed.md``.
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


# ---------------------------------------------------------------- truncated DFTs
#
# Spectra of real fields ``(B, C, *grid)`` are real tensors ``(B, C, 2, 2K-1, ..., 2K-1, K)``: the
# kept modes in the weight's layout with the (real, imaginary) pair right after the channels.
# The transform is separable: the last dimension is one product with a real matrix, each leading
# dimension one product from the left with a real matrix acting on (mode, pair) rows, batched
# over the fields with a shared left factor. Every operand is contiguous as it lies, so no
# transposes of grid-sized tensors are needed. :func:`forward_modes` and :func:`inverse_modes`
# give the same coefficients as complex tensors.

#: (grid, modes, dtype, device) -> per-dimension (forward, inverse) real matrices, built once per grid
_DFT_CACHE: dict[tuple, tuple[tuple[Tensor, Tensor], ...]] = {}


def _frequencies(n: int, modes: int, last: bool) -> tuple[Tensor, Tensor]:
    """Frequency of each mode slot and whether it fits on ``n`` points (float64)."""
    k = min(modes, (n + 1) // 2)
    if last:
        f = torch.arange(modes, dtype=torch.float64)
        return f, (f < k).to(torch.float64)
    j = torch.arange(2 * modes - 1)
    f = torch.where(j < modes, j, j - (2 * modes - 1)).to(torch.float64)
    return f, (f.abs() < k).to(torch.float64)


def dft_factors(
    grid: tuple[int, ...], modes: int, dtype: torch.dtype, device: torch.device
) -> tuple[tuple[Tensor, Tensor], ...]:
    """Per-dimension ``(forward, inverse)`` real matrices of the truncated DFT on ``grid`` (cached).

    Last dimension (``n`` points, real signal): forward ``(n, 2K)`` with columns ``[cos | -sin](2 pi
    f x / n) / n`` for ``f = 0..K-1``; inverse ``(2K, n)`` with rows ``[a_f cos ; -a_f sin]``,
    ``a_0 = 1`` and ``a_f = 2`` otherwise (the real inverse FFT's Hermitian fold; the imaginary part
    of frequency 0 drops out since ``sin 0 = 0``). Leading dimension: the complex factor
    ``exp(-2 pi i f x / n) / n`` (forward) or ``exp(2 pi i f x / n)`` (inverse) written as a real
    matrix on (real, imaginary) pairs, applied from the left: forward ``(2 (2K-1), 2 n)`` mapping
    rows ``(x, pair)`` to rows ``(pair, mode)``, inverse ``(2 n, 2 (2K-1))`` mapping ``(pair, mode)``
    to ``(x, pair)``; mode ``j`` holds ``f = j`` for ``j < K`` and ``j - (2K-1)`` otherwise (the
    weight's layout). Frequencies that do not fit (``|f| >= (n+1)//2``) have zero entries, so every
    grid has the same mode shape and the weights need no indexing.
    """
    key = (tuple(grid), int(modes), dtype, str(device))
    hit = _DFT_CACHE.get(key)
    if hit is not None:
        return hit
    nd, out = len(grid), []
    for d, n in enumerate(grid):
        last = d == nd - 1
        f, keep = _frequencies(n, modes, last)
        ang = 2 * math.pi * torch.outer(torch.arange(n, dtype=torch.float64), f) / n  # (n, m)
        cos, sin = ang.cos() * keep, ang.sin() * keep
        if last:
            fwd = torch.cat([cos, -sin], dim=1) / n  # (n, 2K)
            fold = torch.where(f == 0, 1.0, 2.0).view(1, -1)
            inv = torch.cat([cos * fold, -sin * fold], dim=1).T  # (2K, n)
        else:
            m = f.numel()
            # forward: out[w] = sum_x v[x] (cos - i sin)[x, w] / n
            fwd = torch.zeros(2, m, n, 2, dtype=torch.float64)
            fwd[0, :, :, 0] = fwd[1, :, :, 1] = cos.T / n
            fwd[0, :, :, 1] = sin.T / n
            fwd[1, :, :, 0] = -sin.T / n
            fwd = fwd.reshape(2 * m, 2 * n)
            # inverse: out[x] = sum_w v[w] (cos + i sin)[x, w]
            inv = torch.zeros(n, 2, 2, m, dtype=torch.float64)
            inv[:, 0, 0] = inv[:, 1, 1] = cos
            inv[:, 0, 1] = -sin
            inv[:, 1, 0] = sin
            inv = inv.reshape(2 * n, 2 * m)
        out.append(tuple(t.to(dtype=dtype, device=device).contiguous() for t in (fwd, inv)))
    result = tuple(out)
    if len(_DFT_CACHE) > 64:
        _DFT_CACHE.clear()
    _DFT_CACHE[key] = result
    return result


def to_modes(x: Tensor, modes: int) -> Tensor:
    """Kept Fourier coefficients of real fields ``(B, C, *grid)`` as a real spectrum.

    ``rfftn(x, norm="forward")`` at the kept frequencies, by one small matrix product per
    dimension. Returns ``(B, C, 2, 2K-1, ..., 2K-1, K)`` (pair axis, then the weight's mode layout).
    """
    b, c, grid = x.shape[0], x.shape[1], tuple(x.shape[2:])
    nd = len(grid)
    factors = dft_factors(grid, modes, x.dtype, x.device)
    t = x.reshape(-1, grid[-1]) @ factors[-1][0]  # rows (B, C, *grid[:-1]), columns (pair, K)
    rest = 2 * modes
    for e in range(nd - 2, -1, -1):
        # rows of each block: (x_e, pair); columns: the modes already transformed
        t = torch.matmul(factors[e][0], t.reshape(-1, 2 * grid[e], rest // 2))
        rest *= 2 * modes - 1
    return t.reshape(b, c, 2, *([2 * modes - 1] * (nd - 1)), modes)


def from_modes(spec: Tensor, grid: tuple[int, ...], bias: Tensor | None = None, gain: float = 1.0) -> Tensor:
    """Real fields on ``grid`` from a spectrum as :func:`to_modes` returns it (its inverse).

    Equal to ``gain * irfftn(..., s=grid, norm="forward") + bias`` of the coefficients placed on the
    grid's real-FFT spectrum (zero elsewhere); ``bias`` is ``(C,)`` or ``(B, C)``, added inside the
    last product.
    """
    grid = tuple(grid)
    nd = len(grid)
    b, c, modes = spec.shape[0], spec.shape[1], spec.shape[-1]
    factors = dft_factors(grid, modes, spec.dtype, spec.device)
    t = spec
    inner = (2 * modes - 1) ** (nd - 1) * modes  # columns of the first block: all modes but w_0
    for e in range(nd - 1):
        inner //= 2 * modes - 1
        # rows of each block: (pair, w_e); columns: the modes not yet transformed
        t = torch.matmul(factors[e][1], t.reshape(-1, 2 * (2 * modes - 1), inner))
    last = factors[-1][1] if gain == 1.0 else factors[-1][1] * gain
    t = t.reshape(-1, 2 * modes)
    if bias is None:
        return (t @ last).view(b, c, *grid)
    rows = bias.reshape(-1, c, 1).expand(b, c, t.shape[0] // (b * c)).reshape(-1, 1)
    return torch.addmm(rows, t, last).view(b, c, *grid)


def _rowmajor(t: Tensor) -> Tensor:
    if t.stride(-1) == 1 and t.stride(-2) == t.shape[-1]:
        return t
    return t.contiguous()


def _transposed(t: Tensor) -> Tensor:
    """``t.transpose(1, 2)`` as a ``bmm`` operand: a view (BLAS reads it as column-major) on one
    CPU thread or a GPU, a contiguous copy with several CPU threads (see :class:`_ContiguousBmm`)."""
    view = t.transpose(1, 2)
    if t.device.type != "cpu" or torch.get_num_threads() == 1:
        return view
    return view.contiguous()


class _ComplexMix(torch.autograd.Function):
    """Per-mode complex channel mixing as one real batched product, forward and backward.

    Rows of ``x2 (M, 2B, C_in)`` are the real then the imaginary parts. With the weight laid out
    as ``W (M, C_in, 2 C_out) = [w_r | w_i]``, ``R = x2 W`` holds the four real products and the
    output is ``y_r = x_r w_r - x_i w_i``, ``y_i = x_r w_i + x_i w_r``: ``(M, 2, B, C_out)``. The
    backward forms ``dL/dR = [[g_r, g_i], [g_i, -g_r]]`` once and takes one product for each of
    ``dL/dx2 = dL/dR W^T`` and ``dL/dW = x2^T dL/dR``, instead of autograd's slices and
    zero-filled gradients of the four blocks.
    """

    @staticmethod
    def forward(ctx, x2: Tensor, weight: Tensor) -> Tensor:  # noqa: D102
        c_in, c_out = weight.shape[0], weight.shape[1]
        m = x2.shape[0]
        w = weight.reshape(c_in, c_out, m, 2).permute(2, 0, 3, 1).reshape(m, c_in, 2 * c_out)
        x2 = _rowmajor(x2)
        r = torch.bmm(x2, w)  # (M, 2B, 2 C_out)
        b = x2.shape[1] // 2
        y = r.new_empty((m, 2, b, c_out))
        torch.sub(r[:, :b, :c_out], r[:, b:, c_out:], out=y[:, 0])
        torch.add(r[:, :b, c_out:], r[:, b:, :c_out], out=y[:, 1])
        ctx.save_for_backward(x2, w)
        ctx.shape = weight.shape
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:  # noqa: D102
        x2, w = ctx.saved_tensors
        m, b2, _ = x2.shape
        b, c_out = b2 // 2, w.shape[2] // 2
        g = grad.new_empty((m, b2, 2 * c_out))
        gr, gi = grad[:, 0], grad[:, 1]
        g[:, :b, :c_out] = gr
        g[:, :b, c_out:] = gi
        g[:, b:, :c_out] = gi
        torch.neg(gr, out=g[:, b:, c_out:])
        grad_x = torch.bmm(g, _transposed(w)) if ctx.needs_input_grad[0] else None
        grad_w = None
        if ctx.needs_input_grad[1]:
            gw = torch.bmm(_transposed(x2), g)  # (M, C_in, 2 C_out)
            c_in = gw.shape[1]
            grad_w = gw.view(m, c_in, 2, c_out).permute(1, 3, 0, 2).reshape(ctx.shape)
        return grad_x, grad_w


def _mix_rows(x2: Tensor, weight: Tensor) -> Tensor:
    """``x2 (M, 2B, C_in)`` with rows (real | imaginary, B) -> ``(B, C_out, 2, M)`` (a view)."""
    return _ComplexMix.apply(x2, weight).permute(2, 3, 1, 0)


def mix_spectrum(spec: Tensor, weight: Tensor) -> Tensor:
    """Per-mode channel mixing of a spectrum: ``y[b, o, m] = sum_i x[b, i, m] w[i, o, m]``.

    Parameters
    ----------
    spec : Tensor
        Real spectrum ``(B, C_in, 2, *modes)`` (:func:`to_modes`).
    weight : Tensor
        Real weight ``(C_in, C_out, *modes, 2)`` (the :class:`SpectralConv` layout).

    Returns
    -------
    Tensor
        Real spectrum ``(B, C_out, 2, *modes)``.
    """
    b, c_in, mode_shape = spec.shape[0], spec.shape[1], spec.shape[3:]
    x2 = spec.reshape(b, c_in, 2, -1).permute(3, 2, 0, 1).reshape(-1, 2 * b, c_in)
    return _mix_rows(x2, weight).reshape(b, weight.shape[1], 2, *mode_shape)


def mix_selected(spec: Tensor, idx: Tensor, weight: Tensor) -> Tensor:
    """:func:`mix_spectrum` of a spectrum that is ``spec`` on input channels ``idx``, zero elsewhere.

    Parameters
    ----------
    spec : Tensor
        ``(B, k, 2, *modes)``: the spectra of the kept channels.
    idx : Tensor
        ``(B, k)`` int64: which input channel each of them is.
    weight : Tensor
        ``(C_in, C_out, *modes, 2)``.
    """
    b, k, mode_shape = spec.shape[0], spec.shape[1], spec.shape[3:]
    src = spec.reshape(b, k, 2, -1).permute(3, 2, 0, 1)  # (M, 2, B, k)
    m = src.shape[0]
    full = src.new_zeros((m, 2, b, weight.shape[0]))
    full = full.scatter(3, idx.view(1, 1, b, k).expand(m, 2, b, k), src)
    x2 = full.view(m, 2 * b, weight.shape[0])
    return _mix_rows(x2, weight).reshape(b, weight.shape[1], 2, *mode_shape)


def forward_modes(x: Tensor, modes: int) -> Tensor:
    """Complex ``(B, C, 2K-1, ..., 2K-1, K)``: the coefficients of :func:`to_modes`."""
    t = to_modes(x, modes)
    return torch.complex(t[:, :, 0], t[:, :, 1])


def inverse_modes(y: Tensor, grid: tuple[int, ...]) -> Tensor:
    """Real fields from complex coefficients ``(B, C, *modes)``: :func:`from_modes`."""
    return from_modes(torch.stack([y.real, y.imag], dim=2), grid)


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
        return from_modes(mix_spectrum(to_modes(x, self.modes), self.weight), grid)

    def kernel(self, grid: tuple[int, ...]) -> Tensor:
        """The convolution kernel sampled on ``grid``: real ``(C_in, C_out, *grid)``.

        ``kernel[i, o](x) = sum_w R[i, o, w] exp(2 pi i w.x)``, the response to a unit point mass at the
        origin; it does not depend on the resolution (the same trigonometric polynomial is sampled).
        """
        grid = tuple(grid)
        dims = tuple(range(2, 2 + len(grid)))
        return torch.fft.irfftn(self.transfer(grid), s=grid, dim=dims, norm="forward")
