"""Save and load operators without pickle: ``config.json`` + ``model.safetensors`` (+ ``record.json``).

Users' own files are read too (:func:`load_user_file`):

- neuraloperator's ``save_checkpoint`` files (``{name}_state_dict.pt`` + ``{name}_metadata.pkl``): pickles,
  read only with ``trust=True``;
- a plain ``state_dict`` (``torch.save(model.state_dict())``, ``.pt`` or ``.safetensors``, also under a
  ``"state_dict"`` / ``"model"`` key) plus the architecture, given as ``model_config``: a neuraloperator
  class and its keyword arguments (``{"model_class": "FNO", "n_modes": [16, 16], ...}``), a neuraloperator
  training config (``{"model": {"model_arch": "fno", "data_channels": 1, ...}}``), or saeno's own
  ``config.json``; as a dict, a JSON string, or a ``.json`` / ``.yaml`` file;
- a whole module saved with ``torch.save(model)``: a pickle, read only with ``trust=True``.

A refused file is named exactly as what it is (:func:`describe_torch_file` reads the pickle's opcodes
without running them).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from saeno.errors import DataFormatError, UntrustedFileError
from saeno.zoo.architecture import (
    ARCH_HINT,
    build_architecture,
    build_fno,
    checked_build,
    fno_kwargs,
    model_channels,
    read_model_config,
)
from saeno.zoo.operator import ZooOperator

__all__ = [
    "build_architecture",
    "build_fno",
    "checked_build",
    "fno_kwargs",
    "read_model_config",
    "save_model",
    "load_folder",
    "load_neuralop_checkpoint",
    "load_user_file",
]

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
RECORD = "record.json"


def tensor_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The module's state dict without neuraloperator's ``_metadata`` entry, contiguous CPU copies."""
    return {
        k: v.detach().cpu().contiguous().clone()
        for k, v in module.state_dict().items()
        if isinstance(v, torch.Tensor)
    }


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
        channels_in, channels_out = model_channels(model)
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
    model = ZooOperator(
        fno,
        cfg["fno"]["in_channels"],
        cfg["fno"]["out_channels"],
        config=cfg,
        record=record,
        **{k: norm.get(k) for k in ("x_mean", "x_std", "y_mean", "y_std")},
    )
    try:
        state = load_file(str(folder / WEIGHTS))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise DataFormatError(
            f"{folder / WEIGHTS} is not a readable safetensors file (damaged or truncated: {exc})"
        ) from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise DataFormatError(f"{folder}: weights do not match the config's model ({exc})") from exc
    return model.to(device) if device is not None else model


def find_checkpoint(path: Path) -> tuple[Path, str] | None:
    """``(folder, name)`` of neuraloperator ``save_checkpoint`` files at ``path`` (both files present), if any."""

    def both(folder: Path, name: str) -> tuple[Path, str] | None:
        ok = (folder / f"{name}_state_dict.pt").is_file() and (folder / f"{name}_metadata.pkl").is_file()
        return (folder, name) if ok else None

    if path.is_file() and path.name.endswith("_state_dict.pt"):
        return both(path.parent, path.name[: -len("_state_dict.pt")])
    if path.is_file() and path.name.endswith("_metadata.pkl"):
        return both(path.parent, path.name[: -len("_metadata.pkl")])
    if path.is_dir():
        for found in sorted(path.glob("*_state_dict.pt")):
            hit = both(path, found.name[: -len("_state_dict.pt")])
            if hit:
                return hit
    return None


#: families whose forward returns something a ZooOperator cannot normalise (a UQNO: the solution and its
#: quantile): their checkpoints load as the bare neuraloperator model
BARE_FAMILIES = ("UQNO",)


def load_neuralop_checkpoint(
    folder: Path, name: str, trust: bool = False, device: str | torch.device | None = None
) -> nn.Module:
    """Load neuraloperator ``save_checkpoint`` files (pickle: only with ``trust=True``).

    Returns a :class:`ZooOperator` around the model (identity normalisation), or the bare model for the
    families of :data:`BARE_FAMILIES`, with its ``saeno_config`` set.
    """
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
    cfg = {"name": name, "source": str(folder), "fno": fno_kwargs(fno)}
    if type(fno).__name__ in BARE_FAMILIES:
        fno.saeno_config = cfg
        return fno.to(device) if device is not None else fno
    channels_in, channels_out = model_channels(fno)
    model = ZooOperator(fno, channels_in, channels_out, config=cfg)
    return model.to(device) if device is not None else model


# ---------------------------------------------------------------------------------------------------------
# users' own model files

# the ``--model-config`` of the CLI verb being run (set and reset by ``saeno.cli.main``), used by
# :func:`saeno.zoo.load_model` when no ``model_config`` is passed, so that every verb taking ``--model`` gets it
CLI_MODEL_CONFIG: Any = None
_STATE_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")


def _pickle_globals(path: Path) -> tuple[str | None, list[str]]:
    """The top-level opcode kind and the classes a torch pickle names, read without unpickling."""
    import pickletools
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                name = next((n for n in z.namelist() if n.endswith("data.pkl")), None)
                if name is None:
                    return None, []
                data = z.read(name)
        else:
            data = path.read_bytes()
        strings: list[str] = []
        found: list[str] = []
        top = None
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("PROTO", "FRAME"):
                continue
            if top is None:
                top = op.name
            if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
                strings.append(str(arg))
            elif op.name == "GLOBAL":
                found.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
        return top, found
    except Exception:  # noqa: BLE001 - not a pickle we can read: say nothing more
        return None, []


class _Stub:
    """Stands in for every class or function a pickle names outside torch's tensor allow-list: it accepts
    any arguments and state and does nothing, so that loading runs no code from the file."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Stub:  # noqa: PYI034
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Stub:
        return _Stub()


def _stub_pickle_module() -> Any:
    """A ``pickle_module`` for ``torch.load`` whose unpickler resolves only torch's weights-only allow-list
    (tensors, storages, dtypes, OrderedDict) and replaces everything else by :class:`_Stub`."""
    import pickle
    import types

    from torch._weights_only_unpickler import _get_allowed_globals

    allowed = _get_allowed_globals()

    class StubUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            obj = allowed.get(f"{module}.{name}")
            return obj if obj is not None else _Stub

    mod = types.ModuleType("saeno_stub_pickle")
    mod.Unpickler = StubUnpickler  # type: ignore[attr-defined]
    mod.load = pickle.load  # type: ignore[attr-defined]
    mod.__name__ = "saeno_stub_pickle"
    return mod


def load_tensors_only(path: str | Path) -> Any:
    """``torch.load`` of a pickle with objects, running none of them: tensors load, other objects are stubs.

    This reads the tensors of a checkpoint that also pickles Python objects (neuraloperator's state dicts
    carry a ``_metadata`` entry of constructor arguments) without trusting the file.
    """
    return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_stub_pickle_module())


def describe_torch_file(path: str | Path) -> str:
    """What a model file is, read without running any pickle: one of ``"safetensors"``, ``"state_dict"``,
    ``"data"`` (a dict of ``x``/``y`` arrays), ``"module:<class>"`` (``torch.save(model)``),
    ``"pickled-dict"`` (a dict holding Python objects), ``"unknown"``."""
    import pickle

    path = Path(path)
    if path.suffix == ".safetensors":
        return "safetensors"
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError:
        top, found = _pickle_globals(path)
        if (
            top in ("GLOBAL", "STACK_GLOBAL")
            and found
            and not found[0].startswith(("collections.", "builtins."))
        ):
            return f"module:{found[0]}"  # the top-level object is an instance of a class: torch.save(model)
        try:
            obj = load_tensors_only(path)
        except Exception:  # noqa: BLE001 - not loadable even with stubs
            return "pickled-dict"
        return "state_dict" if _state_dict_of(obj) is not None else "pickled-dict"
    except Exception:  # noqa: BLE001 - damaged or not a torch file
        return "unknown"
    if isinstance(obj, dict):
        if "x" in obj and "y" in obj and not any("." in str(k) for k in obj):
            return "data"
        if _state_dict_of(obj) is not None:
            return "state_dict"
    return "unknown"


def _state_dict_of(obj: Any) -> dict[str, torch.Tensor] | None:
    """The tensors of a state dict, possibly nested under a usual key; ``None`` when it is not one."""
    if not isinstance(obj, dict):
        return None
    for key in _STATE_KEYS:
        if isinstance(obj.get(key), dict):
            inner = _state_dict_of(obj[key])
            if inner is not None:
                return inner
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    rest = [k for k, v in obj.items() if not isinstance(v, torch.Tensor) and not str(k).startswith("_")]
    if not tensors or rest:
        return None
    if all(k.startswith("module.") for k in tensors):  # saved from DistributedDataParallel
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    return tensors


def read_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a state-dict file (``.safetensors``, or a ``.pt`` read without running its pickle)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise DataFormatError(f"{path}: not a readable safetensors file ({exc})") from exc
    obj = load_tensors_only(path)
    state = _state_dict_of(obj)
    if state is None:
        raise DataFormatError(f"{path}: expected a state dict (names -> tensors), found {type(obj).__name__}")
    return state


def load_user_file(
    path: str | Path, model_config: Any = None, trust: bool = False, device: str | torch.device | None = None
) -> nn.Module:
    """Load a user's model file: a state dict plus ``model_config``, or (with ``trust``) a whole module.

    Parameters
    ----------
    path : str or Path
        A ``.pt``/``.pth``/``.ckpt``/``.safetensors`` file.
    model_config : dict, str or Path, optional
        The architecture for a state dict (see :func:`build_architecture`).
    trust : bool
        Allow unpickling a whole-module file (it can run arbitrary code: only files you trust).
    device : str or torch.device, optional
        Where to put the model.

    Returns
    -------
    torch.nn.Module
        The model in eval mode.

    Raises
    ------
    UntrustedFileError, DataFormatError
        Naming what the file is and what to pass.
    """
    path = Path(path)
    kind = describe_torch_file(path)
    if kind in ("state_dict", "safetensors"):
        if model_config is None:
            raise DataFormatError(
                f"{path} is a plain state dict (weights only, no architecture), so the model cannot be built "
                "from it alone. " + ARCH_HINT
            )
        model = build_architecture(model_config)
        state = read_state(path)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise DataFormatError(
                f"{path}: the weights do not match the architecture given in model_config ({exc})"
            ) from exc
    elif kind.startswith("module:") or (kind == "pickled-dict" and trust):
        what = (
            f"a whole module saved with torch.save(model) (class {kind.split(':', 1)[1]})"
            if kind.startswith("module:")
            else "a pickled checkpoint holding Python objects"
        )
        if not trust:
            raise UntrustedFileError(
                f"{path} is {what}, a Python pickle: loading it can run arbitrary code. If you trust its "
                "source, pass trust=True (CLI --trust); or save model.state_dict() and give the architecture "
                "with model_config= (CLI --model-config)."
            )
        obj = torch.load(path, map_location="cpu", weights_only=False)
        if isinstance(obj, nn.Module):
            model = obj
        else:
            state = _state_dict_of(obj)
            if state is None or model_config is None:
                raise DataFormatError(
                    f"{path}: {what} that is not a module; it holds "
                    f"{sorted(map(str, obj))[:8] if isinstance(obj, dict) else type(obj).__name__}. "
                    + ARCH_HINT
                )
            model = build_architecture(model_config)
            model.load_state_dict(state, strict=True)
    elif kind == "pickled-dict":
        raise UntrustedFileError(
            f"{path} is a pickled checkpoint holding Python objects beyond tensors: loading it can run arbitrary "
            "code. If you trust it, pass trust=True (CLI --trust), with model_config= (CLI --model-config) "
            "when it holds a state dict."
        )
    elif kind == "data":
        raise DataFormatError(
            f"{path} is a data file (a dict with 'x' and 'y' arrays), not a model; pass it "
            "as the dataset (CLI --dataset)"
        )
    else:
        raise DataFormatError(
            f"{path}: not a model file saeno can read (not a torch file of a state dict or a "
            "module, nor safetensors)"
        )
    return (model.to(device) if device is not None else model).eval()


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
        raise DataFormatError(
            f"{path} is not valid JSON (damaged or truncated: {exc}); restore it or train the model again"
        ) from None
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
        raise DataFormatError(
            f"{path} is damaged or was replaced: its size or SHA-256 differs from "
            f"the one recorded in {config}; restore the file or train the model again"
        )
