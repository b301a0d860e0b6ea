"""The flat SAE (the papers' "SAE-MLP" baseline): one code vector per sample from the flattened field.

``z = s(W_enc^T (vec(a) - b_dec) + b_enc)``, ``a_hat = W_dec^T z + b_dec`` with ``b_dec`` a whole field.
The atoms are functions on the training grid only: asked to run or render on another grid the model
raises a :class:`~saeno.errors.ShapeError` (it is the baseline that cannot change resolution).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from saeno.errors import ShapeError
from saeno.sae.base import SparseAutoencoder
from saeno.sae.sparsity import Sparsity


class FlatSAE(SparseAutoencoder):
    """Sparse autoencoder on flattened fields of a fixed grid; codes ``(B, p)``.

    Parameters
    ----------
    in_channels : int
        Channels C.
    n_concepts : int
        Dictionary size p.
    grid : tuple of int
        The training grid (1 to 3 dimensions).
    sparsity, lifting, complex
        See :class:`~saeno.sae.base.SparseAutoencoder`.
    """

    architecture = "flat"
    view = "field"
    default_group = "point"

    def __init__(
        self,
        in_channels: int,
        n_concepts: int,
        *,
        grid: tuple[int, ...],
        sparsity: str | dict | Sparsity | None = None,
        lifting: int | None = None,
        complex: str | None = None,
    ) -> None:
        grid = tuple(int(n) for n in grid)
        super().__init__(
            in_channels, n_concepts, ndim=len(grid), sparsity=sparsity, lifting=lifting, complex=complex
        )
        self.grid = grid
        d = self.core_channels * math.prod(grid)
        p = self.n_concepts
        self.W_enc = nn.Parameter(torch.empty(d, p))
        self.b_enc = nn.Parameter(torch.zeros(p))
        self.W_dec = nn.Parameter(torch.randn(p, d))
        self.b_dec = nn.Parameter(torch.zeros(d))
        self.normalize_decoder_()
        self.init_encoder_from_decoder_()

    def extra_config(self) -> dict[str, Any]:
        return {"grid": list(self.grid)}

    def constants(self) -> dict[str, Any]:
        return {
            **super().constants(),
            "encoder_input": "vec(x) - b_dec",
            "flatten_order": "channel-major: vec index = c * prod(grid) + row-major grid index",
            "W_enc_shape": "(C * prod(grid), p)",
            "W_dec_shape": "(p, C * prod(grid))",
        }

    def _check_grid(self, grid: tuple[int, ...]) -> None:
        if tuple(grid) != self.grid:
            raise ShapeError(
                f"this FlatSAE was trained on the grid {self.grid} and cannot run on "
                f"{tuple(grid)}: its atoms exist only on the training grid. Resample "
                "the activations to that grid, or use a resolution-free model "
                "(SAE or SAEFNO)"
            )

    def _check_input(self, a: Tensor) -> None:
        super()._check_input(a)
        self._check_grid(tuple(a.shape[2:]))

    def _encode_pre(self, x: Tensor) -> Tensor:
        return torch.addmm(self.b_enc, x.flatten(1) - self.b_dec, self.W_enc)

    def _decode(self, z: Tensor, bias: bool) -> Tensor:
        y = torch.addmm(self.b_dec, z, self.W_dec) if bias else z @ self.W_dec
        return y.view(z.shape[0], self.core_channels, *self.grid)

    def _render(self, grid: tuple[int, ...]) -> Tensor:
        if grid:
            self._check_grid(grid)
        return self.W_dec.detach().view(self.n_concepts, self.core_channels, *self.grid).clone()

    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))

    @torch.no_grad()
    def init_encoder_from_decoder_(self) -> None:
        self.W_enc.copy_(self.W_dec.T)
