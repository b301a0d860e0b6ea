"""Concept export: per-concept statistics, arrays, figures, ``concepts.json`` and ``report.html``.

Modules, one concern each:

- :mod:`saeno.export.stats`: activations, densities, histograms, examples, correlations (pure numpy);
- :mod:`saeno.export.ablation`: a concept's effect on the FNO's prediction (splicing at the hook);
- :mod:`saeno.export.figures`: matplotlib (Agg) PNGs from plain arrays;
- :mod:`saeno.export.schema`: the versioned ``concepts.json`` schema and its validator;
- :mod:`saeno.export.html_report`: the offline HTML report;
- :mod:`saeno.export.concepts`: :func:`export_concepts`, which ties them together.
"""

from __future__ import annotations

from saeno.export.concepts import DEFAULT_MAX_CONCEPTS, ExportError, export_concepts
from saeno.export.html_report import write_report
from saeno.export.schema import (
    SCHEMA_VERSION,
    ConceptsSchemaError,
    load_concepts,
    validate_concepts,
)

__all__ = [
    "DEFAULT_MAX_CONCEPTS",
    "SCHEMA_VERSION",
    "ConceptsSchemaError",
    "ExportError",
    "export_concepts",
    "load_concepts",
    "validate_concepts",
    "write_report",
]
