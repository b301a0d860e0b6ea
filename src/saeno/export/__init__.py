"""Concept export: per-concept statistics, arrays, figures, ``concepts.json`` and ``report.html``.

Modules, one concern each:

- :mod:`saeno.export.stats`: activations, densities, histograms, examples, correlations (pure numpy);
- :mod:`saeno.export.ablation`: a concept's effect on the FNO's prediction (splicing at the hook);
- :mod:`saeno.export.figures`: matplotlib (Agg) PNGs from plain arrays;
- :mod:`saeno.export.schema`: the versioned ``concepts.json`` schema and its validator;
- :mod:`saeno.export.html_report`: the offline HTML report;
- :mod:`saeno.export.concepts`: :func:`export_concepts`, which ties them together.

Names are imported lazily so that reading a report's schema does not import torch or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "DEFAULT_MAX_CONCEPTS": "saeno.export.concepts",
    "ExportError": "saeno.export.concepts",
    "export_concepts": "saeno.export.concepts",
    "write_report": "saeno.export.html_report",
    "SCHEMA_VERSION": "saeno.export.schema",
    "ConceptsSchemaError": "saeno.export.schema",
    "load_concepts": "saeno.export.schema",
    "validate_concepts": "saeno.export.schema",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'saeno.export' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
