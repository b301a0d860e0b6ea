"""``ZooOperator``: a neuraloperator model wrapped so that it maps raw inputs to raw outputs."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def _stat(values: Any, channels: int, default: float) -> torch.Tensor:
    if values is None:
        return torch.full((channels,), float(default))
    t = torch.as_tensor(values, dtype=torch.float32).reshape(-1)
    if t.numel() == 1:
        t = t.expand(channels).clone()
    if t.numel() != channels:
        raise ValueError(f"normaliser statistics have {t.numel()} values for {channels} channels")
    return t


class ZooOperator(nn.Module):
    """Raw ``x`` -> normalise per channel -> neuraloperator model (child ``fno``) -> de-normalise -> raw ``y``.

    Parameters
    ----------
    fno : torch.nn.Module
        The neuraloperator model (an ``FNO``), kept as the child ``fno`` so that hook tools find it.
    in_channels, out_channels : int
        Channel counts of ``x`` and ``y``.
    x_mean, x_std, y_mean, y_std : array-like, optional
        Per-channel normaliser statistics (default: identity). Stored as buffers.
    config, record : dict, optional
        ``saeno_config`` (name, dataset, resolution, FNO kwargs, normaliser) and ``saeno_record``
        (training record).
    """

    def __init__(
        self,
        fno: nn.Module,
        in_channels: int,
        out_channels: int,
        x_mean: Any = None,
        x_std: Any = None,
        y_mean: Any = None,
        y_std: Any = None,
        config: dict[str, Any] | None = None,
        record: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.fno = fno
        self.register_buffer("x_mean", _stat(x_mean, in_channels, 0.0))
        self.register_buffer("x_std", _stat(x_std, in_channels, 1.0))
        self.register_buffer("y_mean", _stat(y_mean, out_channels, 0.0))
        self.register_buffer("y_std", _stat(y_std, out_channels, 1.0))
        self.saeno_config: dict[str, Any] = dict(config or {})
        self.saeno_record: dict[str, Any] = dict(record or {})

    def _shape(self, t: torch.Tensor, ndim: int) -> torch.Tensor:
        return t.reshape(1, -1, *([1] * ndim))

    def normalize_input(self, x: torch.Tensor) -> torch.Tensor:
        """Raw ``x`` ``(B, C, *grid)`` -> the FNO's normalised input."""
        nd = x.ndim - 2
        return (x - self._shape(self.x_mean, nd)) / self._shape(self.x_std, nd)

    def denormalize_output(self, y: torch.Tensor) -> torch.Tensor:
        """The FNO's normalised output -> raw ``y``."""
        nd = y.ndim - 2
        return y * self._shape(self.y_std, nd) + self._shape(self.y_mean, nd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map raw ``x`` ``(B, C_in, *grid)`` to raw ``y`` ``(B, C_out, *grid)`` at the input's resolution."""
        return self.denormalize_output(self.fno(self.normalize_input(x)))

    def normalizer(self) -> dict[str, list[float]]:
        """The normaliser statistics as JSON-able lists."""
        return {k: getattr(self, k).tolist() for k in ("x_mean", "x_std", "y_mean", "y_std")}
