"""saeno: sparse autoencoders and SAE neural operators for auditing pretrained Fourier Neural Operators.

The pipeline, one sub-package per step::

    pde/ (data) -> zoo (FNOs) -> hooking/ (HookedOperator) -> store/ (capture, ActivationStore)
        -> sae/ (models) -> train/ (trainer, checkpoints) -> evaluate -> export/ (report)

Public names are imported lazily so that ``import saeno`` stays fast and never imports optional
extras such as transformer-lens.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    "HookedOperator": "saeno.hooking.hooked_operator",
    "capture": "saeno.store.capture",
    "ActivationStore": "saeno.store.activation_store",
    "SAE": "saeno.sae.pointwise",
    "FlatSAE": "saeno.sae.flat",
    "SAEFNO": "saeno.sae.sae_fno",
    "SupervisedSAE": "saeno.sae.supervised",
    "load_sae": "saeno.train.checkpoint",
    "save_sae": "saeno.train.checkpoint",
    "train_sae": "saeno.train.trainer",
    "evaluate": "saeno.evaluate",
    "export_concepts": "saeno.export.concepts",
}
_SUBMODULES = {"audit", "datasets", "zoo", "synthetic", "pde", "hooking", "store", "sae", "train", "export", "cli"}

__all__ = sorted(_LAZY) + sorted(_SUBMODULES) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = getattr(module, name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"saeno.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'saeno' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
