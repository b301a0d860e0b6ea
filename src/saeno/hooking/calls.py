"""Models called with several inputs, seen as models of one batched tensor.

Capture, the splice evaluation and the concept export feed a model one tensor per batch, ``(B, C, *grid)``.
Point-cloud operators take several: a GINO ``(input_geom, latent_queries, output_queries, x)``, an FNOGNO
``(in_p, out_p, f)``. Their geometry is usually one per batch (neuraloperator's GINO batches only over a
shared geometry), their input function is per sample. :class:`KeywordCall` holds the shared inputs as
buffers (so the model fingerprint a store records covers the geometry too) and passes the batch tensor as
the one per-sample keyword argument. ``HookedOperator(KeywordCall(...))`` finds the operator inside it and
gives it its preset's names, so every verb that takes a model works unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from saeno.errors import ShapeError


class KeywordCall(nn.Module):
    """Call ``model(**shared, **{input: x})`` for a batch ``x``.

    Parameters
    ----------
    model : nn.Module
        The operator (a GINO, an FNOGNO, or any model with keyword inputs).
    input : str
        Name of the keyword argument that receives the batch (GINO: ``"x"``, FNOGNO: ``"f"``).
    shared : mapping of str to Tensor, optional
        Inputs shared by every sample of a batch (geometry, query points), kept as buffers: they move
        with ``.to(device)``, are saved in the state dict and count in the model fingerprint.
    channels_last : bool, default False
        The model takes and returns channels last (point clouds ``(B, n, C)``, FNOGNO's
        ``(n_1, ..., n_k, C)``): the batch is given in saeno's convention ``(B, C, *points)`` and moved
        there, and the output is moved back to ``(B, C, *points)``.
    batched : bool, default True
        ``False`` for a model without a batch axis (an FNOGNO with ``gno_batched=False``): batches must
        then hold one sample (``batch_size=1``); it is removed before the call and put back on the output.

    Examples
    --------
    >>> call = KeywordCall(gino, "x", {"input_geom": geom, "latent_queries": latent,
    ...                                "output_queries": queries}, channels_last=True)  # doctest: +SKIP
    >>> hooked = HookedOperator(call)  # GINO's names; hooked(x) for x of shape (B, C, n_in)  # doctest: +SKIP
    """

    def __init__(
        self,
        model: nn.Module,
        input: str,
        shared: Mapping[str, torch.Tensor] | None = None,
        *,
        channels_last: bool = False,
        batched: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise ShapeError(f"KeywordCall wraps a torch.nn.Module, got {type(model).__name__}.")
        if not isinstance(input, str) or not input:
            raise ShapeError(f"input must name the model's per-sample keyword argument, got {input!r}.")
        self.model = model
        self.input = input
        self.channels_last = bool(channels_last)
        self.batched = bool(batched)
        self._shared: list[str] = []
        for name, value in (shared or {}).items():
            if name == input:
                raise ShapeError(f"{name!r} is both the per-sample input and a shared input; give it once.")
            if not isinstance(value, torch.Tensor):
                raise ShapeError(
                    f"shared input {name!r} must be a tensor, got {type(value).__name__}; a dict of query "
                    "tensors (GINO's several output query sets) is not supported: use one KeywordCall per set."
                )
            self.register_buffer(f"shared_{name}", value.detach().clone())
            self._shared.append(name)

    @property
    def shared(self) -> dict[str, torch.Tensor]:
        """The shared inputs by keyword."""
        return {name: getattr(self, f"shared_{name}") for name in self._shared}

    def extra_repr(self) -> str:
        return (
            f"input={self.input!r}, shared={self._shared}, channels_last={self.channels_last}, "
            f"batched={self.batched}"
        )

    def forward(self, x: torch.Tensor, **kwargs: Any) -> Any:
        """The model's output for the batch ``x`` (``(B, C, *points)``; further keywords pass through)."""
        if not isinstance(x, torch.Tensor) or x.dim() < 2:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ShapeError(f"KeywordCall takes a batch tensor (B, C, ...), got {got}.")
        if not self.batched and x.shape[0] != 1:
            raise ShapeError(
                f"{type(self.model).__name__} has no batch axis (batched=False): give one sample per batch "
                f"(batch_size=1), got a batch of {x.shape[0]}."
            )
        value = x.movedim(1, -1) if self.channels_last else x
        if not self.batched:
            value = value[0]
        out = self.model(**self.shared, **{self.input: value}, **kwargs)
        if not isinstance(out, torch.Tensor):
            return out
        if not self.batched:
            out = out.unsqueeze(0)
        return out.movedim(-1, 1) if self.channels_last else out


def gino_call(
    model: nn.Module,
    input_geom: torch.Tensor,
    latent_queries: torch.Tensor,
    output_queries: torch.Tensor,
) -> KeywordCall:
    """A neuraloperator GINO on one shared geometry: batches ``(B, in_channels, n_in)`` of input functions.

    Parameters
    ----------
    model : nn.Module
        The GINO.
    input_geom : Tensor
        ``(1, n_in, d)`` or ``(n_in, d)`` input points.
    latent_queries : Tensor
        ``(1, *latent_grid, d)`` or ``(*latent_grid, d)``: the latent grid the FNO runs on.
    output_queries : Tensor
        ``(1, n_out, d)`` or ``(n_out, d)`` output points.

    Returns
    -------
    KeywordCall
        Its output is ``(B, out_channels, n_out)``.
    """
    shared = {"input_geom": input_geom, "latent_queries": latent_queries, "output_queries": output_queries}
    return KeywordCall(model, "x", shared, channels_last=True)


def fnogno_call(model: nn.Module, in_p: torch.Tensor, out_p: torch.Tensor) -> KeywordCall:
    """A neuraloperator FNOGNO on a shared latent grid ``in_p`` and output points ``out_p``.

    Batches are ``(B, in_channels, *latent_grid)``; without ``gno_batched`` the FNOGNO has no batch
    axis and each batch holds one sample. The output is ``(B, out_channels, n_out)``.
    """
    batched = bool(getattr(model, "gno_batched", False))
    return KeywordCall(model, "f", {"in_p": in_p, "out_p": out_p}, channels_last=True, batched=batched)
