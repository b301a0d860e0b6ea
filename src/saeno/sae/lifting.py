"""Learned pointwise lifting: ``P: R^C -> R^L`` before the encoder, ``Q: R^L -> R^C`` after the decoder.

``docs/method.md`` section 1 ("L-" models). Both maps are bias-free (the decoder bias of the core model lives in
the lifted space). At initialisation ``Q`` has orthonormal columns and ``P = Q^T``, so ``Q P = I``: the
lifted model starts as the plain one seen through an isometric embedding.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def channel_linear(x: Tensor, weight: Tensor) -> Tensor:
    """Apply ``weight (out, in)`` along dimension 1 of rows ``(N, in)`` or fields ``(B, in, *grid)``."""
    if x.dim() == 2:
        return x @ weight.T
    return torch.einsum("oi,bi...->bo...", weight, x)


class Lifting(nn.Module):
    """Pointwise lift ``P (L, C)`` and projection ``Q (C, L)``.

    Parameters
    ----------
    in_channels : int
        C, the channels of the (normalised) activations.
    width : int
        L, the lifted width (L >= C).
    """

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        if width < in_channels:
            raise ValueError(f"lifting width {width} must be >= the channel count {in_channels}")
        q = torch.linalg.qr(torch.randn(width, in_channels)).Q  # (L, C), orthonormal columns
        self.P = nn.Parameter(q.clone())  # (L, C)
        self.Q = nn.Parameter(q.T.clone())  # (C, L)
        self.in_channels, self.width = in_channels, width

    def up(self, x: Tensor) -> Tensor:
        """``P x``: C -> L channels."""
        return channel_linear(x, self.P)

    def down(self, y: Tensor) -> Tensor:
        """``Q y``: L -> C channels."""
        return channel_linear(y, self.Q)
