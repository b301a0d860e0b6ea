"""Small seeded random-weight FNOs that need no zoo: for trying the CLI and for tests."""

from __future__ import annotations

import torch
from torch import nn

from saeno.errors import SaenoError

# name -> (class name, FNO keyword arguments)
EXAMPLES: dict[str, tuple[str, dict]] = {
    "example-fno1d": (
        "FNO",
        dict(n_modes=(8,), in_channels=1, out_channels=1, hidden_channels=16, n_layers=4),
    ),
    "example-fno2d": (
        "FNO",
        dict(n_modes=(8, 8), in_channels=1, out_channels=1, hidden_channels=16, n_layers=4),
    ),
    "example-fno3d": (
        "FNO",
        dict(n_modes=(4, 4, 4), in_channels=1, out_channels=1, hidden_channels=8, n_layers=4),
    ),
    "example-tfno2d": (
        "TFNO",
        dict(n_modes=(8, 8), in_channels=1, out_channels=1, hidden_channels=16, n_layers=4),
    ),
}


def example_names() -> list[str]:
    """Names accepted by :func:`example_model`."""
    return list(EXAMPLES)


def example_model(name: str, seed: int = 0) -> nn.Module:
    """A small neuraloperator FNO/TFNO with random weights drawn from ``seed`` (global RNG untouched).

    Parameters
    ----------
    name : str
        One of :func:`example_names`.
    seed : int, default 0
        Seed of the weights.

    Returns
    -------
    nn.Module
        The model in eval mode, on CPU.
    """
    if name not in EXAMPLES:
        raise SaenoError(f"unknown example model {name!r}; use one of {example_names()}.")
    from neuralop.models import FNO, TFNO

    cls_name, kwargs = EXAMPLES[name]
    cls = {"FNO": FNO, "TFNO": TFNO}[cls_name]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls(**kwargs)
    return model.eval()
