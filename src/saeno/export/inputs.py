"""The inputs of an export: the SAE, the store, its hook and the FNO, resolved and checked; reading rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from saeno.errors import SaenoError

DEFAULT_MAX_CONCEPTS = 16


class ExportError(SaenoError):
    """An export that cannot be made with the given SAE, store and model."""


def resolve_sae(sae: Any) -> tuple[torch.nn.Module, str | None]:
    if isinstance(sae, torch.nn.Module):
        return sae, None
    from saeno.train.checkpoint import load_sae

    return load_sae(sae), str(sae)


def open_store(store: Any) -> tuple[Any, str | None]:
    if isinstance(store, (str, Path)):
        from saeno.store.activation_store import ActivationStore

        return ActivationStore.open(store), str(store)
    where = getattr(store, "url", None) or getattr(store, "path", None)
    return store, None if where is None else str(where)


def pick_hook(store: Any, sae: torch.nn.Module, hook: str | None) -> str:
    """The hook to export: ``hook``, else the SAE's recorded hook, else the store's only one."""
    from saeno.store.checks import resolve_hook

    meta = getattr(sae, "metadata", None) or {}
    default = getattr(sae, "hook", None) or (meta.get("hook") if isinstance(meta, Mapping) else None)
    return resolve_hook(store, hook, default=default)


def resolve_model(model: Any, trust: bool) -> tuple[Any | None, str | None]:
    """``(HookedOperator or None, display name)``."""
    if model is None:
        return None, None
    from saeno.evaluation import as_hooked
    from saeno.hooking.hooked_operator import HookedOperator

    name = str(model) if isinstance(model, (str, Path)) else None
    if not isinstance(model, (str, Path, HookedOperator, torch.nn.Module)):
        raise ExportError(f"model must be a zoo name, a path or a torch module, got {type(model)}")
    hooked = as_hooked(model, trust=trust)
    return hooked, name or model_display_name(hooked.model)


def model_display_name(model: torch.nn.Module) -> str:
    """The name a user gave the model: a zoo or saved model's recorded name, else its class.

    Looks at ``saeno_config["name"]`` (zoo and ``saeno.zoo.save_model`` models) and at a
    ``saeno_name`` attribute a user may set, before falling back to the class name.
    """
    for obj in (model, getattr(model, "fno", None)):
        if obj is None:
            continue
        name = getattr(obj, "saeno_name", None)
        cfg = getattr(obj, "saeno_config", None)
        if name:
            return str(name)
        if isinstance(cfg, Mapping) and cfg.get("name"):
            return str(cfg["name"])
    return type(model).__name__


def check_fingerprint(hooked: Any, store: Any) -> str:
    """The model's fingerprint, refused when the store was captured from another model."""
    from saeno.store.checks import check_model

    return check_model(store, hooked)


def read_rows(store: Any, name: str, rows: Sequence[int]) -> torch.Tensor:
    """Rows of a hook or of the ``x``/``y``/``y_pred`` arrays, in the order asked."""
    value = store.read(name, np.asarray([int(r) for r in rows], dtype=np.int64))
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))


def to_device(a: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move to ``device``; real activations (float16 stores included) become float32, complex stay."""
    return a.to(device) if a.is_complex() else a.to(device=device, dtype=torch.float32)


def has_array(store: Any, name: str) -> bool:
    try:
        return name in store
    except TypeError:
        return False


def real_parts(atoms: torch.Tensor) -> torch.Tensor:
    """Complex atoms as real ones: real and imaginary parts stacked along channels."""
    if atoms.is_complex():
        return torch.cat([atoms.real, atoms.imag], dim=1)
    return atoms


def normalize_resolutions(
    resolutions: Any, grid: Sequence[int], ndim: int, flat: bool
) -> list[tuple[int, ...]]:
    if resolutions is None:
        base = tuple(int(g) for g in grid)
        return [base] if flat else [base, tuple(2 * g for g in base)]
    out = []
    for r in resolutions:
        res = (int(r),) * ndim if isinstance(r, (int, np.integer)) else tuple(int(v) for v in r)
        if len(res) == 1:
            res = res * ndim
        if len(res) != ndim or min(res) < 1:
            raise ExportError(
                f"resolution {r!r} does not fit a {ndim}D SAE: give an int or {ndim} positive ints"
            )
        out.append(res)
    return out


def res_label(res: Sequence[int]) -> str:
    return "x".join(str(int(r)) for r in res)
