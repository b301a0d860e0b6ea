"""Planted-dictionary recovery experiments: settings, model builders and a tracked training loop.

The synthetic settings of the claims protocol (``docs/claims.md``) and the models compared on them live
here, so that ``benchmarks/recovery.py`` and the tests share one definition. It sits above
:mod:`saeno.sae` and :mod:`saeno.synthetic` and knows nothing of stores, hooks or FNOs.
"""

from saeno.recovery.evaluation import (
    code_usage,
    localisation,
    model_atoms,
    rel_error,
    resolution_sweep,
)
from saeno.recovery.settings import MODEL_KINDS, SETTINGS, RecoverySetting, build_model
from saeno.recovery.training import TrainOptions, steps_to, train_tracked

__all__ = [
    "MODEL_KINDS",
    "SETTINGS",
    "RecoverySetting",
    "TrainOptions",
    "build_model",
    "code_usage",
    "localisation",
    "model_atoms",
    "rel_error",
    "resolution_sweep",
    "steps_to",
    "train_tracked",
]
