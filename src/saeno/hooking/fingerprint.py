"""A content hash of a model: its architecture (class and constructor arguments) and every weight.

Captures and SAEs store it; splicing compares it, so that an SAE is never spliced into a model other
than the one its activations came from. saeno's wrappers do not enter it: a :class:`HookedOperator` is
unwrapped, and so is a zoo ``ZooOperator`` (its child ``fno``), whose normaliser statistics count as
weights only when they are not the identity. The same neuraloperator FNO therefore has one fingerprint
whether it is hooked bare, loaded from a state dict, or wrapped by saeno; saeno's bookkeeping
(``saeno_config``: names, training record) does not change it.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from typing import Any

import torch
from torch import nn


def _jsonable(value: Any) -> Any:
    """A JSON-able, address-free image of a configuration value."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return {"tensor": list(value.shape), "dtype": str(value.dtype)}
    if isinstance(value, (torch.dtype, torch.device)):
        return str(value)
    if isinstance(value, type) or callable(value):
        module = getattr(value, "__module__", None) or ""
        name = (
            getattr(value, "__qualname__", None)
            or getattr(value, "__name__", None)
            or type(value).__qualname__
        )
        return f"{module}.{name}"
    return f"<{type(value).__module__}.{type(value).__qualname__}>"


NORMALIZER_BUFFERS = ("x_mean", "x_std", "y_mean", "y_std")


def model_config(model: nn.Module) -> dict:
    """The architecture a model carries: neuraloperator's ``_init_kwargs`` (empty for other modules)."""
    value = getattr(model, "_init_kwargs", None)
    return {"_init_kwargs": _jsonable(value)} if isinstance(value, dict) else {}


def _is_wrapper(model: nn.Module) -> bool:
    return type(model).__name__ == "ZooOperator" and isinstance(getattr(model, "fno", None), nn.Module)


def _identity_normalizer(model: nn.Module) -> bool:
    for name in NORMALIZER_BUFFERS:
        t = getattr(model, name, None)
        if not isinstance(t, torch.Tensor):
            return False
        if not torch.all(t == (1.0 if name.endswith("std") else 0.0)):
            return False
    return True


def canonical_model(model: nn.Module) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """The model whose architecture and weights define the fingerprint, and the extra tensors that count.

    Unwraps a ``HookedOperator`` and a ``ZooOperator``; a non-identity normaliser's buffers are returned
    as extra tensors (named ``normalizer.<name>``).
    """
    inner = getattr(model, "model", None)
    if type(model).__name__ == "HookedOperator" and isinstance(inner, nn.Module):
        model = inner
    extra: dict[str, torch.Tensor] = {}
    if _is_wrapper(model):
        if not _identity_normalizer(model):
            extra = {f"normalizer.{k}": getattr(model, k) for k in NORMALIZER_BUFFERS}
        model = model.fno  # type: ignore[assignment]
    return model, extra


def fingerprint(model: nn.Module) -> str:
    """SHA-256 hex digest over a model's class, configuration and weights.

    The hash covers the class (module and qualified name), the JSON-able architecture of
    :func:`model_config`, and for every tensor of the state dict its name, dtype, shape and bytes.
    A reloaded copy gives the same digest; changing any weight changes it.

    Parameters
    ----------
    model : nn.Module
        The model; saeno's wrappers are unwrapped first (:func:`canonical_model`).

    Returns
    -------
    str
        64 hexadecimal characters.
    """
    model, extra = canonical_model(model)
    h = hashlib.sha256()
    cls = type(model)
    header = {"class": f"{cls.__module__}.{cls.__qualname__}", "config": model_config(model)}
    h.update(json.dumps(header, sort_keys=True).encode())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # neuraloperator warns when nested models add metadata twice
        state = dict(model.state_dict())
    state.update(extra)
    for name in sorted(k for k, v in state.items() if isinstance(v, torch.Tensor)):
        t = state[name].detach()
        h.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode())
        data = t.to("cpu").contiguous().reshape(-1)
        if data.numel():
            h.update(data.view(torch.uint8).numpy().data)
    return h.hexdigest()
