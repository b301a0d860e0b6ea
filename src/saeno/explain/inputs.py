"""The inputs of :func:`saeno.explain.explain_concepts`: the SAE, the store and its hook resolved, rows
and parameters read, the two halves of the protocol, code maps of the rows."""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch

from saeno.explain.probes import (
    ExplainError,
)

# ---------------------------------------------------------------------------------------------
# inputs


def resolve_sae(sae: Any) -> tuple[Any, str | None]:
    if isinstance(sae, (str, PathLike)):
        from saeno.train.checkpoint import load_sae

        return load_sae(Path(sae)), str(sae)
    if not hasattr(sae, "encode"):
        raise ExplainError(
            f"sae must be an SAE (with encode) or a folder written by saeno.save_sae, "
            f"got {type(sae).__name__}"
        )
    return sae, None


def open_store(store: Any) -> tuple[Any, str | None]:
    if isinstance(store, (str, Path)):
        from saeno.store.activation_store import ActivationStore

        return ActivationStore.open(store), str(store)
    return store, getattr(store, "url", None)


def pick_hook(store: Any, sae: Any, hook: str | None) -> str:
    """The hook to explain: ``hook``, else the SAE's recorded hook, else the store's only one."""
    from saeno.store.checks import resolve_hook

    meta = getattr(sae, "metadata", None) or {}
    default = getattr(sae, "hook", None) or (meta.get("hook") if isinstance(meta, dict) else None)
    return resolve_hook(store, hook, default=default)


def has_array(store: Any, name: str) -> bool:
    try:
        return name in store
    except TypeError:
        return False


def store_card(store: Any) -> dict[str, Any]:
    attrs = getattr(store, "attrs", None) or {}
    ds = attrs.get("dataset") or {}
    card = ds.get("card") if isinstance(ds, Mapping) else None
    return dict(card or {})


def read_rows(store: Any, name: str, rows: np.ndarray) -> np.ndarray:
    value = store.read(name, rows)
    return np.asarray(value.numpy() if isinstance(value, torch.Tensor) else value)


def store_params(store: Any, rows: np.ndarray) -> dict[str, np.ndarray]:
    try:
        params = store.params
    except (AttributeError, KeyError):
        return {}
    out = {}
    for k, v in dict(params or {}).items():
        v = np.asarray(v)
        if v.ndim == 1 and v.shape[0] > int(rows.max()):
            out[k] = v[rows].astype(np.float64)
    return out


def split_halves(rows: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(selection, held_out)`` rows: a seeded permutation cut in two (sorted, disjoint)."""
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    if rows.size < 2:
        raise ExplainError(f"explaining needs at least 2 samples (got {rows.size}): pass more rows")
    perm = np.random.default_rng(seed).permutation(rows)
    half = rows.size // 2
    return np.sort(perm[:half]), np.sort(perm[half:])


# ---------------------------------------------------------------------------------------------
# code maps


def code_maps(sae: Any, a: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    """``(N, p, *grid)`` code maps: ``|z|`` for function-valued codes, ``z`` for a pointwise SAE."""
    pointwise = getattr(sae, "view", "field") == "points"
    out = []
    with torch.no_grad():
        for start in range(0, a.shape[0], batch_size):
            x = torch.as_tensor(a[start : start + batch_size]).to(device)
            if not x.is_complex():
                x = x.float()
            z = sae.encode(x)
            if z.ndim < 3:
                raise ExplainError(
                    "the SAE's codes are one number per sample (a flat SAE): they have "
                    "no map to compare with probe fields; explain a pointwise SAE or an "
                    "SAE-FNO"
                )
            z = z.float()
            out.append((z if pointwise else z.abs()).cpu().numpy())
    return np.concatenate(out, axis=0)


def resample(fields: np.ndarray, grid: tuple[int, ...]) -> np.ndarray:
    """``(N, *g)`` probe fields onto the code grid (linear interpolation)."""
    if tuple(fields.shape[1:]) == grid:
        return fields
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(grid)]
    t = torch.as_tensor(fields, dtype=torch.float32)[:, None]
    return torch.nn.functional.interpolate(t, size=grid, mode=mode, align_corners=False)[:, 0].numpy()


def resolve_hooked(model: Any, trust: bool, store: Any) -> Any:
    from saeno.evaluation import as_hooked, check_model_matches_store

    hooked = as_hooked(model, trust=trust)
    if getattr(store, "fingerprint", None) not in (None, "", "None"):
        check_model_matches_store(hooked, store)
    return hooked
