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
(``group="concept"``, k = 64) with pooled domain sparsity (the kept concepts share the sample's
``n_points * k / 16`` largest values: 4 codes per point) and selection offsets that revive rarely
chosen concepts; the default model also has a band-limited bias field with K modes, subtracted before
the encoder and added after the decoder, and trains its spectral weights at a tenth of the base rate
(docs/sae_fno.md gives the measurements behind these defaults). The encoder starts as the decoder's
adjoint without the gain G (``encoder_init="adjoint-no-gain"``; ``"adjoint"`` includes G).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from saeno.sae.base import ConfigError, SAEOutput, SparseAutoencoder
from saeno.sae.selection import keep_top_domain, pooled_keep_mask, relu_keep_pooled
from saeno.sae.sparsity import Sparsity, TopK
from saeno.sae.spectral import SpectralConv, from_modes, mix_selected, mix_spectrum, to_modes

CONCEPT_NORMS = ("parameters", "function")
ENCODER_INITS = ("adjoint", "adjoint-no-gain")
#: default sparsity: 64 concepts per sample (all of a 64-concept dictionary) sharing one budget of
#: a sixteenth of the domain per kept concept (4 codes per point), with the "revive" load balancing
#: of the selection for larger dictionaries (docs/sae_fno.md)
DEFAULT_SPARSITY: dict[str, Any] = {
    "type": "topk",
    "k": 64,
    "group": "concept",
    "domain_frac": 0.0625,
    "domain_pool": "sample",
    "balance": 0.01,
    "balance_rule": "revive",
}


def _pointwise(x: Tensor, weight: Tensor, out: Tensor | None = None) -> Tensor:
    """``out + weight x`` along dimension 1 of fields ``(B, in, *grid)``, ``weight (o, in)``.

    One batched product per field on contiguous operands, added to ``out`` (``torch.einsum`` on
    these shapes takes a permuted, copying path on CPU). Out of place: an in-place product on a
    view of ``out`` makes autograd copy the whole gradient slice by slice in the backward pass.
    """
    b, grid = x.shape[0], x.shape[2:]
    flat = x.reshape(b, x.shape[1], -1)
    if out is None:
        y = torch.matmul(weight, flat)
    else:
        y = torch.baddbmm(out.reshape(b, weight.shape[0], -1), weight.expand(b, -1, -1), flat)
    return y.view(b, weight.shape[0], *grid)


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
        :data:`DEFAULT_SPARSITY`, ``{"type": "topk", "k": 64, "group": "concept",
        "domain_frac": 0.0625, "domain_pool": "sample", "balance": 0.01, "balance_rule": "revive"}``
        (k capped at ``n_concepts``; balancing: :class:`~saeno.sae.sparsity.TopK`).
    decoder_pointwise : bool
        Keep the decoder's pointwise path ``W_d z`` (default). Without it the decoder is a pure
        convolution and concepts are functions on every grid (see the module docstring).
    bias_field : int, "modes" or None
        Modes of the band-limited bias field (default ``"modes"``: the model's K; None: only the
        constant bias ``b_d``). See :mod:`saeno.sae.bias_field`.
    spectral_lr_scale : float
        Learning-rate factor of the spectral weights against the pointwise ones
        (:meth:`param_groups`, used by :func:`saeno.train_sae`).
    bias_field_lr_scale : float
        Learning-rate factor of the bias field's coefficients (default 1: with the pointwise
        weights; 0 keeps the field at its fit to the training mean field).
    concept_norm : {"parameters", "function"}
        What is kept at 1 for every concept (:meth:`concept_norms`).
    encoder_init : {"adjoint", "adjoint-no-gain"}
        The encoder starts as the decoder's exact adjoint (gain ``G`` included) or without ``G``
        (:meth:`init_encoder_from_decoder_`).
    spectral_gain : float, optional
        ``G = (2K-1)^d``, stored in ``cfg.json`` to read the weights; checked when given.
    """

    architecture = "sae-fno"
    view = "field"
    default_group = "concept"
    #: trained at twice the pointwise SAE's default rate (``docs/sae_fno.md``, "Learning rates")
    default_lr_scale = 2.0

    def __init__(
        self,
        in_channels: int,
        n_concepts: int,
        *,
        ndim: int,
        modes: int = 8,
        sparsity: str | dict | Sparsity | None = None,
        lifting: int | None = None,
        complex: str | None = None,
        decoder_pointwise: bool = True,
        bias_field: int | None | str = "modes",
        spectral_lr_scale: float = 0.1,
        bias_field_lr_scale: float = 1.0,
        concept_norm: str = "parameters",
        encoder_init: str = "adjoint-no-gain",
        spectral_gain: float | None = None,
    ) -> None:
        if ndim is None:
            raise ConfigError("SAEFNO needs ndim (1, 2 or 3)")
        if modes < 1:
            raise ConfigError(f"modes must be >= 1, got {modes}")
        if bias_field == "modes":
            bias_field = int(modes)
        if isinstance(bias_field, str):
            raise ConfigError(f"bias_field={bias_field!r}: use an int (modes), 'modes' or None")
        if concept_norm not in CONCEPT_NORMS:
            raise ConfigError(f"concept_norm={concept_norm!r} is unknown: use one of {CONCEPT_NORMS}")
        if encoder_init not in ENCODER_INITS:
            raise ConfigError(f"encoder_init={encoder_init!r} is unknown: use one of {ENCODER_INITS}")
        if not spectral_lr_scale > 0:
            raise ConfigError(f"spectral_lr_scale must be > 0, got {spectral_lr_scale}")
        if not bias_field_lr_scale >= 0:
            raise ConfigError(f"bias_field_lr_scale must be >= 0, got {bias_field_lr_scale}")
        if sparsity is None:
            sparsity = dict(DEFAULT_SPARSITY, k=min(DEFAULT_SPARSITY["k"], int(n_concepts)))
        super().__init__(
            in_channels,
            n_concepts,
            ndim=ndim,
            sparsity=sparsity,
            lifting=lifting,
            complex=complex,
            bias_field=bias_field,
        )
        self.modes = int(modes)
        self.decoder_pointwise = bool(decoder_pointwise)
        self.spectral_lr_scale = float(spectral_lr_scale)
        self.bias_field_lr_scale = float(bias_field_lr_scale)
        self.concept_norm = concept_norm
        self.encoder_init = encoder_init
        #: G, the number of mode-grid cells: the decoder's spectral path is scaled by it
        self.spectral_gain = float((2 * self.modes - 1) ** ndim)
        if spectral_gain is not None and float(spectral_gain) != self.spectral_gain:
            raise ConfigError(
                f"spectral_gain={spectral_gain} does not match (2K-1)^d = "
                f"{self.spectral_gain} for modes={modes}, ndim={ndim}"
            )
        c, p = self.core_channels, self.n_concepts
        self.enc_spectral = SpectralConv(c, p, self.modes, ndim)
        self.W_e = nn.Parameter(torch.empty(p, c))
        self.b_e = nn.Parameter(torch.zeros(p))
        self.dec_spectral = SpectralConv(p, c, self.modes, ndim)
        self.W_d = nn.Parameter(
            torch.randn(c, p) if self.decoder_pointwise else torch.zeros(c, p),
            requires_grad=self.decoder_pointwise,
        )
        self.b_d = nn.Parameter(torch.zeros(c))
        self.normalize_decoder_()
        self.init_encoder_from_decoder_()

    def extra_config(self) -> dict[str, Any]:
        return {
            "ndim": self.ndim,
            "modes": self.modes,
            "decoder_pointwise": self.decoder_pointwise,
            "bias_field": self.bias_field_modes,
            "spectral_lr_scale": self.spectral_lr_scale,
            **({"bias_field_lr_scale": self.bias_field_lr_scale} if self.bias_field_lr_scale != 1.0 else {}),
            "concept_norm": self.concept_norm,
            "encoder_init": self.encoder_init,
            "spectral_gain": self.spectral_gain,
        }

    @property
    def mode_grid(self) -> tuple[int, ...]:
        """The coarsest grid that resolves the K modes: ``(2K-1,) * ndim`` (G cells)."""
        return (2 * self.modes - 1,) * int(self.ndim)

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Two Adam groups: spectral weights at ``spectral_lr_scale * lr``, the rest at ``lr``.

        The spectral weights' entries are about ``sqrt(C G)`` times smaller than the pointwise ones,
        so one shared Adam rate moves them far more relative to their size.
        """
        spectral = [self.enc_spectral.weight, self.dec_spectral.weight]
        field = (
            [self.bias_field.coef] if self.bias_field is not None and self.bias_field_lr_scale != 1.0 else []
        )
        ids = {id(p) for p in spectral + field}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        groups = [
            {"params": rest, "lr": lr, "lr_scale": 1.0, "name": "pointwise"},
            {
                "params": spectral,
                "lr": lr * self.spectral_lr_scale,
                "lr_scale": self.spectral_lr_scale,
                "name": "spectral",
            },
        ]
        if field:
            s = self.bias_field_lr_scale
            groups.append({"params": field, "lr": lr * s, "lr_scale": s, "name": "bias_field"})
        return groups

    def constants(self) -> dict[str, Any]:
        k, d = self.modes, int(self.ndim)
        return {
            **super().constants(),
            "spectral_gain": self.spectral_gain,  # G = (2K-1)^d, on the decoder's spectral path
            "spectral_gain_formula": "(2 * modes - 1) ** ndim",
            "fft": "rfftn over the grid axes, norm='forward' (divided by the number of "
            "points); inverse irfftn with norm='forward' (not divided)",
            "mode_shape": [2 * k - 1] * (d - 1) + [k],
            "mode_order": "leading axes: frequency f at index f mod (2K-1), f in -(K-1)..K-1; "
            "last axis: f in 0..K-1 (real FFT); on a grid of n points only "
            "|f| < min(K, (n+1)//2) are used",
            "spectral_weight_layout": "(C_in, C_out, *mode_shape, 2), last axis (real, imag)",
        }

    def _bias(self, b: Tensor, like: Tensor) -> Tensor:
        return b.view(1, -1, *([1] * (like.dim() - 2)))

    def _encode_pre(self, x: Tensor) -> Tensor:
        return self._encode_parts(x)[0]

    def _encode_parts(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Pre-activations ``(B, p, *grid)`` and the spectral part in mode space ``(B, p, 2, *modes)``."""
        grid = tuple(x.shape[2:])
        spec = mix_spectrum(to_modes(x, self.modes), self.enc_spectral.weight)
        return _pointwise(x, self.W_e, out=from_modes(spec, grid, bias=self.b_e)), spec

    def _decode(self, z: Tensor, bias: bool) -> Tensor:
        grid = tuple(z.shape[2:])
        spec = mix_spectrum(to_modes(z, self.modes), self.dec_spectral.weight)
        y = from_modes(spec, grid, bias=self.b_d if bias else None, gain=self.spectral_gain)
        if self.decoder_pointwise:
            y = _pointwise(z, self.W_d, out=y)
        return y

    # ---------------------------------------------------------------- training fast path
    def forward_train(self, a: Tensor) -> SAEOutput:
        """As the base class; TopK over concepts takes a path that decodes the kept concepts only.

        Same values and gradients as the base class (up to float summation order; the tests
        compare): the encoder runs densely (every concept is scored), then only the ``k`` kept
        concepts per sample are transformed, mixed in mode space and transformed back once, and the
        pointwise decoder is a batched product over those ``k`` concepts. When ``k`` is the number of
        concepts (the default on dictionaries of up to 64 concepts) nothing is left out, and the
        dense decoder runs without the gathers (:meth:`_select_all`). ``docs/speed.md`` describes
        both. Other sparsities, peak picking and the L1 domain penalty take the general path.
        """
        sp = self.sparsity
        if type(sp) is not TopK or sp.group != "concept" or sp.domain_peaks is not None or sp.domain_l1 > 0:
            return super().forward_train(a)
        x = self.normalize(a)
        if self.bias_field is not None and self.training and not bool(self.bias_field.fitted):
            self.bias_field.fit_(x.detach().double().mean(0))  # no data pass was made: this batch
        bias = self._field_bias(x)
        # x + (-bias): the bias's gradient is then summed before it is negated
        inp = x if bias is None else x + (-bias)
        core = inp if self.lift is None else self.lift.up(inp)
        pre, spec = self._encode_parts(core)
        if sp.k >= pre.shape[1]:  # every concept is kept: the dense decoder, no gathers
            vals, idx = self._select_all(pre, sp)
            y = self._decode(vals, bias=True)
        else:
            vals, idx = self._select(pre, spec, core, sp)
            y = self._decode_selected(vals, idx)
        if self.lift is not None:
            y = self.lift.down(y)
        if bias is not None:
            y = y + bias
        full_idx = idx.view(*idx.shape, *([1] * (vals.dim() - 2))).expand_as(vals)
        return SAEOutput(y, x, None, pre, None, sparse=(vals, full_idx))

    def _select(self, pre: Tensor, spec: Tensor, x: Tensor, sp: TopK) -> tuple[Tensor, Tensor]:
        """TopK over concepts (and domain_frac): kept codes ``(B, k, *grid)``, their concepts ``(B, k)``.

        The concepts are chosen on ``pre``; the kept pre-activations are recomputed from the
        spectral part in mode space ``spec`` and the input ``x`` for those concepts only, so the
        main loss's backward touches ``k`` concepts per sample, not all of them (``pre`` keeps its
        dense backward, which runs only when a loss such as AuxK uses it).
        """
        b, grid = pre.shape[0], tuple(pre.shape[2:])
        idx = sp.select_concepts(pre)  # (B, k), balancing offsets included
        k = idx.shape[1]
        sidx = idx.view(b, k, *([1] * (spec.dim() - 2))).expand(b, k, *spec.shape[2:])
        part = from_modes(spec.gather(1, sidx), grid, bias=self.b_e[idx])
        w = self.W_e[idx]  # (B, k, C)
        vals = torch.baddbmm(part.view(b, k, -1), w, x.reshape(b, x.shape[1], -1)).relu()
        if sp.domain_frac is not None:
            pooled = sp.domain_pool == "sample"
            flat = vals.view(b, -1) if pooled else vals
            n = (
                sp.pooled_budget(vals.shape[-1])
                if pooled
                else max(1, math.ceil(sp.domain_frac * vals.shape[-1]))
            )
            if n < flat.shape[-1]:
                vals = (flat * pooled_keep_mask(flat.detach(), n)).view_as(vals)
        return vals.view(b, k, *grid), idx

    def _select_all(self, pre: Tensor, sp: TopK) -> tuple[Tensor, Tensor]:
        """:meth:`_select` when ``k`` is the number of concepts: the dense codes ``(B, p, *grid)``.

        The concept selection still runs (its balancing offsets are updated as before), but every
        concept is kept, so the codes are ``relu(pre)`` with the domain sparsity applied, in the
        concepts' own order; the returned indices are ``0..p-1`` for every sample.
        """
        b, p = pre.shape[0], pre.shape[1]
        sp.select_concepts(pre)  # the balancing update (every concept is chosen)
        if sp.domain_frac is not None and sp.domain_pool == "sample":
            n = sp.pooled_budget(pre[0, 0].numel())
            vals = relu_keep_pooled(pre.reshape(b, -1), n).view_as(pre)
        elif sp.domain_frac is not None:
            vals = keep_top_domain(pre.relu(), sp.domain_frac)
        else:
            vals = pre.relu()
        idx = torch.arange(p, device=pre.device).expand(b, p)
        return vals, idx

    def _decode_selected(self, vals: Tensor, idx: Tensor) -> Tensor:
        """``_decode`` (with bias) of the codes that are ``vals`` on concepts ``idx``, zero elsewhere."""
        b, k = idx.shape
        grid = tuple(vals.shape[2:])
        spec = mix_selected(to_modes(vals, self.modes), idx, self.dec_spectral.weight)
        y = from_modes(spec, grid, bias=self.b_d, gain=self.spectral_gain)
        if self.decoder_pointwise:
            w = self.W_d.T[idx].transpose(1, 2)  # (B, C, k)
            y = torch.baddbmm(y.view(b, y.shape[1], -1), w, vals.reshape(b, k, -1)).view_as(y)
        return y

    def _render(self, grid: tuple[int, ...]) -> Tensor:
        if not grid:
            raise ConfigError("SAE-FNO concepts are functions: give a resolution")
        atoms = self.dec_spectral.kernel(grid)  # response to a unit point mass, before the gain G
        if self.decoder_pointwise:
            n_points = math.prod(grid)
            atoms[(slice(None), slice(None), *([0] * len(grid)))] += self.W_d.T * (
                n_points / self.spectral_gain
            )
        return atoms

    def concept_norms(self) -> Tensor:
        """Norm of each concept (``(p,)``), the quantity kept at 1.

        ``concept_norm="function"``: the L2 norm (sum over points) of the concept as a function on the
        mode grid, i.e. of the decoder's response ``kappa_k + W_d[:, k] e_0`` to a unit code on one
        mode-grid cell; by Parseval this is the norm of its transfer function over the full mode
        grid. ``"parameters"``: ``sqrt(||W_d[:, k]||^2 + sum_w |R_d[k, :, w]|^2)`` over the stored
        half spectrum.
        """
        if self.concept_norm == "function":
            return self._render(self.mode_grid).flatten(1).norm(dim=1)
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
        """Encoder = the decoder's exact adjoint: ``W_e = W_d^T``, ``R_e = G conj(R_d)^T``.

        The decoder's linear part is ``z -> G F^-1[R_d . F z] + W_d z``; its adjoint for the inner
        product ``sum_x u(x) . v(x)`` on any grid is ``a -> G F^-1[conj(R_d)^T . F a] + W_d^T a``
        (a convolution's adjoint has the conjugate transfer function), gain ``G`` included. With
        ``encoder_init="adjoint-no-gain"`` the spectral part leaves ``G`` out (pre-activations then
        start on the scale of the input).
        """
        self.W_e.copy_(self.W_d.T)
        w = self.dec_spectral.weight.transpose(0, 1).clone()  # (C, p, *modes, 2)
        w[..., 1].neg_()  # adjoint of a convolution: conjugate transfer function
        gain = self.spectral_gain if self.encoder_init == "adjoint" else 1.0
        self.enc_spectral.weight.copy_(w * gain)

    # ---------------------------------------------------------------- dead-concept resampling
    def _concept_params(self) -> list[tuple[nn.Parameter, int]]:
        """The parameters that belong to single concepts, with their concept dimension."""
        return [
            (self.enc_spectral.weight, 1),
            (self.W_e, 0),
            (self.b_e, 0),
            (self.dec_spectral.weight, 0),
            (self.W_d, 1),
        ]

    @torch.no_grad()
    def resample_concepts_(
        self,
        concepts: Tensor,
        residuals: Tensor,
        inputs: Tensor | None = None,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> None:
        """Re-initialise ``concepts`` from residual fields (dead-concept resampling).

        Concept ``concepts[i]`` gets the decoder kernel ``kappa = residuals[i]`` band-limited to the K
        modes (unit norm, no pointwise column), and the encoder its adjoint (conjugate transfer
        function) with zero pointwise column and bias. The encoder's scale is calibrated on
        ``inputs[i]`` (the sample the residual came from): the mean encoder norm of the other concepts,
        times the least-squares factor for which the concept alone, with its ReLU code, best
        reconstructs ``residuals[i]`` when that factor exceeds 1 (without ``inputs``: the mean encoder
        norm alone). The Adam moments of the re-initialised entries are
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
        if self.concept_norm == "function":
            scale = self.concept_norms()[idx].clamp_min(1e-12)
            self.dec_spectral.weight[idx] /= scale.view(-1, *([1] * (w.dim())))
            w = self.dec_spectral.complex_weight[idx]
        adjoint = torch.view_as_real(w.conj().resolve_conj()).transpose(0, 1)  # (C, m, *modes, 2)
        self.enc_spectral.weight[:, idx] = adjoint * enc_scale
        self.W_e[idx] = 0.0
        self.b_e[idx] = 0.0
        if inputs is not None:
            self.b_e[idx] = self.b_e[alive].mean() if alive.any() else 0.0
            rows = torch.arange(idx.numel(), device=idx.device)
            x_in = inputs.to(r.dtype)
            bias = self._field_bias(x_in)
            pre = self.encode_pre(x_in if bias is None else x_in - bias)[rows, idx].relu()
            z = torch.zeros(idx.numel(), self.n_concepts, *grid, dtype=r.dtype, device=r.device)
            z[rows, idx] = pre
            d = self.decode_norm(z, bias=False)
            target = residuals.to(r.dtype)
            fit = (d * target).flatten(1).sum(1) / d.pow(2).flatten(1).sum(1).clamp_min(1e-12)
            # never weaker than the live concepts' encoders, or the revived one never wins the TopK
            fit = fit.clamp_min(1.0).view(-1, *([1] * (self.enc_spectral.weight.dim() - 1)))
            self.enc_spectral.weight[:, idx] *= fit.transpose(0, 1)
        if optimizer is not None:
            for param, dim in self._concept_params():
                state = optimizer.state.get(param, {})
                for key in ("exp_avg", "exp_avg_sq"):
                    if key in state:
                        state[key].index_fill_(dim, idx, 0.0)
