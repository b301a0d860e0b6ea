"""saeno: sparse autoencoders and SAE neural operators for auditing pretrained Fourier Neural Operators.

The pipeline, one sub-package per step::

    pde/ (data) -> zoo (FNOs) -> hooking/ (HookedOperator) -> store/ (capture, ActivationStore)
        -> sae/ (models) -> train/ (trainer, checkpoints) -> evaluate -> export/ (report)

Public names are imported lazily so that ``import saeno`` stays fast and never imports optional
extras such as transformer-lens.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what editors and type checkers see; at run time the names load lazily
    from saeno import (
        audit,
        cli,
        datasets,
        distributed,
        explain,
        export,
        hooking,
        pde,
        sae,
        store,
        synthetic,
        train,
        zoo,
    )
    from saeno.evaluation import evaluate
    from saeno.explain.core import explain_concepts
    from saeno.export.concepts import export_concepts
    from saeno.hooking.hooked_operator import HookedOperator
    from saeno.sae.flat import FlatSAE
    from saeno.sae.pointwise import SAE
    from saeno.sae.sae_fno import SAEFNO
    from saeno.sae.supervised import SupervisedSAE
    from saeno.store.activation_store import ActivationStore
    from saeno.store.capturing import capture
    from saeno.train.checkpoint import load_sae, save_sae
    from saeno.train.config import TrainConfig
    from saeno.train.trainer import train_sae

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    "HookedOperator": "saeno.hooking.hooked_operator",
    "capture": "saeno.store.capturing",
    "ActivationStore": "saeno.store.activation_store",
    "SAE": "saeno.sae.pointwise",
    "FlatSAE": "saeno.sae.flat",
    "SAEFNO": "saeno.sae.sae_fno",
    "SupervisedSAE": "saeno.sae.supervised",
    "load_sae": "saeno.train.checkpoint",
    "save_sae": "saeno.train.checkpoint",
    "train_sae": "saeno.train.trainer",
    "TrainConfig": "saeno.train.config",
    "evaluate": "saeno.evaluation",
    "export_concepts": "saeno.export.concepts",
    "explain_concepts": "saeno.explain.core",
}
_SUBMODULES = {
    "audit",
    "datasets",
    "zoo",
    "synthetic",
    "pde",
    "hooking",
    "store",
    "sae",
    "train",
    "export",
    "cli",
    "distributed",
    "explain",
}

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
