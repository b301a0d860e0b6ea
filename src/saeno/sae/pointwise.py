"""The pointwise SAE: one dictionary over channel space applied at every grid point.

``z(x) = s(W_enc^T (a(x) - b_dec) + b_enc)``, ``a_hat(x) = W_dec^T z(x) + b_dec`` in normalised space
(weights stored as in SAELens: ``W_enc (C, p)``, ``W_dec (p, C)``). Like the per-token SAE of language
models it runs on any grid; internally fields are packed into rows ``(B * n_points, C)``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from saeno.errors import ShapeError
from saeno.sae.base import SAEOutput, SparseAutoencoder
from saeno.sae.sparse_topk import topk_autoencode, topk_rows
from saeno.sae.sparsity import Sparsity, TopK


class SAE(SparseAutoencoder):
    """Pointwise sparse autoencoder (TopK with ``k`` concepts per grid point by default).

    Parameters
    ----------
    in_channels : int
        Channels C.
    n_concepts : int
        Dictionary size p.
    ndim : int or None
        Grid dimension of the fields it is meant for (only used to render concepts from an int
        resolution); the model itself runs on rows and on any grid.
    sparsity, lifting, complex
        See :class:`~saeno.sae.base.SparseAutoencoder`.
    bias_field : int or None
        Modes of a band-limited bias field (needs ``ndim``); the model then trains on whole fields
        (``view == "field"``) because the field depends on the position.
    """

    architecture = "sae"
    view = "points"
    default_group = "point"

    def __init__(
        self,
        in_channels: int,
        n_concepts: int,
        *,
        ndim: int | None = None,
        sparsity: str | dict | Sparsity | None = None,
        lifting: int | None = None,
        complex: str | None = None,
        bias_field: int | None = None,
    ) -> None:
        super().__init__(
            in_channels,
            n_concepts,
            ndim=ndim,
            sparsity=sparsity,
            lifting=lifting,
            complex=complex,
            bias_field=bias_field,
        )
        if self.bias_field is not None:
            self.view = "field"
        c, p = self.core_channels, self.n_concepts
        self.W_enc = nn.Parameter(torch.empty(c, p))
        self.b_enc = nn.Parameter(torch.zeros(p))
        self.W_dec = nn.Parameter(torch.randn(p, c))
        self.b_dec = nn.Parameter(torch.zeros(c))
        self.normalize_decoder_()
        self.init_encoder_from_decoder_()

    def extra_config(self) -> dict[str, Any]:
        return {"ndim": self.ndim, "bias_field": self.bias_field_modes}

    def constants(self) -> dict[str, Any]:
        return {
            **super().constants(),
            "encoder_input": "x - b_dec",
            "W_enc_shape": "(C, p)",
            "W_dec_shape": "(p, C)",
        }

    def _check_input(self, a: Tensor) -> None:
        if a.dim() > 5:
            raise ShapeError(
                "pointwise SAE expects rows (N, C) or fields (B, C, *grid) with a "
                f"1D-3D grid, got shape {tuple(a.shape)}"
            )

    def _pack(self, x: Tensor) -> tuple[Tensor, Any]:
        if x.dim() == 2:
            return x, None
        grid = tuple(x.shape[2:])
        return x.movedim(1, -1).reshape(-1, x.shape[1]), (x.shape[0], grid)

    def _unpack(self, y: Tensor, meta: Any) -> Tensor:
        if meta is None:
            return y
        b, grid = meta
        return y.view(b, *grid, y.shape[1]).movedim(-1, 1)

    def _encode_pre(self, x: Tensor) -> Tensor:
        return torch.addmm(self.b_enc, x - self.b_dec, self.W_enc)

    def _decode(self, z: Tensor, bias: bool) -> Tensor:
        return torch.addmm(self.b_dec, z, self.W_dec) if bias else z @ self.W_dec

    def forward_train(self, a: Tensor) -> SAEOutput:
        """As the base class; plain TopK takes a sparse path with the same values and gradients.

        The encoder's dense product is computed once; only the ``k`` selected pre-activations per
        row carry the main loss's gradient (:mod:`saeno.sae.sparse_topk`), the decoder gathers the
        ``k`` selected concept vectors (``embedding_bag``), and ``pre`` keeps a dense backward for
        AuxK that runs only when AuxK uses it. The codes are built densely only when read.
        """
        sp = self.sparsity
        if (
            type(sp) is not TopK
            or sp.balance > 0
            or sp.domain_frac is not None
            or sp.domain_l1 > 0
            or self.bias_field is not None
        ):
            return super().forward_train(a)
        target, _ = self._pack(self.normalize(a))
        if self.lift is None:
            y, pre, vals, idx = topk_autoencode(target, self.b_dec, self.W_enc, self.b_enc, self.W_dec, sp.k)
            return SAEOutput(y, target, None, pre, None, sparse=(vals, idx))
        x = self.lift.up(target)
        pre, vals, idx = topk_rows(x - self.b_dec, self.W_enc, self.b_enc, sp.k)
        y = self.lift.down(F.embedding_bag(idx, self.W_dec, per_sample_weights=vals, mode="sum") + self.b_dec)
        return SAEOutput(y, target, None, pre, None, sparse=(vals, idx))

    def _render(self, grid: tuple[int, ...]) -> Tensor:
        if not grid:
            return self.W_dec.detach().clone()
        out = self.W_dec.new_zeros((self.n_concepts, self.core_channels, *grid))
        out[(slice(None), slice(None), *([0] * len(grid)))] = self.W_dec
        return out

    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))

    @torch.no_grad()
    def init_encoder_from_decoder_(self) -> None:
        self.W_enc.copy_(self.W_dec.T)
