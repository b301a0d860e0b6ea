"""Saving and loading SAEs and training checkpoints, without pickle.

An SAE folder holds ``cfg.json`` (architecture and constructor arguments, hook, the activation store's
model fingerprint, normalisation, versions, metadata) and ``sae_weights.safetensors`` (parameters and
buffers, normalisation included). A checkpoint folder is an SAE folder plus ``trainer_state.json``
(step, data position, optimiser hyper-parameters, ...) and ``trainer_state.safetensors`` (optimiser
state tensors, RNG states, dead-concept counters). Checkpoints live in ``<dir>/step_<NNNNNNNN>/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from saeno.errors import SaenoError
from saeno.sae import registry
from saeno.sae.base import SparseAutoencoder

CFG_NAME = "cfg.json"
WEIGHTS_NAME = "sae_weights.safetensors"
STATE_JSON = "trainer_state.json"
STATE_TENSORS = "trainer_state.safetensors"
_STEP_RE = re.compile(r"^step_(\d+)$")


class CheckpointError(SaenoError):
    """A missing, incomplete or incompatible SAE folder or checkpoint."""


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def _versions() -> dict[str, str]:
    from saeno import __version__

    return {"saeno": __version__, "torch": torch.__version__}


def save_sae(sae: SparseAutoencoder, path: str | Path,
             metadata: dict[str, Any] | None = None) -> Path:
    """Write ``cfg.json`` and ``sae_weights.safetensors`` into the folder ``path``.

    Parameters
    ----------
    sae : SparseAutoencoder
        Any saeno SAE; its ``hook``, ``model_fingerprint`` and ``metadata`` attributes are saved.
    path : str or Path
        Folder (created if needed).
    metadata : dict, optional
        JSON-able extra metadata, merged over ``sae.metadata``.

    Returns
    -------
    Path
        The folder.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    cfg = {
        **sae.config(),
        "hook": sae.hook,
        "model_fingerprint": sae.model_fingerprint,
        "normalization": {"mean": sae.norm_mean.tolist(), "scale": sae.norm_scale.tolist()},
        "versions": _versions(),
        "metadata": {**sae.metadata, **(metadata or {})},
    }
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in sae.state_dict().items()}
    tmp = path / (WEIGHTS_NAME + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, path / WEIGHTS_NAME)
    _write_json(path / CFG_NAME, cfg)
    return path


def latest_checkpoint(root: str | Path) -> Path | None:
    """The ``step_*`` folder with the highest step under ``root`` that holds a complete checkpoint."""
    root = Path(root)
    if not root.is_dir():
        return None
    best: tuple[int, Path] | None = None
    for child in root.iterdir():
        m = _STEP_RE.match(child.name)
        if m and (child / STATE_JSON).exists() and (child / WEIGHTS_NAME).exists():
            step = int(m.group(1))
            if best is None or step > best[0]:
                best = (step, child)
    return None if best is None else best[1]


def resolve_sae_path(path: str | Path) -> Path:
    """An SAE folder from ``path``: the folder itself, its ``checkpoints/`` or ``step_*`` latest."""
    path = Path(path)
    if (path / CFG_NAME).exists():
        return path
    for root in (path, path / "checkpoints"):
        found = latest_checkpoint(root)
        if found is not None:
            return found
    raise CheckpointError(f"{path} is not an SAE folder: it has no {CFG_NAME} (and no checkpoints). "
                          "Pass the folder written by saeno train / saeno.save_sae")


def load_sae(path: str | Path, device: str | torch.device | None = None) -> SparseAutoencoder:
    """Load any saeno SAE from a folder (an SAE folder, a checkpoint, or a checkpoint directory).

    Parameters
    ----------
    path : str or Path
        Folder with ``cfg.json`` and ``sae_weights.safetensors``; a directory of ``step_*``
        checkpoints (or one with a ``checkpoints/`` sub-folder) loads the latest.
    device : str or torch.device, optional
        Where to put the model.

    Returns
    -------
    SparseAutoencoder
        In ``eval()`` mode, with ``hook``, ``model_fingerprint`` and ``metadata`` set.
    """
    folder = resolve_sae_path(path)
    try:
        cfg = json.loads((folder / CFG_NAME).read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{folder / CFG_NAME} is not valid JSON ({exc})") from None
    if "architecture" not in cfg:
        raise CheckpointError(f"{folder / CFG_NAME} has no 'architecture' key")
    cls = registry.get(cfg["architecture"])
    sae = cls.from_config(cfg)
    weights = folder / WEIGHTS_NAME
    if not weights.exists():
        raise CheckpointError(f"{folder} has {CFG_NAME} but no {WEIGHTS_NAME}")
    state = load_file(str(weights))
    try:
        sae.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"weights in {weights} do not match its {CFG_NAME}: {exc}") from None
    sae.hook = cfg.get("hook")
    sae.model_fingerprint = cfg.get("model_fingerprint")
    sae.metadata = dict(cfg.get("metadata") or {})
    if device is not None:
        sae.to(device)
    return sae.eval()


# ------------------------------------------------------------------ trainer state
def _optimizer_to_files(opt: torch.optim.Optimizer) -> tuple[dict[str, Any], dict[str, Tensor]]:
    sd = opt.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for name, value in st.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{idx}.{name}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = value
    return {"param_groups": sd["param_groups"], "scalars": scalars}, tensors


def _optimizer_from_files(meta: dict[str, Any], tensors: dict[str, Tensor]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for idx, values in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(path: str | Path, sae: SparseAutoencoder, optimizer: torch.optim.Optimizer,
                    state: dict[str, Any], tensors: dict[str, Tensor] | None = None) -> Path:
    """Write an SAE folder plus the trainer state (JSON ``state``, ``tensors``, optimiser, RNG)."""
    path = save_sae(sae, path)
    opt_meta, opt_tensors = _optimizer_to_files(optimizer)
    all_tensors = {**{f"trainer.{k}": v.detach().to("cpu").contiguous()
                      for k, v in (tensors or {}).items()}, **opt_tensors}
    all_tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        all_tensors["rng.cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    save_file(all_tensors, str(path / STATE_TENSORS))
    _write_json(path / STATE_JSON, {"trainer": state, "optimizer": opt_meta})
    return path


def prune_checkpoints(root: str | Path, keep: int, newest: Path) -> None:
    """Delete ``root/step_*`` checkpoints but the ``keep`` most recent, ``newest`` among them
    (``keep <= 0``: keep all)."""
    if keep <= 0:
        return
    old = sorted(p for p in Path(root).glob("step_*") if p != newest)
    for p in old[:max(0, len(old) - keep + 1)]:
        shutil.rmtree(p, ignore_errors=True)


def load_trainer_state(path: str | Path) -> tuple[dict[str, Any], dict[str, Tensor],
                                                  dict[str, Any]]:
    """Read a checkpoint's trainer state and restore the RNG states.

    Returns
    -------
    state : dict
        The JSON trainer state given to :func:`save_checkpoint`.
    tensors : dict
        The trainer tensors given to :func:`save_checkpoint`.
    optimizer_state : dict
        A ``state_dict`` for ``optimizer.load_state_dict``.
    """
    path = Path(path)
    if not (path / STATE_JSON).exists():
        raise CheckpointError(f"{path} holds no trainer state ({STATE_JSON}): it is an SAE folder, "
                              "not a checkpoint; resume from a step_* folder")
    meta = json.loads((path / STATE_JSON).read_text())
    raw = load_file(str(path / STATE_TENSORS))
    torch.set_rng_state(raw["rng.torch"])
    if "rng.cuda" in raw and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(raw["rng.cuda"]))
    tensors = {k[len("trainer."):]: v for k, v in raw.items() if k.startswith("trainer.")}
    return meta["trainer"], tensors, _optimizer_from_files(meta["optimizer"], raw)
