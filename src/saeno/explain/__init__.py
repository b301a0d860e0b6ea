"""Explain SAE concepts in physical terms: probe fields, held-out scores and null controls.

- :mod:`saeno.explain.probes`: the probe registry, :func:`probe` (decorator) and the per-sample
  :class:`ProbeContext`; built-in probes in :mod:`saeno.explain.builtin`, operators in
  :mod:`saeno.explain.fields`;
- :mod:`saeno.explain.scores`: Spearman, AUROC, IoU and the shuffled-sample null;
- :mod:`saeno.explain.core`: :func:`explain_concepts` (the protocol);
- :mod:`saeno.explain.result`: the :class:`Explanations` dataclass and ``explanations.json``.
"""

from saeno.explain import builtin as _builtin  # noqa: F401  (registers the built-in probes)
from saeno.explain.core import explain_concepts, random_init_like, split_halves
from saeno.explain.probes import (
    ExplainError,
    NotApplicable,
    ProbeContext,
    ProbeError,
    available_probes,
    probe,
    registry,
    unregister,
)
from saeno.explain.result import (
    ConceptExplanation,
    ExplainSummary,
    Explanations,
    ExplanationsFileError,
    load_explanations,
)

__all__ = [
    "ConceptExplanation",
    "ExplainError",
    "ExplainSummary",
    "Explanations",
    "ExplanationsFileError",
    "NotApplicable",
    "ProbeContext",
    "ProbeError",
    "available_probes",
    "explain_concepts",
    "load_explanations",
    "probe",
    "random_init_like",
    "registry",
    "split_halves",
    "unregister",
]
