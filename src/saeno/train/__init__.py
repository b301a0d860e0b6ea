"""Training and checkpoints: ``train_sae``, ``TrainConfig``, ``MultiGrid``, ``save_sae``, ``load_sae``."""

from saeno.train.checkpoint import load_sae, save_sae
from saeno.train.config import TrainConfig
from saeno.train.multigrid import MultiGrid
from saeno.train.strategy import SingleProcess
from saeno.train.trainer import ConvergenceWarning, TrainResult, train_sae

__all__ = [
    "train_sae",
    "TrainConfig",
    "MultiGrid",
    "TrainResult",
    "ConvergenceWarning",
    "SingleProcess",
    "save_sae",
    "load_sae",
]
