"""Training and checkpoints: ``train_sae``, ``save_sae``, ``load_sae`` (cfg.json + safetensors)."""

from saeno.train.checkpoint import load_sae, save_sae
from saeno.train.trainer import TrainResult, train_sae

__all__ = ["train_sae", "TrainResult", "save_sae", "load_sae"]
