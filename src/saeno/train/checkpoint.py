"""Saving and loading SAEs and training checkpoints, without pickle.

An SAE folder holds ``cfg.json`` (architecture and constructor arguments, hook, the activation store's
model fingerprint, normalisation, versions, metadata) and ``sae_weights.safetensors`` (parameters and
buffers, normalisation included). A checkpoint folder is an SAE folder plus ``trainer_state.json``
(step, data position, optimiser hyper-parameters, ...) and ``trainer_state.safetensors`` (optimiser
state tensors, RNG states, dead-concept counters). Checkpoints live in ``<dir>/step_<NNNNNNNN>/``.

Crash safety: every file is written under a temporary name, flushed to disk (fsync) and renamed;
``cfg.json`` records the SHA-256 and size of ``sae_weights.safetensors`` and ``trainer_state.json``
those of ``trainer_state.safetensors``, so damaged or mismatched weights are detected on load. A
checkpoint folder is written whole under a hidden temporary name and renamed into place, so a
``step_*`` folder is always complete; resuming takes the newest intact checkpoint and warns about
any newer one that is damaged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
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
_TMP_PREFIX = ".tmp-"
log = logging.getLogger(__name__)


class CheckpointError(SaenoError):
    """A missing, incomplete or incompatible SAE folder or checkpoint."""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` then fsync and rename ``tmp`` to ``path`` (a kill leaves the old or new file)."""
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _write_json(path: Path, obj: Any) -> None:
    _atomic(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n"))


def file_digest(path: Path) -> dict[str, Any]:
    """``{"sha256", "bytes"}`` of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return {"sha256": h.hexdigest(), "bytes": path.stat().st_size}


def _check_digest(path: Path, recorded: Any, owner: Path) -> None:
    if not isinstance(recorded, dict):
        return  # written before digests were recorded
    if not path.exists():
        raise CheckpointError(f"{path} is missing (named in {owner})")
    if path.stat().st_size != recorded.get("bytes") or file_digest(path)["sha256"] != recorded.get("sha256"):
        raise CheckpointError(
            f"{path} is damaged or was replaced: its size or SHA-256 differs from "
            f"the one recorded in {owner}; use an intact copy or train again"
        )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON (damaged or truncated: {exc})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} does not hold a JSON object")
    return obj


def _load_tensors(path: Path) -> dict[str, Tensor]:
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path} is not a readable safetensors file (damaged or truncated: {exc})"
        ) from None


def _versions() -> dict[str, str]:
    from saeno import __version__

    return {"saeno": __version__, "torch": torch.__version__}


def save_sae(sae: SparseAutoencoder, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
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
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in sae.state_dict().items()}
    weights = path / WEIGHTS_NAME
    _atomic(weights, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
    cfg = {
        **sae.config(),
        "hook": sae.hook,
        "model_fingerprint": sae.model_fingerprint,
        "normalization": {"mean": sae.norm_mean.tolist(), "scale": sae.norm_scale.tolist()},
        "versions": _versions(),
        "metadata": {**sae.metadata, **(metadata or {})},
        "weights": file_digest(weights),
    }
    _write_json(path / CFG_NAME, cfg)
    return path


def checkpoint_problem(path: Path, need_state: bool = True) -> str | None:
    """Why the checkpoint folder ``path`` cannot be resumed from (``need_state=False``: loaded as an
    SAE), or None when it is intact."""
    try:
        cfg = _read_json(path / CFG_NAME)
        _check_digest(path / WEIGHTS_NAME, cfg.get("weights"), path / CFG_NAME)
        if not (path / WEIGHTS_NAME).exists():
            raise CheckpointError(f"{path / WEIGHTS_NAME} is missing")
        if not need_state:
            return None
        state = _read_json(path / STATE_JSON)
        if not (path / STATE_TENSORS).exists():
            raise CheckpointError(f"{path / STATE_TENSORS} is missing")
        _check_digest(path / STATE_TENSORS, state.get("tensors"), path / STATE_JSON)
        if "trainer" not in state or "optimizer" not in state:
            raise CheckpointError(f"{path / STATE_JSON} lacks the trainer or optimizer state")
    except CheckpointError as exc:
        return str(exc)
    return None


def latest_checkpoint(root: str | Path, need_state: bool = True) -> Path | None:
    """The newest intact ``step_*`` checkpoint under ``root`` (a warning for newer damaged ones);
    ``need_state=False`` asks only for an intact SAE (weights and ``cfg.json``)."""
    root = Path(root)
    if not root.is_dir():
        return None
    found = sorted(
        (
            (int(m.group(1)), child)
            for child in root.iterdir()
            if (m := _STEP_RE.match(child.name)) and child.is_dir()
        ),
        reverse=True,
    )
    for _, child in found:
        problem = checkpoint_problem(child, need_state)
        if problem is None:
            return child
        log.warning("skipping the damaged checkpoint %s (%s); trying an older one", child, problem)
    return None


def resolve_sae_path(path: str | Path) -> Path:
    """An SAE folder from ``path``: the folder itself, its ``checkpoints/`` or ``step_*`` latest."""
    path = Path(path)
    if (path / CFG_NAME).exists():
        return path
    for root in (path, path / "checkpoints"):
        found = latest_checkpoint(root, need_state=False)
        if found is not None:
            return found
    raise CheckpointError(
        f"{path} is not an SAE folder: it has no {CFG_NAME} (and no checkpoints). "
        "Pass the folder written by saeno train / saeno.save_sae"
    )


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
    cfg = _read_json(folder / CFG_NAME)
    if "architecture" not in cfg:
        raise CheckpointError(f"{folder / CFG_NAME} has no 'architecture' key")
    cls = registry.get(cfg["architecture"])
    try:
        sae = cls.from_config({k: v for k, v in cfg.items() if k != "weights"})
    except SaenoError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{folder / CFG_NAME} does not describe a {cfg['architecture']} SAE "
            f"({type(exc).__name__}: {exc}); it is damaged or was edited"
        ) from None
    weights = folder / WEIGHTS_NAME
    if not weights.exists():
        raise CheckpointError(f"{folder} has {CFG_NAME} but no {WEIGHTS_NAME}")
    _check_digest(weights, cfg.get("weights"), folder / CFG_NAME)
    state = _load_tensors(weights)
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


def save_checkpoint(
    path: str | Path,
    sae: SparseAutoencoder,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    tensors: dict[str, Tensor] | None = None,
) -> Path:
    """Write an SAE folder plus the trainer state (JSON ``state``, ``tensors``, optimiser, RNG).

    The folder is written whole under a hidden temporary name and renamed to ``path`` (replacing a
    checkpoint of the same step), so a kill never leaves a partial ``step_*`` folder.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f"{_TMP_PREFIX}*"):  # left by a killed write
        shutil.rmtree(stale, ignore_errors=True)
    tmp = final.parent / f"{_TMP_PREFIX}{final.name}.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    path = save_sae(sae, tmp)
    opt_meta, opt_tensors = _optimizer_to_files(optimizer)
    all_tensors = {
        **{f"trainer.{k}": v.detach().to("cpu").contiguous() for k, v in (tensors or {}).items()},
        **opt_tensors,
    }
    all_tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        all_tensors["rng.cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    _atomic(path / STATE_TENSORS, lambda t: save_file(all_tensors, str(t)))
    _write_json(
        path / STATE_JSON,
        {"trainer": state, "optimizer": opt_meta, "tensors": file_digest(path / STATE_TENSORS)},
    )
    old = final.parent / f"{_TMP_PREFIX}old-{final.name}.{os.getpid()}"
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)
    return final


def prune_checkpoints(root: str | Path, keep: int, newest: Path) -> None:
    """Delete ``root/step_*`` checkpoints but the ``keep`` most recent, ``newest`` among them
    (``keep <= 0``: keep all)."""
    if keep <= 0:
        return
    old = sorted(p for p in Path(root).glob("step_*") if p != newest)
    for p in old[: max(0, len(old) - keep + 1)]:
        shutil.rmtree(p, ignore_errors=True)


def load_trainer_state(path: str | Path) -> tuple[dict[str, Any], dict[str, Tensor], dict[str, Any]]:
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
        raise CheckpointError(
            f"{path} holds no trainer state ({STATE_JSON}): it is an SAE folder, "
            "not a checkpoint; resume from a step_* folder"
        )
    problem = checkpoint_problem(path)
    if problem is not None:
        raise CheckpointError(f"cannot resume from {path}: {problem}")
    meta = _read_json(path / STATE_JSON)
    raw = _load_tensors(path / STATE_TENSORS)
    torch.set_rng_state(raw["rng.torch"])
    if "rng.cuda" in raw and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(raw["rng.cuda"]))
    tensors = {k[len("trainer.") :]: v for k, v in raw.items() if k.startswith("trainer.")}
    return meta["trainer"], tensors, _optimizer_from_files(meta["optimizer"], raw)
