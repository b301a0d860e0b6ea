"""The ``concepts.json`` schema (versioned) and its validator.

``concepts.json`` is the machine-readable half of an export: one entry per concept of the SAE (all
of them, dead ones included), with its statistics, examples, correlated concepts, ablation effect,
parameter and label enrichment, and the relative paths of its figures. The arrays behind it live in
the Zarr group ``arrays.zarr`` beside it. The layout below is version :data:`SCHEMA_VERSION`;
readers should check ``doc["schema"] == "saeno.concepts"`` and the version before anything else.

Floats that are undefined (a correlation with a constant column, an error without a target) are
written as ``null``, never as ``NaN``, so that the file is strict JSON.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from saeno.errors import SaenoError

SCHEMA_NAME = "saeno.concepts"
SCHEMA_VERSION = 1


class ConceptsSchemaError(SaenoError, ValueError):
    """A ``concepts.json`` document that does not follow the schema."""


# ---------------------------------------------------------------------------------------------
# a tiny type language: Python types, Opt(...), ListOf(...), MapOf(...), nested dicts of fields


class Opt:
    """A value of the given spec or ``null``."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec


class ListOf:
    """A JSON array whose items follow a spec."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec


class MapOf:
    """A JSON object with arbitrary string keys whose values follow a spec."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec


NUMBER = (int, float)

HISTOGRAM = {"edges": ListOf(NUMBER), "counts": ListOf(int)}

EXAMPLE = {"row": int, "activation": NUMBER}

QUANTILE_EXAMPLE = {"quantile": NUMBER, "row": int, "activation": NUMBER}

CORRELATED = {"index": int, "correlation": NUMBER}

EFFECT_SAMPLE = {"row": int, "rel_change": NUMBER, "err_clean": Opt(NUMBER), "err_ablated": Opt(NUMBER)}

EFFECT = {
    "n_samples": int,
    "rel_change": NUMBER,
    "err_clean": Opt(NUMBER),
    "err_ablated": Opt(NUMBER),
    "per_sample": ListOf(EFFECT_SAMPLE),
}

PARAM = {
    "top_mean": Opt(NUMBER),
    "overall_mean": Opt(NUMBER),
    "overall_std": Opt(NUMBER),
    "correlation": Opt(NUMBER),
}

LABEL = {"top": MapOf(NUMBER), "overall": MapOf(NUMBER), "enriched": Opt(str)}

STATS = {
    "mean_activation": NUMBER,
    "max_activation": NUMBER,
    "sample_density": NUMBER,
    "point_density": Opt(NUMBER),
    "dead": bool,
}

CONCEPT = {
    "index": int,
    "name": str,
    "label": Opt(str),
    "rank": int,
    "stats": STATS,
    "histogram": HISTOGRAM,
    "top_examples": ListOf(EXAMPLE),
    "quantile_examples": ListOf(QUANTILE_EXAMPLE),
    "correlated": ListOf(CORRELATED),
    "effect": Opt(EFFECT),
    "params": MapOf(PARAM),
    "labels": MapOf(LABEL),
    "figures": MapOf(Opt(str)),
    "page": Opt(str),
}

DOCUMENT = {
    "schema": str,
    "version": int,
    "saeno_version": str,
    "created": str,
    "sae": {
        "architecture": str,
        "n_concepts": int,
        "in_channels": int,
        "ndim": int,
        "config": MapOf(object),
        "path": Opt(str),
    },
    "store": {"path": Opt(str), "hook": str, "fingerprint": Opt(str), "grid": ListOf(int), "n_rows": int},
    "model": Opt({"name": str, "fingerprint": Opt(str)}),
    "ablation": {"done": bool, "method": str, "reason": Opt(str)},
    "definitions": MapOf(str),
    "resolutions": ListOf(ListOf(int)),
    "arrays": str,
    "figures_for": ListOf(int),
    "overview": MapOf(Opt(str)),
    "concepts": ListOf(CONCEPT),
}


#: optional keys of the document (absent in exports of older saeno versions)
EVALUATION_ROW = {"grid": ListOf(int), "training_resolution": bool}
OPTIONAL = {
    # the SAE's evaluation at each resolution (saeno.evaluate's headline metrics)
    "evaluation": Opt({"source": str, "note": Opt(str), "results": ListOf(EVALUATION_ROW)}),
}


def _type_name(spec: Any) -> str:
    if isinstance(spec, tuple):
        return "number"
    if isinstance(spec, type):
        return {str: "string", int: "integer", float: "number", bool: "boolean", object: "any value"}.get(
            spec, spec.__name__
        )
    if isinstance(spec, ListOf):
        return "array"
    if isinstance(spec, (MapOf, dict)):
        return "object"
    return repr(spec)


def _check(value: Any, spec: Any, where: str) -> None:
    if isinstance(spec, Opt):
        if value is not None:
            _check(value, spec.spec, where)
        return
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise ConceptsSchemaError(f"{where} must be an object, got {type(value).__name__}")
        for key, sub in spec.items():
            if key not in value:
                raise ConceptsSchemaError(f"{where} lacks the required key {key!r}")
            _check(value[key], sub, f"{where}.{key}")
        return
    if isinstance(spec, ListOf):
        if not isinstance(value, list):
            raise ConceptsSchemaError(f"{where} must be an array, got {type(value).__name__}")
        for i, item in enumerate(value):
            _check(item, spec.spec, f"{where}[{i}]")
        return
    if isinstance(spec, MapOf):
        if not isinstance(value, dict):
            raise ConceptsSchemaError(f"{where} must be an object, got {type(value).__name__}")
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConceptsSchemaError(f"{where} has a non-string key {key!r}")
            _check(item, spec.spec, f"{where}[{key!r}]")
        return
    if spec is object:
        return
    types = spec if isinstance(spec, tuple) else (spec,)
    # bool is an int in Python: only accept it where a boolean is asked for
    if isinstance(value, bool) and bool not in types:
        ok = False
    else:
        ok = isinstance(value, types)
    if not ok:
        raise ConceptsSchemaError(
            f"{where} must be a {_type_name(spec)}, got {type(value).__name__} {value!r:.40}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ConceptsSchemaError(f"{where} is {value}: write undefined numbers as null")


def validate_concepts(doc: Any) -> dict:
    """Check a parsed ``concepts.json`` document against the schema.

    Parameters
    ----------
    doc : dict
        The parsed document.

    Returns
    -------
    dict
        ``doc`` itself, for chaining.

    Raises
    ------
    ConceptsSchemaError
        If the document is not a ``saeno.concepts`` file of a supported version, lacks a required
        key, holds a value of the wrong type, or its concepts are not numbered ``0 .. n_concepts-1``.
    """
    if not isinstance(doc, dict):
        raise ConceptsSchemaError("concepts.json must hold a JSON object")
    if doc.get("schema") != SCHEMA_NAME:
        raise ConceptsSchemaError(
            f"not a concepts file: 'schema' is {doc.get('schema')!r}, expected {SCHEMA_NAME!r}"
        )
    version = doc.get("version")
    if version != SCHEMA_VERSION:
        raise ConceptsSchemaError(
            f"concepts.json version {version!r} is not supported by this saeno (reads version "
            f"{SCHEMA_VERSION}): export again with this version of saeno"
        )
    _check(doc, DOCUMENT, "concepts.json")
    for key, spec in OPTIONAL.items():
        if key in doc:
            _check(doc[key], spec, f"concepts.json.{key}")
    n = doc["sae"]["n_concepts"]
    indices = [c["index"] for c in doc["concepts"]]
    if indices != list(range(n)):
        raise ConceptsSchemaError(
            f"concepts.json lists concepts {indices[:5]}...: expected one entry per concept, "
            f"indices 0 .. {n - 1} in order"
        )
    for k in doc["figures_for"]:
        if not 0 <= k < n:
            raise ConceptsSchemaError(f"figures_for names concept {k}, outside 0 .. {n - 1}")
    return doc


def load_concepts(path: str | Path) -> dict:
    """Read and validate ``concepts.json`` (a file, or the export folder that holds it).

    Raises
    ------
    ConceptsSchemaError
        If the file is missing, is not JSON, or does not follow the schema.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "concepts.json"
    if not path.is_file():
        raise ConceptsSchemaError(
            f"{path} does not exist: pass an export folder written by `saeno export` or its concepts.json"
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConceptsSchemaError(f"{path} is not valid JSON ({exc}): export again") from exc
    return validate_concepts(doc)


def clean_number(value: Any) -> float | None:
    """A float for JSON: ``None`` for NaN and infinities."""
    value = float(value)
    return value if math.isfinite(value) else None


__all__ = [
    "ConceptsSchemaError",
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "clean_number",
    "load_concepts",
    "validate_concepts",
]
