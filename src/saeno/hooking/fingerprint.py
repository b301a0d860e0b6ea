"""A content hash of a model: its class, its configuration and every weight.

Captures and SAEs store it; splicing compares it, so that an SAE is never spliced into a model other
than the one its activations came from.
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
        name = getattr(value, "__qualname__", None) or getattr(value, "__name__", None) or type(value).__qualname__
        return f"{module}.{name}"
    return f"<{type(value).__module__}.{type(value).__qualname__}>"


def model_config(model: nn.Module) -> dict:
    """The configuration a model carries: ``saeno_config`` (zoo models) and neuraloperator's ``_init_kwargs``."""
    config = {}
    for attr in ("saeno_config", "_init_kwargs"):
        value = getattr(model, attr, None)
        if isinstance(value, dict):
            config[attr] = _jsonable(value)
    return config


def fingerprint(model: nn.Module) -> str:
    """SHA-256 hex digest over a model's class, configuration and weights.

    The hash covers the class (module and qualified name), the JSON-able configuration of
    :func:`model_config`, and for every tensor of the state dict its name, dtype, shape and bytes.
    A reloaded copy gives the same digest; changing any weight changes it.

    Parameters
    ----------
    model : nn.Module
        The model; a :class:`~saeno.hooking.HookedOperator` is unwrapped to the model it hooks.

    Returns
    -------
    str
        64 hexadecimal characters.
    """
    inner = getattr(model, "model", None)
    if type(model).__name__ == "HookedOperator" and isinstance(inner, nn.Module):
        model = inner
    h = hashlib.sha256()
    cls = type(model)
    header = {"class": f"{cls.__module__}.{cls.__qualname__}", "config": model_config(model)}
    h.update(json.dumps(header, sort_keys=True).encode())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # neuraloperator warns when nested models add metadata twice
        state = model.state_dict()
    for name in sorted(k for k, v in state.items() if isinstance(v, torch.Tensor)):
        t = state[name].detach()
        h.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode())
        data = t.to("cpu").contiguous().reshape(-1)
        if data.numel():
            h.update(data.view(torch.uint8).numpy().data)
    return h.hexdigest()
