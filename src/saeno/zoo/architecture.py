"""Architectures of neuraloperator models as JSON: read them from a model, build a model from them.

An architecture is a neuraloperator class and its constructor's keyword arguments,
``{"model_class": "UNO", "in_channels": 1, ...}``. Arguments that are models themselves (a UQNO's
``base_model`` and ``residual_model``) are nested architectures. Every family saeno has a hook preset for
(FNO, TFNO, SFNO, UNO, UQNO, CODANO, FNOGNO, GINO) is built by :func:`build_architecture`; the model files
that carry an architecture are read in :mod:`saeno.zoo.io`.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

from torch import nn

from saeno.errors import DataFormatError

_JSON_TYPES = (bool, int, float, str, type(None))
#: constructor arguments that are models themselves (UQNO), nested as architectures
_SUBMODEL_KWARGS = ("base_model", "residual_model")
ARCH_HINT = (
    "Give the architecture with model_config= (CLI --model-config): a JSON/YAML file or string with the "
    'neuraloperator class and its keyword arguments, e.g. \'{"model_class": "FNO", "n_modes": [16, 16], '
    '"in_channels": 1, "out_channels": 1, "hidden_channels": 32, "n_layers": 4}\', or a neuraloperator '
    "training config with a 'model' section"
)


def _jsonable(value: Any) -> bool:
    if isinstance(value, _JSON_TYPES):
        return True
    if isinstance(value, (list, tuple)):
        return all(_jsonable(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _jsonable(v) for k, v in value.items())
    return False


def _listed(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_listed(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _listed(v) for k, v in value.items()}
    return value


def fno_kwargs(fno: nn.Module) -> dict[str, Any]:
    """The JSON-able constructor arguments of a neuraloperator model (from its ``_init_kwargs``).

    Arguments that are objects (the non-linearity, the convolution class) are left out: they must be
    neuraloperator's defaults to rebuild the model from the JSON config. Arguments that are
    neuraloperator models (a UQNO's ``base_model``, passed positionally or by keyword) are nested
    architectures. A UNO's ``horizontal_skips_map`` keeps its keys as strings (JSON).
    """
    init = getattr(fno, "_init_kwargs", None)
    if init is None:
        raise DataFormatError(
            f"{type(fno).__name__} is not a neuraloperator model (no _init_kwargs); save a "
            "neuraloperator FNO or a saeno ZooOperator"
        )
    out: dict[str, Any] = {}
    for k, v in init.items():
        if k.startswith("_") or k == "args":
            continue
        if isinstance(v, nn.Module) and getattr(v, "_init_kwargs", None) is not None:
            out[k] = fno_kwargs(v)
        elif _jsonable(v) or (isinstance(v, dict) and all(isinstance(x, int) for x in v)):
            out[k] = _listed(v)
    for name, module in zip(_SUBMODEL_KWARGS, init.get("args", ()) or ()):  # UQNO(base_model, ...)
        if isinstance(module, nn.Module) and name not in out:
            out[name] = fno_kwargs(module)
    for name in _SUBMODEL_KWARGS:  # given positionally, or None in the kwargs: the module itself counts
        module = getattr(fno, name, None)
        if isinstance(module, nn.Module) and not isinstance(out.get(name), dict):
            if name == "residual_model" and module is getattr(fno, "base_model", None):
                continue
            if getattr(module, "_init_kwargs", None) is not None:
                out[name] = fno_kwargs(module)
    out["model_class"] = type(fno).__name__
    return out


def model_channels(model: nn.Module) -> tuple[int, int]:
    """``(in_channels, out_channels)`` of a neuraloperator model (a UQNO's are its base model's)."""
    for candidate in (model, getattr(model, "base_model", None)):
        if candidate is None:
            continue
        init = getattr(candidate, "_init_kwargs", None) or {}
        cin = init.get("in_channels", getattr(candidate, "in_channels", None))
        cout = init.get("out_channels", getattr(candidate, "out_channels", None))
        if isinstance(cin, int) and isinstance(cout, int):
            return cin, cout
    raise DataFormatError(
        f"{type(model).__name__} has no integer in_channels/out_channels (nor a base_model with them): "
        "saeno cannot tell its input and output channels"
    )


def read_model_config(model_config: Any) -> dict[str, Any]:
    """The architecture as a dict: from a dict, a JSON string, or a ``.json`` / ``.yaml`` file."""
    if isinstance(model_config, dict):
        return dict(model_config)
    text = str(model_config)
    path = Path(text)
    if text.lstrip().startswith("{"):
        source, body = "model_config", text
    elif path.is_file():
        source, body = str(path), path.read_text(encoding="utf-8")
    else:
        raise DataFormatError(
            f"model_config {text!r} is neither a JSON object nor an existing file. " + ARCH_HINT
        )
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            cfg = yaml.safe_load(body)
        else:
            cfg = json.loads(body)
    except Exception as exc:
        raise DataFormatError(f"{source}: not valid JSON/YAML ({exc})") from exc
    if not isinstance(cfg, dict):
        raise DataFormatError(
            f"{source}: expected an object with the model's class and arguments. " + ARCH_HINT
        )
    return cfg


def model_class(name: str, source: str = "model_config") -> type:
    """The neuraloperator model class called ``name`` (case-insensitive)."""
    import neuralop.models as models
    from neuralop.models.base_model import BaseModel

    cls = getattr(models, name, None)
    if not isinstance(cls, type):
        cls = BaseModel._models.get(name.lower())
    if cls is None:
        raise DataFormatError(
            f"{source}: neuraloperator has no model class {name!r}; known: {sorted(BaseModel._models)}"
        )
    return cls


def build_neuralop(cfg: dict[str, Any], source: str = "model_config") -> nn.Module:
    """An untrained neuraloperator model from ``{"model_class": ..., **constructor arguments}``.

    Nested architectures of ``base_model`` / ``residual_model`` are built first (UQNO); list-valued
    ``n_modes`` become tuples, and a UNO's ``horizontal_skips_map`` gets integer keys back.

    Raises
    ------
    DataFormatError
        No or an unknown class, or arguments the class refuses (named with ``source``).
    """
    cfg = dict(cfg)
    name = str(cfg.pop("model_class", None) or cfg.pop("model_arch", None) or cfg.pop("arch", None) or "")
    if not name:
        raise DataFormatError(f"{source} names no model class ('model_class': 'FNO' ...). " + ARCH_HINT)
    cls = model_class(name, source)
    for key in _SUBMODEL_KWARGS:
        if isinstance(cfg.get(key), dict):
            cfg[key] = build_neuralop(cfg[key], f"{source} {key}")
    if isinstance(cfg.get("n_modes"), list) and all(isinstance(m, int) for m in cfg["n_modes"]):
        cfg["n_modes"] = tuple(cfg["n_modes"])
    if isinstance(cfg.get("horizontal_skips_map"), dict):  # JSON keys are strings
        try:
            cfg["horizontal_skips_map"] = {int(k): int(v) for k, v in cfg["horizontal_skips_map"].items()}
        except (TypeError, ValueError) as exc:
            raise DataFormatError(
                f"{source}: horizontal_skips_map must map layers to layers ({exc})"
            ) from exc
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # some families print their options
            return cls(**cfg)
    except (TypeError, ValueError, AssertionError, KeyError) as exc:
        raise DataFormatError(
            f"{source}: {cls.__name__} does not accept these arguments ({type(exc).__name__}: {exc})"
        ) from exc


def build_architecture(model_config: Any) -> nn.Module:
    """An untrained neuraloperator model from a :func:`read_model_config` architecture.

    Takes ``{"model_class": ..., ...}``, saeno's own ``config.json`` (its ``fno`` entry) or a
    neuraloperator training config (its ``model`` section, ``model_arch`` and ``data_channels``).
    """
    cfg = read_model_config(model_config)
    if isinstance(cfg.get("fno"), dict):  # saeno's own config.json
        cfg = cfg["fno"]
    if isinstance(cfg.get("model"), dict):  # a neuraloperator training config
        cfg = dict(cfg["model"])
        if "data_channels" in cfg:
            cfg["in_channels"] = cfg.pop("data_channels")
    return build_neuralop(cfg)


def build_fno(kwargs: dict[str, Any]) -> nn.Module:
    """Rebuild a neuraloperator model from :func:`fno_kwargs` output (``model_class`` defaults to FNO)."""
    return build_neuralop({"model_class": "FNO", **kwargs}, "config")


def checked_build(kwargs: dict[str, Any], config: Path) -> nn.Module:
    """:func:`build_fno`, with arguments the model class does not take reported against ``config``."""
    try:
        return build_fno(kwargs)
    except DataFormatError as exc:
        raise DataFormatError(
            f"{config}: the 'fno' entry does not build a model ({exc}); the file is damaged or was edited"
        ) from None
