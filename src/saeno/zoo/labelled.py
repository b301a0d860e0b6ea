"""The labelled Burgers benchmark's FNO (``burgers-labelled-fno``), a zoo recipe of its own.

A neuraloperator 1D ``FNO`` (16 modes, hidden 32, 4 layers) maps ``x = (u0, log10 nu)`` to ``u(T)`` on
the ``burgers_labelled`` dataset, trained on every label combination by the zoo's loop
(:func:`saeno.zoo.training.fit`, recipe :data:`saeno.zoo.specs.LABELLED_FNO`: Adam on the relative L2
loss). Unlike the other zoo models it is a bare FNO (no normaliser): its inputs are already of order one.
Saved as ``config.json`` + ``model.safetensors`` in ``saeno.paths.zoo_dir() / "burgers-labelled-fno" /
KEY``, the key naming the training settings (samples, epochs, seed, resolution).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from saeno.errors import SaenoError
from saeno.paths import zoo_dir
from saeno.zoo.specs import LABELLED_FNO

NAME = "burgers-labelled-fno"
DATASET = "burgers_labelled"
FNO_KWARGS = {"n_modes": [16], "in_channels": 2, "out_channels": 1, "hidden_channels": 32, "n_layers": 4}

#: the FNO's training recipe (:data:`saeno.zoo.specs.LABELLED_FNO`)
RECIPE = LABELLED_FNO.as_spec()["train"]


def build(kwargs: dict[str, Any] | None = None) -> torch.nn.Module:
    """A fresh neuraloperator FNO with the benchmark's (or the given) keyword arguments."""
    from neuralop.models import FNO

    kw = dict(FNO_KWARGS if kwargs is None else kwargs)
    kw["n_modes"] = tuple(kw["n_modes"])
    return FNO(**kw)


def spec(epochs: int = 40, batch_size: int = 32, lr: float = 3e-3, seed: int = 0) -> dict[str, Any]:
    """The zoo spec of :data:`~saeno.zoo.specs.LABELLED_FNO` with these training settings."""
    out = copy.deepcopy(LABELLED_FNO.as_spec())
    out["name"] = NAME
    out["train"].update(epochs=int(epochs), batch_size=int(batch_size), lr=float(lr), seed=int(seed))
    return out


def train_fno(
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 40,
    batch_size: int = 32,
    lr: float = 3e-3,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train the benchmark FNO on ``x (N, 2, r)`` -> ``y (N, 1, r)``; returns ``(model, record)``.

    The run is :func:`saeno.zoo.training.fit` with :func:`spec` (a bare FNO: ``normalize=False``).
    """
    from saeno.zoo.training import fit

    model, history = fit(
        spec(epochs, batch_size, lr, seed),
        (torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)),
        device=device,
        progress=progress,
        normalize=False,
    )
    return model, {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "n_train": len(x),
        "final_train_rel_l2": float(np.mean(history["step_loss"][-20:])),
    }


def save(model: torch.nn.Module, folder: str | Path, config: dict[str, Any]) -> Path:
    """Write ``config.json`` and ``model.safetensors`` (tensors only, no pickle)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)
    }
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return folder


def load_folder(folder: str | Path, device: str | torch.device | None = None) -> torch.nn.Module:
    """Load a model saved by :func:`save`; sets ``.saeno_config`` and ``.saeno_record``."""
    folder = Path(folder)
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        raise SaenoError(f"{folder} has no config.json + model.safetensors of a benchmark FNO")
    cfg = json.loads((folder / "config.json").read_text())
    model = build(cfg["fno"])
    missing, unexpected = model.load_state_dict(load_file(str(folder / "model.safetensors")), strict=False)
    if unexpected or [k for k in missing if not k.endswith("_metadata")]:
        raise SaenoError(
            f"weights in {folder} do not match its config: missing {missing}, unexpected {unexpected}"
        )
    model.saeno_config = cfg
    model.saeno_record = cfg.get("record", {})
    if device is not None:
        model.to(device)
    return model.eval()


def load_or_train(
    n_train: int = 810,
    epochs: int = 40,
    seed: int = 0,
    resolution: int = 64,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> torch.nn.Module:
    """The cached benchmark FNO for these settings (trained on first use, on all combinations)."""
    import saeno.datasets
    from saeno.zoo.training import relative_l2

    folder = zoo_dir() / NAME / f"n{n_train}-e{epochs}-s{seed}-r{resolution}"
    if (folder / "model.safetensors").is_file():
        return load_folder(folder, device)
    x, y = saeno.datasets.load(
        DATASET, split="train", resolution=resolution, n=n_train, progress=progress
    ).tensors()
    model, record = train_fno(
        x.numpy(), y.numpy(), epochs=epochs, seed=seed, device=device or "cpu", progress=progress
    )
    xt, yt = saeno.datasets.load(
        DATASET, split="test", resolution=resolution, n=n_train, progress=False
    ).tensors()
    with torch.no_grad():
        dev = next(model.parameters()).device
        pred = model(xt.to(dev))
        record["test_rel_l2"] = float(relative_l2(pred.cpu(), yt).mean())
    cfg = {"name": NAME, "dataset": DATASET, "resolution": resolution, "fno": FNO_KWARGS, "record": record}
    save(model.cpu(), folder, cfg)
    return load_folder(folder, device)


__all__ = [
    "NAME",
    "FNO_KWARGS",
    "RECIPE",
    "build",
    "spec",
    "train_fno",
    "save",
    "load_folder",
    "load_or_train",
]
