"""SAE-FNO: a sparse autoencoder neural operator with function-valued codes (``docs/method.md`` section 1).

In normalised (and lifted) space, with ``K`` Fourier modes per dimension and ``G = (2K-1)^d``:

    z     = s(F^-1[R_e . (F a)_{|w|<K}] + W_e a + b_e)             codes (B, p, *grid)
    a_hat = G F^-1[R_d . (F z)_{|w|<K}] + W_d z + b_d              (W_d z only with decoder_pointwise)

``F`` is the DFT scaled by ``1/N`` (N grid points), so ``F^-1[R . F z]`` is the continuous convolution
``int kappa(x - y) z(y) dy`` on the unit torus and the operator does not depend on the grid.

Scale of the two decoder paths (the "spectral gain" ``G``). Codes are measured per cell of the *mode
grid*, the coarsest grid that resolves the K modes (``2K-1`` points per dimension, ``G`` cells): a code
of value 1 on one mode-grid cell has mass ``1/G``, and the decoder maps it to ``kappa_k + W_d[:, k]``
on that cell. Without ``G`` (the first version) the spectral response of a code on one grid point was
``kappa_k / N`` while the pointwise response was ``W_d[:, k]``: under the unit-norm constraint the
pointwise path was about N times cheaper, and training drifted to every concept being the same
one-point spike (dictionary coherence 0.6-0.9 on the synthetic benchmark,
benchmarks/results/recovery_sae_fno_fix.md). ``G`` is a fixed constant of the model (it depends on K and
d, not on the grid), so resolution independence is unchanged.

Unit-norm concepts: the norm of concept k is ``sqrt(||W_d[:, k]||^2 + sum_w |R_d[k, :, w]|^2)`` (over
its parameters; ``sum_w |R_d|^2`` is within a factor 2 of ``||kappa_k||^2_{L2}``, the real-FFT half
spectrum), so with ``G`` the spectral and pointwise parts of a mode-grid-cell response are on the same
scale. The decoder is renormalised after every optimiser step.

Concepts (:meth:`SAEFNO.concepts`): concept k rendered on a grid of N points is the decoder's response
(linear part, raw units) to the code ``(N / G) e_0`` of concept k, a point mass ``1/G`` at the origin
(one mode-grid cell): ``kappa_k`` sampled on the grid plus ``(N / G) W_d[:, k]`` at the origin point.
The kernel part is the same function on every grid, so two grids agree where they share points except
for the pointwise value at the origin, which is a point mass (it scales with ``N``). On the mode grid
itself (``N = G``) the rendering is ``kappa_k + W_d[:, k] e_0``. With ``decoder_pointwise=False`` the
decoder has no pointwise path and the concept is exactly the kernel ``kappa_k`` on every grid; the
reconstruction is then band-limited to ``|w| < K``.

The default sparsity is TopK over concepts per sample scored by ``||z_k||_{L2}``
(``group="concept"``).
"""

from __future__ import annotations

import math
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
    decoder_pointwise : bool
        Keep the decoder's pointwise path ``W_d z`` (default). Without it the decoder is a pure
        convolution and concepts are functions on every grid (see the module docstring).
    """

    architecture = "sae-fno"
    view = "field"
    default_group = "concept"

    def __init__(self, in_channels: int, n_concepts: int, *, ndim: int, modes: int = 8,
                 sparsity: str | dict | Sparsity | None = None, lifting: int | None = None,
                 complex: str | None = None, decoder_pointwise: bool = True) -> None:
        if ndim is None:
            raise ConfigError("SAEFNO needs ndim (1, 2 or 3)")
        super().__init__(in_channels, n_concepts, ndim=ndim, sparsity=sparsity, lifting=lifting,
                         complex=complex)
        if modes < 1:
            raise ConfigError(f"modes must be >= 1, got {modes}")
        self.modes = int(modes)
        self.decoder_pointwise = bool(decoder_pointwise)
        #: G, the number of mode-grid cells: the decoder's spectral path is scaled by it
        self.spectral_gain = float((2 * self.modes - 1) ** ndim)
        c, p = self.core_channels, self.n_concepts
        self.enc_spectral = SpectralConv(c, p, self.modes, ndim)
        self.W_e = nn.Parameter(torch.empty(p, c))
        self.b_e = nn.Parameter(torch.zeros(p))
        self.dec_spectral = SpectralConv(p, c, self.modes, ndim)
        self.W_d = nn.Parameter(torch.randn(c, p) if self.decoder_pointwise else torch.zeros(c, p),
                                requires_grad=self.decoder_pointwise)
        self.b_d = nn.Parameter(torch.zeros(c))
        self.normalize_decoder_()
        self.init_encoder_from_decoder_()

    def extra_config(self) -> dict[str, Any]:
        return {"ndim": self.ndim, "modes": self.modes, "decoder_pointwise": self.decoder_pointwise}

    def constants(self) -> dict[str, Any]:
        k, d = self.modes, int(self.ndim)
        return {**super().constants(),
                "spectral_gain": self.spectral_gain,  # G = (2K-1)^d, on the decoder's spectral path
                "spectral_gain_formula": "(2 * modes - 1) ** ndim",
                "fft": "rfftn over the grid axes, norm='forward' (divided by the number of "
                       "points); inverse irfftn with norm='forward' (not divided)",
                "mode_shape": [2 * k - 1] * (d - 1) + [k],
                "mode_order": "leading axes: frequency f at index f mod (2K-1), f in -(K-1)..K-1; "
                              "last axis: f in 0..K-1 (real FFT); on a grid of n points only "
                              "|f| < min(K, (n+1)//2) are used",
                "spectral_weight_layout": "(C_in, C_out, *mode_shape, 2), last axis (real, imag)"}

    def _bias(self, b: Tensor, like: Tensor) -> Tensor:
        return b.view(1, -1, *([1] * (like.dim() - 2)))

    def _encode_pre(self, x: Tensor) -> Tensor:
        return self.enc_spectral(x) + channel_linear(x, self.W_e) + self._bias(self.b_e, x)

    def _decode(self, z: Tensor, bias: bool) -> Tensor:
        y = self.dec_spectral(z) * self.spectral_gain
        if self.decoder_pointwise:
            y = y + channel_linear(z, self.W_d)
        return y + self._bias(self.b_d, y) if bias else y

    def _render(self, grid: tuple[int, ...]) -> Tensor:
        if not grid:
            raise ConfigError("SAE-FNO concepts are functions: give a resolution")
        atoms = self.dec_spectral.kernel(grid)  # response to a unit point mass, before the gain G
        if self.decoder_pointwise:
            n_points = math.prod(grid)
            atoms[(slice(None), slice(None), *([0] * len(grid)))] += (
                self.W_d.T * (n_points / self.spectral_gain))
        return atoms

    def concept_norms(self) -> Tensor:
        """Parameter norm of each concept (``(p,)``), the quantity kept at 1."""
        norms = self.dec_spectral.weight.flatten(1).pow(2).sum(1)  # weight (p, C, *modes, 2)
        if self.decoder_pointwise:
            norms = norms + self.W_d.pow(2).sum(0)
        return norms.sqrt()

    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        norms = self.concept_norms().clamp_min(1e-12)
        self.W_d.div_(norms)
        self.dec_spectral.weight.div_(norms.view(-1, *([1] * (self.dec_spectral.weight.dim() - 1))))
        if not self.decoder_pointwise:
            self.W_d.zero_()

    @torch.no_grad()
    def init_encoder_from_decoder_(self) -> None:
        """Encoder = decoder adjoint: ``W_e = W_d^T``, ``R_e = conj(R_d)`` (the spectral path's adjoint
        up to the gain ``G``, left out so that pre-activations start on the scale of the input)."""
        self.W_e.copy_(self.W_d.T)
        w = self.dec_spectral.weight.transpose(0, 1).clone()  # (C, p, *modes, 2)
        w[..., 1].neg_()  # adjoint of a convolution: conjugate transfer function
        self.enc_spectral.weight.copy_(w)

    # ---------------------------------------------------------------- dead-concept resampling
    def _concept_params(self) -> list[tuple[nn.Parameter, int]]:
        """The parameters that belong to single concepts, with their concept dimension."""
        return [(self.enc_spectral.weight, 1), (self.W_e, 0), (self.b_e, 0),
                (self.dec_spectral.weight, 0), (self.W_d, 1)]

    @torch.no_grad()
    def resample_concepts_(self, concepts: Tensor, residuals: Tensor, inputs: Tensor | None = None,
                           optimizer: torch.optim.Optimizer | None = None) -> None:
        """Re-initialise ``concepts`` from residual fields (dead-concept resampling).

        Concept ``concepts[i]`` gets the decoder kernel ``kappa = residuals[i]`` band-limited to the K
        modes (unit norm, no pointwise column), and the encoder its adjoint (conjugate transfer
        function) with zero pointwise column and bias. The encoder's scale is calibrated on
        ``inputs[i]`` (the sample the residual came from): it is the least-squares factor for which the
        concept alone, with its ReLU code, best reconstructs ``residuals[i]`` (without ``inputs``: the
        mean encoder norm of the other concepts). The Adam moments of the re-initialised entries are
        reset.

        Parameters
        ----------
        concepts : Tensor
            Indices ``(m,)`` of the concepts to resample.
        residuals : Tensor
            ``(m, C, *grid)`` residuals ``a - a_hat`` in normalised space (the model's input channels;
            lifted into the core space when the model lifts).
        inputs : Tensor, optional
            ``(m, C, *grid)`` the normalised inputs ``a`` the residuals belong to.
        optimizer : torch.optim.Optimizer, optional
            Its state for the resampled entries is zeroed.
        """
        idx = torch.as_tensor(concepts, dtype=torch.long, device=self.b_e.device).reshape(-1)
        if idx.numel() == 0:
            return
        r = residuals.to(self.b_e.dtype)
        if self.lift is not None:
            r = self.lift.up(r)
        grid = tuple(r.shape[2:])
        dims = tuple(range(2, 2 + len(grid)))
        spec = torch.fft.rfftn(r, dim=dims, norm="forward")  # (m, C, *fft_grid)
        fft_idx, w_idx = self.dec_spectral._indices(grid, r.device)
        w = torch.zeros_like(self.dec_spectral.complex_weight[idx])  # (m, C, *modes)
        w[(slice(None), slice(None), *w_idx)] = spec[(slice(None), slice(None), *fft_idx)]
        w = w / w.flatten(1).abs().pow(2).sum(1).sqrt().clamp_min(1e-12).view(-1, *([1] * (w.dim() - 1)))
        alive = torch.ones(self.n_concepts, dtype=torch.bool, device=idx.device)
        alive[idx] = False
        enc = self.enc_spectral.weight.transpose(0, 1).flatten(1).norm(dim=1)  # (p,)
        enc_scale = enc[alive].mean() if alive.any() else enc.mean()
        self.dec_spectral.weight[idx] = torch.view_as_real(w)
        self.W_d[:, idx] = 0.0
        adjoint = torch.view_as_real(w.conj().resolve_conj()).transpose(0, 1)  # (C, m, *modes, 2)
        self.enc_spectral.weight[:, idx] = adjoint * enc_scale
        self.W_e[idx] = 0.0
        self.b_e[idx] = 0.0
        if inputs is not None:
            self.b_e[idx] = self.b_e[alive].mean() if alive.any() else 0.0
            rows = torch.arange(idx.numel(), device=idx.device)
            pre = self.encode_pre(inputs.to(r.dtype))[rows, idx].relu()  # (m, *grid)
            z = torch.zeros(idx.numel(), self.n_concepts, *grid, dtype=r.dtype, device=r.device)
            z[rows, idx] = pre
            d = self.decode_norm(z, bias=False)
            target = residuals.to(r.dtype)
            fit = (d * target).flatten(1).sum(1) / d.pow(2).flatten(1).sum(1).clamp_min(1e-12)
            fit = fit.clamp_min(0.0).view(-1, *([1] * (self.enc_spectral.weight.dim() - 1)))
            self.enc_spectral.weight[:, idx] *= fit.transpose(0, 1)
        if optimizer is not None:
            for param, dim in self._concept_params():
                state = optimizer.state.get(param, {})
                for key in ("exp_avg", "exp_avg_sq"):
                    if key in state:
                        state[key].index_fill_(dim, idx, 0.0)
