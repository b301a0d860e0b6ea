"""Save and load operators without pickle: ``config.json`` + ``model.safetensors`` (+ ``record.json``).

neuraloperator's own ``save_checkpoint`` files (``{name}_state_dict.pt`` + ``{name}_metadata.pkl``) hold
pickles; they are read only when the caller passes ``trust=True``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from saeno.errors import DataFormatError, UntrustedFileError
from saeno.zoo.operator import ZooOperator

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
RECORD = "record.json"
_JSON_TYPES = (bool, int, float, str, type(None))


def _jsonable(value: Any) -> bool:
    if isinstance(value, _JSON_TYPES):
        return True
    if isinstance(value, (list, tuple)):
        return all(_jsonable(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _jsonable(v) for k, v in value.items())
    return False


def fno_kwargs(fno: nn.Module) -> dict[str, Any]:
    """The JSON-able constructor arguments of a neuraloperator model (from its ``_init_kwargs``).

    Arguments that are objects (the non-linearity, the convolution class) are left out: they must be
    neuraloperator's defaults to rebuild the model from the JSON config.
    """
    init = getattr(fno, "_init_kwargs", None)
    if init is None:
        raise DataFormatError(
            f"{type(fno).__name__} is not a neuraloperator model (no _init_kwargs); save a "
            "neuraloperator FNO or a saeno ZooOperator"
        )
    out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in init.items()
           if not k.startswith("_") and k != "args" and _jsonable(v)}
    out["model_class"] = type(fno).__name__
    return out


def build_fno(kwargs: dict[str, Any]) -> nn.Module:
    """Rebuild a neuraloperator model from :func:`fno_kwargs` output."""
    from neuralop.models.base_model import BaseModel

    kwargs = dict(kwargs)
    cls_name = kwargs.pop("model_class", "FNO")
    cls = BaseModel._models.get(cls_name.lower())
    if cls is None:
        raise DataFormatError(f"config names an unknown neuraloperator model class {cls_name!r}")
    kwargs["n_modes"] = tuple(kwargs["n_modes"])
    return cls(**kwargs)


def tensor_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The module's state dict without neuraloperator's ``_metadata`` entry, contiguous CPU copies."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()
            if isinstance(v, torch.Tensor)}


def save_model(model: nn.Module, folder: str | Path, config: dict[str, Any] | None = None) -> Path:
    """Write ``config.json``, ``model.safetensors`` and ``record.json`` to ``folder``.

    Parameters
    ----------
    model : torch.nn.Module
        A :class:`ZooOperator` or a bare neuraloperator FNO (saved as a ZooOperator with identity
        normalisation).
    folder : str or Path
        Target folder (created).
    config : dict, optional
        Extra config entries (name, dataset, ...); the FNO kwargs and normaliser are filled in.

    Returns
    -------
    Path
        The folder.
    """
    from safetensors.torch import save_file

    if not isinstance(model, ZooOperator):
        channels_in = fno_kwargs(model)["in_channels"]
        channels_out = fno_kwargs(model)["out_channels"]
        model = ZooOperator(model, channels_in, channels_out, config=config)
    cfg = dict(model.saeno_config)
    cfg.update(config or {})
    cfg["fno"] = fno_kwargs(model.fno)
    cfg["normalizer"] = model.normalizer()
    cfg.setdefault("format", "saeno-operator-1")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{WEIGHTS}.tmp{os.getpid()}"
    save_file(tensor_state(model), str(tmp), metadata={"format": "saeno-operator-1"})
    os.replace(tmp, folder / WEIGHTS)
    cfg[WEIGHTS_DIGEST_KEY] = weights_digest(folder / WEIGHTS)
    _write_text(folder / RECORD, json.dumps(model.saeno_record, indent=2))
    _write_text(folder / CONFIG, json.dumps(cfg, indent=2))  # last: names the weights it describes
    return folder


def load_folder(folder: str | Path, device: str | torch.device | None = None) -> ZooOperator:
    """Load a folder written by :func:`save_model` (no pickle)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    missing = [f for f in (CONFIG, WEIGHTS) if not (folder / f).is_file()]
    if missing:
        raise DataFormatError(f"{folder}: expected {CONFIG} and {WEIGHTS}; missing {missing}")
    cfg = read_json(folder / CONFIG)
    if not isinstance(cfg.get("fno"), dict):
        raise DataFormatError(f"{folder / CONFIG}: no 'fno' entry with the model's constructor arguments")
    record = read_json(folder / RECORD) if (folder / RECORD).is_file() else {}
    check_weights(folder / WEIGHTS, cfg.pop(WEIGHTS_DIGEST_KEY, None), folder / CONFIG)
    fno = checked_build(cfg["fno"], folder / CONFIG)
    norm = cfg.get("normalizer", {})
    model = ZooOperator(fno, cfg["fno"]["in_channels"], cfg["fno"]["out_channels"], config=cfg, record=record,
                        **{k: norm.get(k) for k in ("x_mean", "x_std", "y_mean", "y_std")})
    try:
        state = load_file(str(folder / WEIGHTS))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise DataFormatError(f"{folder / WEIGHTS} is not a readable safetensors file (damaged or "
                              f"truncated: {exc})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise DataFormatError(f"{folder}: weights do not match the config's model ({exc})") from exc
    return model.to(device) if device is not None else model


def find_checkpoint(path: Path) -> tuple[Path, str] | None:
    """``(folder, name)`` of neuraloperator ``save_checkpoint`` files at ``path``, if any."""
    if path.is_file() and path.name.endswith("_state_dict.pt"):
        return path.parent, path.name[: -len("_state_dict.pt")]
    if path.is_file() and path.name.endswith("_metadata.pkl"):
        return path.parent, path.name[: -len("_metadata.pkl")]
    if path.is_dir():
        found = sorted(path.glob("*_state_dict.pt"))
        if found:
            return path, found[0].name[: -len("_state_dict.pt")]
    return None


def load_neuralop_checkpoint(
    folder: Path, name: str, trust: bool = False, device: str | torch.device | None = None
) -> ZooOperator:
    """Load neuraloperator ``save_checkpoint`` files (pickle: only with ``trust=True``)."""
    if not trust:
        raise UntrustedFileError(
            f"{folder}/{name}_metadata.pkl and {name}_state_dict.pt are neuraloperator checkpoints, which are "
            "Python pickles: loading them can run arbitrary code. If you trust their source, pass trust=True "
            "(CLI: --trust); or re-save the model with saeno.zoo.save_model(model, folder) to get a "
            "pickle-free config.json + model.safetensors."
        )
    from neuralop.models.base_model import BaseModel

    meta = torch.load(folder / f"{name}_metadata.pkl", map_location="cpu", weights_only=False)
    cls = BaseModel._models.get(str(meta.get("_name", "FNO")).lower())
    if cls is None:
        raise DataFormatError(f"{folder}: checkpoint of unknown model class {meta.get('_name')!r}")
    fno = cls.from_checkpoint(folder, name, map_location="cpu")
    kwargs = fno_kwargs(fno)
    cfg = {"name": name, "source": str(folder), "fno": kwargs}
    model = ZooOperator(fno, kwargs["in_channels"], kwargs["out_channels"], config=cfg)
    return model.to(device) if device is not None else model


# ---------------------------------------------------------------- validation of the files on disk
WEIGHTS_DIGEST_KEY = "weights_digest"


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; :class:`DataFormatError` naming the file when it is not one."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path} is not valid JSON (damaged or truncated: {exc}); restore it "
                              "or train the model again") from None
    if not isinstance(obj, dict):
        raise DataFormatError(f"{path} does not hold a JSON object")
    return obj


def weights_digest(path: Path) -> dict[str, Any]:
    """``{"sha256", "bytes"}`` of a weights file (recorded in ``config.json``)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return {"sha256": h.hexdigest(), "bytes": path.stat().st_size}


def check_weights(path: Path, recorded: Any, config: Path) -> None:
    """Refuse weights whose size or SHA-256 differs from ``config.json`` (folders that record it)."""
    if not isinstance(recorded, dict):
        return
    now = weights_digest(path)
    if now != {"sha256": recorded.get("sha256"), "bytes": recorded.get("bytes")}:
        raise DataFormatError(f"{path} is damaged or was replaced: its size or SHA-256 differs from "
                              f"the one recorded in {config}; restore the file or train the model again")


def checked_build(kwargs: dict[str, Any], config: Path) -> nn.Module:
    """:func:`build_fno`, with arguments the model class does not take reported against ``config``."""
    try:
        return build_fno(kwargs)
    except DataFormatError:
        raise
    except (TypeError, KeyError, ValueError) as exc:
        raise DataFormatError(f"{config}: the 'fno' entry does not build a model ({type(exc).__name__}: "
                              f"{exc}); the file is damaged or was edited") from None
