"""The benchmark's FNO (``burgers-labelled-fno``): its home is the zoo, :mod:`saeno.zoo.labelled`.

Kept so that ``from saeno.supervised import model_fno`` (tutorial 4, the benchmark) goes on working; every
name is :mod:`saeno.zoo.labelled`'s.
"""

from __future__ import annotations

import torch

from saeno.zoo.labelled import (
    FNO_KWARGS,
    NAME,
    RECIPE,
    build,
    load_folder,
    load_or_train,
    save,
    spec,
    train_fno,
)
from saeno.zoo.training import relative_l2


def rel_l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample relative L2 error (:func:`saeno.zoo.training.relative_l2`): ``(B,)``."""
    return relative_l2(pred, target)


__all__ = [
    "NAME",
    "FNO_KWARGS",
    "RECIPE",
    "build",
    "spec",
    "rel_l2",
    "train_fno",
    "save",
    "load_folder",
    "load_or_train",
]
