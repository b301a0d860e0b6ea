"""The convolutional SAE (the papers' "SAE-CNN"): fixed-size kernels counted in grid points.

In normalised (and lifted) space, with kernels of ``kernel`` taps per dimension and circular padding:

    z     = s(conv_e(a) + b_e)         codes (B, p, *grid)
    a_hat = conv_d(z) + b_d

``conv`` is a cross-correlation with periodic boundaries (as the FNO's domain). The decoder's kernel of
concept k is its atom: the response to a unit code at one grid point. The kernel is a fixed number of
grid points, so on a grid ``m`` times finer the same weights cover ``1/m`` of the physical width: the
model runs on every grid, but its atoms change meaning with the resolution. That is the baseline the
SAE-FNO (kernels defined by Fourier modes, the same function on every grid) is compared against.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from saeno.sae.base import ConfigError, SparseAutoencoder
from saeno.sae.sparsity import Sparsity

#: default sparsity: as the SAE-FNO's (16 concepts per sample, each on its top quarter of the domain)
DEFAULT_SPARSITY: dict[str, Any] = {"type": "topk", "k": 16, "group": "concept", "domain_frac": 0.25}
_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def circular_pad(x: Tensor, radius: int) -> Tensor:
    """Pad every grid axis of ``x (B, C, *grid)`` by ``radius`` points periodically (any grid size)."""
    for axis in range(2, x.dim()):
        n = x.shape[axis]
        idx = torch.arange(-radius, n + radius, device=x.device) % n
        x = x.index_select(axis, idx)
    return x


class ConvSAE(SparseAutoencoder):
    """Sparse autoencoder with fixed-size convolution kernels (SAE-CNN), on 1D, 2D or 3D fields.

    Parameters
    ----------
    in_channels : int
        Channels C.
    n_concepts : int
        Number of concepts p (code functions).
    ndim : int
        Grid dimension (1, 2 or 3).
    kernel : int
        Odd number of taps per dimension of every encoder and decoder kernel, in grid points.
    sparsity, lifting, complex
        See :class:`~saeno.sae.base.SparseAutoencoder`; the default sparsity is
        :data:`DEFAULT_SPARSITY` (k capped at ``n_concepts``).
    """

    architecture = "sae-cnn"
    view = "field"
    default_group = "concept"

    def __init__(
        self,
        in_channels: int,
        n_concepts: int,
        *,
        ndim: int,
        kernel: int = 9,
        sparsity: str | dict | Sparsity | None = None,
        lifting: int | None = None,
        complex: str | None = None,
    ) -> None:
        if ndim not in _CONV:
            raise ConfigError(f"ConvSAE needs ndim 1, 2 or 3, got {ndim}")
        if kernel < 1 or kernel % 2 == 0:
            raise ConfigError(f"kernel must be a positive odd number of grid points, got {kernel}")
        if sparsity is None:
            sparsity = dict(DEFAULT_SPARSITY, k=min(DEFAULT_SPARSITY["k"], int(n_concepts)))
        super().__init__(
            in_channels, n_concepts, ndim=ndim, sparsity=sparsity, lifting=lifting, complex=complex
        )
        self.kernel = int(kernel)
        self.grid_ndim = int(ndim)
        c, p, taps = self.core_channels, self.n_concepts, (self.kernel,) * ndim
        self.enc_weight = nn.Parameter(torch.empty(p, c, *taps))
        self.b_e = nn.Parameter(torch.zeros(p))
        self.dec_weight = nn.Parameter(torch.randn(c, p, *taps))
        self.b_d = nn.Parameter(torch.zeros(c))
        self.normalize_decoder_()
        self.init_encoder_from_decoder_()

    def extra_config(self) -> dict[str, Any]:
        return {"ndim": self.ndim, "kernel": self.kernel}

    def constants(self) -> dict[str, Any]:
        return {
            **super().constants(),
            "convolution": "cross-correlation, circular padding of kernel // 2 points per side",
            "enc_weight_shape": "(p, C, *[kernel] * ndim)",
            "dec_weight_shape": "(C, p, *[kernel] * ndim)",
        }

    def _conv(self, x: Tensor, weight: Tensor) -> Tensor:
        return _CONV[self.grid_ndim](circular_pad(x, self.kernel // 2), weight)

    def _bias(self, b: Tensor, like: Tensor) -> Tensor:
        return b.view(1, -1, *([1] * (like.dim() - 2)))

    def _encode_pre(self, x: Tensor) -> Tensor:
        return self._conv(x, self.enc_weight) + self._bias(self.b_e, x)

    def _decode(self, z: Tensor, bias: bool) -> Tensor:
        y = self._conv(z, self.dec_weight)
        return y + self._bias(self.b_d, y) if bias else y

    def _render(self, grid: tuple[int, ...]) -> Tensor:
        if not grid:
            raise ConfigError("ConvSAE concepts are functions: give a resolution")
        p = self.n_concepts
        z = self.dec_weight.new_zeros((p, p, *grid))
        z[(torch.arange(p), torch.arange(p), *([0] * len(grid)))] = 1.0
        return self._decode(z, bias=False).detach()

    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        norms = self.dec_weight.transpose(0, 1).flatten(1).norm(dim=1).clamp_min(1e-12)  # (p,)
        self.dec_weight.div_(norms.view(1, -1, *([1] * self.grid_ndim)))

    @torch.no_grad()
    def init_encoder_from_decoder_(self) -> None:
        """Encoder = the decoder's adjoint: the transposed kernels, flipped in every grid axis."""
        dims = tuple(range(2, 2 + self.grid_ndim))
        self.enc_weight.copy_(self.dec_weight.transpose(0, 1).flip(dims))
