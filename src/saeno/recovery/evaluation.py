"""What the recovery experiments measure on a trained model: atoms, error, grids, usage, localisation.

Definitions (``docs/claims.md`` gives them as the claims' operationalisations):

- atoms: the decoder's response to a unit code at the origin, rendered on a grid (``concepts``); the
  pointwise SAE on a field has no spatial atoms (None);
- relative error: ``||x_hat - x|| / ||x||`` over a test set, raw units (against the clean fields when
  the input carries noise);
- usage: :func:`saeno.synthetic_metrics.usage_evenness` of "concept j fires somewhere in sample i";
- localisation: :func:`saeno.synthetic_metrics.localisation_scores` of the codes against the planted
  occurrences, after shift-invariant matching.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from saeno import synthetic as S
from saeno.sae import SAE, SparseAutoencoder

RES_FACTORS = (0.5, 1, 2, 4)


def as_input(model: SparseAutoencoder, x: Tensor) -> Tensor:
    """Fields ``(N, 1, n)`` as the model takes them: rows ``(N, n)`` for a pointwise SAE over grid values."""
    if isinstance(model, SAE) and model.in_channels != x.shape[1]:
        return x.reshape(x.shape[0], -1)
    return x


def _rows_model(model: SparseAutoencoder) -> bool:
    return isinstance(model, SAE) and model.ndim is None


def model_atoms(model: SparseAutoencoder, n: int) -> Tensor | None:
    """Learned atoms ``(p, 1, n)`` on a grid of ``n`` points (None: a pointwise SAE on fields)."""
    if _rows_model(model):
        return model.concepts(None).reshape(model.n_concepts, 1, n)
    if isinstance(model, SAE):
        return None
    return model.concepts(n)


@torch.no_grad()
def reconstruct(model: SparseAutoencoder, x: Tensor, *, resample_to: int | None = None) -> Tensor:
    """The model's reconstruction of fields ``x`` (optionally run on another grid and resampled back)."""
    if resample_to is None or resample_to == x.shape[-1]:
        xin = as_input(model, x)
        return model(xin).reshape(x.shape)
    y = reconstruct(model, fourier_resample(x, resample_to))
    return fourier_resample(y, x.shape[-1])


def rel_error(
    model: SparseAutoencoder, x: Tensor, *, clean: Tensor | None = None, resample_to: int | None = None
) -> float:
    """``||x_hat - target|| / ||target||`` with ``target = clean`` if given, else ``x``."""
    target = x if clean is None else clean
    y = reconstruct(model, x, resample_to=resample_to)
    return float((y - target).norm() / target.norm())


def fourier_resample(x: Tensor, m: int) -> Tensor:
    """Band-limited resampling of periodic 1D fields ``(..., n)`` to ``m`` points (exact below both Nyquists)."""
    n = x.shape[-1]
    if m == n:
        return x
    spec = torch.fft.rfft(x, dim=-1, norm="forward")
    keep = min(n, m) // 2  # drop the (ambiguous) Nyquist bin of the smaller grid
    out = torch.zeros(*spec.shape[:-1], m // 2 + 1, dtype=spec.dtype)
    out[..., :keep] = spec[..., :keep]
    return torch.fft.irfft(out, n=m, dim=-1, norm="forward")


def resolution_sweep(
    model: SparseAutoencoder,
    test: S.SyntheticData,
    n: int,
    factors: tuple[float, ...] = RES_FACTORS,
    *,
    resampled: bool = False,
) -> dict[str, Any]:
    """Relative error and recovery at ``factors`` times the training grid ``n``.

    A model that cannot run on a grid gets ``{"rel_error": "n/a", "error": message}`` (the FlatSAE's
    :class:`~saeno.errors.ShapeError` is the measurement). With ``resampled`` every test grid is
    resampled to ``n`` before the model and back after it (the ablation that removes the grid change
    from what the model sees).
    """
    out: dict[str, Any] = {}
    for f in factors:
        m = int(n * f)
        try:
            x = test.fields(m)
            row: dict[str, Any] = {"rel_error": rel_error(model, x, resample_to=n if resampled else None)}
            atoms = None if resampled else model_atoms(model, m)
            if atoms is not None:
                row.update(S.match_atoms(atoms, test.dictionary(m), shift_invariant=True).as_dict())
            out[str(m)] = row
        except Exception as exc:  # noqa: BLE001 - a model that cannot run here is the measurement
            out[str(m)] = {"rel_error": "n/a", "error": f"{type(exc).__name__}: {exc}"}
    return out


@torch.no_grad()
def codes_of(model: SparseAutoencoder, x: Tensor) -> Tensor:
    """Codes ``(N, p)`` or ``(N, p, n)`` of fields ``x``."""
    return model.encode(as_input(model, x))


def code_usage(model: SparseAutoencoder, x: Tensor) -> dict[str, float]:
    """:func:`~saeno.synthetic_metrics.usage_evenness` of the codes of ``x`` (firing anywhere in a sample)."""
    z = codes_of(model, x)
    active = (z != 0).flatten(2).any(-1) if z.dim() > 2 else z != 0
    return S.usage_evenness(active)


def localisation(
    model: SparseAutoencoder, test: S.SyntheticData, n: int, *, radius: int = 1
) -> dict[str, float] | None:
    """:func:`~saeno.synthetic_metrics.localisation_scores` of a field model on ``test`` (None otherwise)."""
    atoms = model_atoms(model, n)
    if atoms is None or _rows_model(model):
        return None
    true = test.dictionary(n)
    rec = S.match_atoms(atoms, true, shift_invariant=True)
    lags = S.best_lags(atoms, true, rec.assignment)
    z = codes_of(model, test.fields(n))
    if z.dim() != 3:
        return None
    codes = test.codes
    position = (codes.shift[:, 0] * n) // test.atoms.base
    return S.localisation_scores(
        z, codes.sample, codes.concept, np.asarray(position), rec.assignment, lags, radius=radius
    )
