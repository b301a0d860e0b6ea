"""Per-sample quantities read from a store through the SAE: codes, reconstruction, pooled activations,
the FNO's error, and (optionally) the per-point sums the error attribution needs.

One pass over the store's rows in batches; nothing of size ``(N, p, *grid)`` is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from saeno.errors import SaenoError


@dataclass
class StoreFeatures:
    """Per-sample arrays of one store (``n`` rows, ``p`` concepts, ``C`` channels)."""

    rows: np.ndarray  # (n,) store rows
    recon: np.ndarray  # (n,) mean squared reconstruction error in the SAE's normalised space
    magnitude: np.ndarray  # (n, p) RMS of each concept's code over the grid
    active_frac: np.ndarray  # (n, p) share of grid points where the code is non-zero
    pooled: np.ndarray  # (n, 2C) per-channel mean and standard deviation over the grid
    norm: np.ndarray  # (n,) RMS of the activation over channels and grid
    error: np.ndarray | None = None  # (n,) relative L2 error of the stored prediction vs the target


def _real(a: torch.Tensor) -> torch.Tensor:
    return torch.cat([a.real, a.imag], dim=1) if a.is_complex() else a


def point_error_field(y_pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(B, *grid)`` error per point: ``|y_pred - y|`` (L2 over channels) / RMS of ``y`` per sample."""
    diff = np.sqrt(((y_pred - y) ** 2).sum(axis=1))
    ref = np.sqrt((y**2).mean(axis=tuple(range(1, y.ndim)))).clip(1e-12)
    return diff / ref.reshape(-1, *([1] * (diff.ndim - 1)))


@torch.no_grad()
def store_features(
    sae: Any,
    store: Any,
    hook: str,
    rows: np.ndarray,
    *,
    batch_size: int = 16,
    with_error: bool = True,
    progress: bool = False,
) -> StoreFeatures:
    """Read ``rows`` of ``store`` and compute their :class:`StoreFeatures` through ``sae``."""
    from tqdm.auto import tqdm

    device = next(iter(sae.buffers())).device
    rows = np.asarray(rows, dtype=np.int64)
    if not len(rows):
        raise SaenoError(f"no rows to audit in the store {store.url}")
    has_y = with_error and "y" in store and "y_pred" in store
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("recon", "mag", "frac", "pooled", "norm", "err")}
    for lo in tqdm(
        range(0, len(rows), batch_size),
        desc=f"audit {store.url.rsplit('/', 1)[-1]}",
        disable=not progress,
        unit="batch",
    ):
        idx = rows[lo : lo + batch_size]
        a = torch.from_numpy(np.asarray(store.read(hook, idx))).to(device)
        if not a.is_complex():
            a = a.float()
        z = sae.encode(a)
        a_hat = sae.decode(z)
        na, nh = sae.normalize(a), sae.normalize(a_hat.to(a.dtype))
        out["recon"].append((na - nh).pow(2).flatten(1).mean(1).cpu().numpy())
        zf = z.flatten(2) if z.dim() > 2 else z[:, :, None]
        out["mag"].append(zf.pow(2).mean(2).sqrt().cpu().numpy())
        out["frac"].append((zf != 0).float().mean(2).cpu().numpy())
        ar = _real(a).double().flatten(2)
        out["pooled"].append(torch.cat([ar.mean(2), ar.std(2, unbiased=False)], 1).cpu().numpy())
        out["norm"].append(ar.pow(2).mean((1, 2)).sqrt().cpu().numpy())
        if has_y:
            y = np.asarray(store.read("y", idx), dtype=np.float64)
            yp = np.asarray(store.read("y_pred", idx), dtype=np.float64)
            d = np.sqrt(((yp - y) ** 2).reshape(len(idx), -1).sum(1))
            out["err"].append(d / np.sqrt((y**2).reshape(len(idx), -1).sum(1)).clip(1e-12))
    cat = {k: np.concatenate(v) for k, v in out.items() if v}
    return StoreFeatures(
        rows=rows,
        recon=cat["recon"],
        magnitude=cat["mag"],
        active_frac=cat["frac"],
        pooled=cat["pooled"],
        norm=cat["norm"],
        error=cat.get("err"),
    )
