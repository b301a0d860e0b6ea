"""Metrics shared by every layer (it imports nothing of saeno, so any module may use it).

:func:`relative_l2` is the project's one definition of the relative L2 error of a field: the zoo's
training loss and test error, ``evaluate``'s reconstruction and splice scores, the report's ablation
effects, the audit's error attribution and the supervised intervention scores all call it.
"""

from __future__ import annotations

from typing import overload

import numpy as np
import torch

EPS = 1e-12
"""The floor of the target's norm in :func:`relative_l2`: a zero target gives ``||pred|| / EPS``
(``0`` when ``pred`` is zero too), never a division by zero."""


@overload
def relative_l2(pred: torch.Tensor, target: torch.Tensor, eps: float = EPS) -> torch.Tensor: ...


@overload
def relative_l2(pred: np.ndarray, target: torch.Tensor | np.ndarray, eps: float = EPS) -> np.ndarray: ...


@overload
def relative_l2(pred: torch.Tensor, target: np.ndarray, eps: float = EPS) -> np.ndarray: ...


def relative_l2(
    pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray, eps: float = EPS
) -> torch.Tensor | np.ndarray:
    """Per-sample relative L2 error ``||pred - target|| / max(||target||, eps)``.

    Parameters
    ----------
    pred, target
        Fields of one shape ``(B, ...)`` (typically ``(B, C, *grid)``); the norms run over everything but
        the first axis. Complex values use their modulus.
    eps
        Floor of the target's norm (default :data:`EPS`, ``1e-12``), so a zero target gives
        ``||pred|| / eps`` rather than a division by zero.

    Returns
    -------
    torch.Tensor or numpy.ndarray
        ``(B,)``. When both inputs are tensors: a tensor of their (real) dtype on their device, with
        gradients (the zoo trains on it). Otherwise (either input a numpy array): float64 numpy.
    """
    if isinstance(pred, torch.Tensor) and isinstance(target, torch.Tensor):
        diff = torch.linalg.vector_norm((pred - target).flatten(1), dim=1)
        ref = torch.linalg.vector_norm(target.flatten(1), dim=1)
        return diff / ref.clamp_min(eps)
    p = _as_numpy(pred)
    t = _as_numpy(target)
    p = p.reshape(len(p), -1)
    t = t.reshape(len(t), -1)
    return np.linalg.norm(p - t, axis=1) / np.maximum(np.linalg.norm(t, axis=1), eps)


def _as_numpy(a: torch.Tensor | np.ndarray) -> np.ndarray:
    """``a`` as a float64 (or complex128) numpy array."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    return a.astype(np.complex128 if np.iscomplexobj(a) else np.float64, copy=False)


__all__ = ["EPS", "relative_l2"]
