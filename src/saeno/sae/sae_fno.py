"""SAE-FNO: a sparse autoencoder neural operator with function-valued codes (METHOD.md section 1).

In normalised (and lifted) space, with ``K`` Fourier modes per dimension:

    z     = s(F^-1[R_e . (F a)_{|w|<K}] + W_e a + b_e)        codes (B, p, *grid)
    a_hat = F^-1[R_d . (F z)_{|w|<K}] + W_d z + b_d

Concept k, as a function, is its decoder kernel ``kappa_k`` (the inverse FFT of its retained modes)
plus its pointwise column ``W_d[:, k]`` as a point mass at the origin; :meth:`SAEFNO.concepts` renders it
on any grid, and two grids that both resolve the K modes agree where they share points. The default
sparsity is TopK over concepts per sample scored by ``||z_k||_{L2}`` (``group="concept"``).

Unit-norm concepts: the norm of concept k is taken over its parameters, ``sqrt(||W_d[:, k]||^2 +
sum_w |R_d[k, :, w]|^2)``; the decoder is renormalised after every optimiser step.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from saeno.sae.base import ConfigError, SparseAutoencoder
from saeno.sae.lifting import channel_linear
from saeno.sae.sparsity import Sparsity
from saeno.sae.spectral import SpectralConv


class SAEFNO(SparseAutoencoder):
    """Sparse autoencoder neural operator on 1D, 2D or 3D fields.

    Parameters
    ----------
    in_channels : int
        Channels C.
    n_concepts : int
        Number of concepts p (code functions).
    ndim : int
        Grid dimension (1, 2 or 3).
    modes : int
        K, Fourier modes kept per dimension (``|w| < K``).
    sparsity, lifting, complex
        See :class:`~saeno.sae.base.SparseAutoencoder`; the default sparsity is
        ``{"type": "topk", "k": 8, "group": "concept"}``.
    """

    architecture = "sae-fno"
    view = "field"
    default_group = "concept"

    def __init__(self, in_channels: int, n_concepts: int, *, ndim: int, modes: int = 8,
                 sparsity: str | dict | Sparsity | None = None, lifting: int | None = None,
                 complex: str | None = None) -> None:
        if ndim is None:
            raise ConfigError("SAEFNO needs ndim (1, 2 or 3)")
        super().__init__(in_channels, n_concepts, ndim=ndim, sparsity=sparsity, lifting=lifting,
                         complex=complex)
        if modes < 1:
            raise ConfigError(f"modes must be >= 1, got {modes}")
        self.modes = int(modes)
        c, p = self.core_channels, self.n_concepts
        self.enc_spectral = SpectralConv(c, p, self.modes, ndim)
        self.W_e = nn.Parameter(torch.empty(p, c))
        self.b_e = nn.Parameter(torch.zeros(p))
        self.dec_spectral = SpectralConv(p, c, self.modes, ndim)
        self.W_d = nn.Parameter(torch.randn(c, p))
        self.b_d = nn.Parameter(torch.zeros(c))
        self.normalize_decoder_()
        self.init_encoder_from_decoder_()

    def extra_config(self) -> dict[str, Any]:
        return {"ndim": self.ndim, "modes": self.modes}

    def _bias(self, b: Tensor, like: Tensor) -> Tensor:
        return b.view(1, -1, *([1] * (like.dim() - 2)))

    def _encode_pre(self, x: Tensor) -> Tensor:
        return self.enc_spectral(x) + channel_linear(x, self.W_e) + self._bias(self.b_e, x)

    def _decode(self, z: Tensor, bias: bool) -> Tensor:
        y = self.dec_spectral(z) + channel_linear(z, self.W_d)
        return y + self._bias(self.b_d, y) if bias else y

    def _render(self, grid: tuple[int, ...]) -> Tensor:
        if not grid:
            raise ConfigError("SAE-FNO concepts are functions: give a resolution")
        atoms = self.dec_spectral.kernel(grid)
        atoms[(slice(None), slice(None), *([0] * len(grid)))] += self.W_d.T
        return atoms

    def concept_norms(self) -> Tensor:
        """Parameter norm of each concept (``(p,)``), the quantity kept at 1."""
        spec = self.dec_spectral.weight.flatten(1).pow(2).sum(1)
        return (spec + self.W_d.pow(2).sum(0)).sqrt()

    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        norms = self.concept_norms().clamp_min(1e-12)
        self.W_d.div_(norms)
        self.dec_spectral.weight.div_(norms.view(-1, *([1] * (self.dec_spectral.weight.dim() - 1))))

    @torch.no_grad()
    def init_encoder_from_decoder_(self) -> None:
        self.W_e.copy_(self.W_d.T)
        w = self.dec_spectral.weight.transpose(0, 1).clone()  # (C, p, *modes, 2)
        w[..., 1].neg_()  # adjoint of a convolution: conjugate transfer function
        self.enc_spectral.weight.copy_(w)
