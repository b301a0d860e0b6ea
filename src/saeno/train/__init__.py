"""Training and checkpoints: ``train_sae``, ``TrainConfig``, ``save_sae``, ``load_sae``."""

from saeno.train.checkpoint import load_sae, save_sae
from saeno.train.config import TrainConfig
from saeno.train.strategy import SingleProcess
from saeno.train.trainer import ConvergenceWarning, TrainResult, train_sae

__all__ = [
    "train_sae",
    "TrainConfig",
    "TrainResult",
    "ConvergenceWarning",
    "SingleProcess",
    "save_sae",
    "load_sae",
]
