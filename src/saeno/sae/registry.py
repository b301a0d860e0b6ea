"""Architecture name (``cfg.json["architecture"]``) -> model class, for loading saved SAEs.

Built-in names map to ``"module:Class"`` strings imported on demand; other modules (e.g. the supervised
SAE) may call :func:`register` or be listed in ``_BUILTIN``.
"""

from __future__ import annotations

import importlib

from saeno.errors import SaenoError

_BUILTIN: dict[str, str] = {
    "sae": "saeno.sae.pointwise:SAE",
    "flat": "saeno.sae.flat:FlatSAE",
    "sae-fno": "saeno.sae.sae_fno:SAEFNO",
    "sae-cnn": "saeno.sae.conv:ConvSAE",
    "supervised": "saeno.sae.supervised:SupervisedSAE",
}
_REGISTERED: dict[str, type] = {}


class UnknownArchitectureError(SaenoError, KeyError):
    """A ``cfg.json`` naming an architecture saeno does not know."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def register(cls: type) -> type:
    """Register a :class:`~saeno.sae.base.SparseAutoencoder` subclass under ``cls.architecture``."""
    _REGISTERED[cls.architecture] = cls
    return cls


def names() -> list[str]:
    """Known architecture names."""
    return sorted(set(_BUILTIN) | set(_REGISTERED))


def get(name: str) -> type:
    """The class for architecture ``name``."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in _BUILTIN:
        raise UnknownArchitectureError(f"unknown SAE architecture {name!r}: saeno knows {names()}")
    module, cls = _BUILTIN[name].split(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as exc:
        raise UnknownArchitectureError(
            f"architecture {name!r} is not available in this saeno install ({exc})"
        ) from None
