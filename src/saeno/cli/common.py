"""Helpers shared by the CLI verbs: resolving models and printing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def load_any_model(name_or_path: str, trust: bool = False) -> Any:
    """A built-in example model (``example-fno2d`` ...), or whatever ``saeno.zoo.load_model`` resolves.

    Parameters
    ----------
    name_or_path
        An example name, a zoo name, a model folder, or a neuraloperator checkpoint.
    trust
        Allow unpickling a neuraloperator checkpoint (only for files you trust).
    """
    from saeno.errors import SaenoError
    from saeno.hooking.examples import example_model, example_names

    if name_or_path in example_names():
        return example_model(name_or_path)
    try:
        from saeno.zoo import load_model
    except ImportError as exc:  # pragma: no cover - the zoo ships with the package
        raise SaenoError(
            f"cannot load {name_or_path!r}: the model zoo is not available ({exc}). "
            f"Use one of the built-in examples: {', '.join(example_names())}."
        ) from exc
    return load_model(name_or_path, trust=trust)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON (creating parent folders) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=float) + "\n", encoding="utf-8")
    return path
