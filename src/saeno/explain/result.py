"""Results of :func:`saeno.explain_concepts` and their JSON file ``explanations.json``.

The file is versioned: ``{"schema": "saeno.explanations", "version": 1, ...}`` with the SAE and
store it describes, the protocol (rows of the two halves, floor, null settings), the probes used and
skipped, one entry per concept (:class:`ConceptExplanation`) and the per-SAE summary
(:class:`ExplainSummary`). :func:`load_explanations` reads a file of a supported version or raises an
error naming the problem.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

from saeno.explain.probes import ExplainError

SCHEMA_NAME = "saeno.explanations"
SCHEMA_VERSION = 1
FILE_NAME = "explanations.json"


@dataclass
class ConceptExplanation:
    """The explanation of one concept and its held-out scores.

    ``status`` is ``"explained"``, ``"unexplained"`` or ``"rare"`` (active on fewer than
    ``min_samples`` samples of a half: not scored, not counted as live). ``probe`` is the chosen probe,
    or ``"a & b"`` for a conjunction (``probes`` lists the parts, ``signs`` their signs: -1 means the
    concept follows the negated probe). Scores are on the held-out half: ``rho`` (Spearman over
    points, with the sign chosen on the selection half), ``auroc`` (concept active vs the signed probe),
    ``iou`` (active set vs the probe above its ``quantile``); ``rho_select`` is the selection half's
    value. ``null_shuffle`` and ``null_random`` are the 99th percentiles of the nulls.
    """

    index: int
    status: str
    explained: bool = False
    probe: str | None = None
    probes: list[str] = field(default_factory=list)
    signs: list[int] = field(default_factory=list)
    quantile: float | None = None
    rho: float | None = None
    rho_select: float | None = None
    auroc: float | None = None
    iou: float | None = None
    null_shuffle: float | None = None
    null_random: float | None = None
    conjunction_tried: str | None = None
    n_select: int = 0
    n_heldout: int = 0
    effect: float | None = None
    alternatives: list[dict[str, Any]] = field(default_factory=list)

    @property
    def live(self) -> bool:
        """Whether the concept was scored (active on enough samples of both halves)."""
        return self.status != "rare"

    def describe(self) -> str:
        """One line: ``"+target_grad (q 0.80): rho 0.91 > null 0.12, AUROC 0.95"``."""
        if not self.live:
            return f"rare: active on {self.n_select} + {self.n_heldout} samples"
        parts = " & ".join(("-" if s < 0 else "+") + p for p, s in zip(self.probes, self.signs))
        null = max(v for v in (self.null_shuffle, self.null_random, -1.0) if v is not None)
        verdict = "explained" if self.explained else "not explained"
        auc = "" if self.auroc is None else f", AUROC {self.auroc:.2f}"
        return (
            f"{parts} (q {self.quantile:.2f}): held-out rho {self.rho:.2f}, null {null:.2f}{auc}: {verdict}"
        )


@dataclass
class ExplainSummary:
    """Per-SAE figures: share of live concepts explained, mean held-out score, probe counts, and the
    concepts with a large ablation effect that no probe explains (largest effect first)."""

    n_concepts: int
    n_live: int
    n_explained: int
    share_explained: float | None
    mean_score: float | None
    probe_counts: dict[str, int]
    unexplained_important: list[int]


@dataclass
class Explanations:
    """Everything :func:`saeno.explain_concepts` computed (see the module docstring)."""

    sae: dict[str, Any]
    store: dict[str, Any]
    protocol: dict[str, Any]
    probes: dict[str, str]
    skipped: dict[str, str]
    concepts: list[ConceptExplanation]
    summary: ExplainSummary
    random_null: dict[str, Any] | None = None
    seconds: float | None = None

    def concept(self, k: int) -> ConceptExplanation:
        """The explanation of concept ``k``."""
        return self.concepts[k]

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (finite numbers only; undefined ones are null)."""
        from saeno import __version__

        doc = {"schema": SCHEMA_NAME, "version": SCHEMA_VERSION, "saeno_version": __version__}
        doc.update(_clean(asdict(self)))
        return doc

    def save(self, path: str | PathLike) -> Path:
        """Write ``explanations.json`` (``path`` a file, or a folder to write it into)."""
        path = Path(path)
        if path.suffix != ".json":
            path.mkdir(parents=True, exist_ok=True)
            path = path / FILE_NAME
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Explanations:
        """Rebuild from a document written by :meth:`to_dict` (checked with :func:`validate`)."""
        validate(doc)
        concepts = [ConceptExplanation(**c) for c in doc["concepts"]]
        return cls(
            sae=doc["sae"],
            store=doc["store"],
            protocol=doc["protocol"],
            probes=doc["probes"],
            skipped=doc["skipped"],
            concepts=concepts,
            summary=ExplainSummary(**doc["summary"]),
            random_null=doc.get("random_null"),
            seconds=doc.get("seconds"),
        )


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return _clean(value.item())
    return value


class ExplanationsFileError(ExplainError):
    """A file that is not a readable ``explanations.json`` of a supported version."""


_REQUIRED = ("sae", "store", "protocol", "probes", "skipped", "concepts", "summary")
_CONCEPT_REQUIRED = ("index", "status", "explained", "probe", "rho")


def validate(doc: Any) -> dict[str, Any]:
    """Check the schema name, version and required keys; returns ``doc``."""
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_NAME:
        raise ExplanationsFileError(
            f"not a {SCHEMA_NAME} document (its 'schema' is "
            f"{doc.get('schema') if isinstance(doc, dict) else None!r}): "
            "pass the explanations.json written by `saeno explain`"
        )
    if doc.get("version") != SCHEMA_VERSION:
        raise ExplanationsFileError(
            f"explanations version {doc.get('version')} is not supported "
            f"(this saeno reads version {SCHEMA_VERSION}): run `saeno "
            "explain` again"
        )
    missing = [k for k in _REQUIRED if k not in doc]
    if missing:
        raise ExplanationsFileError(f"the explanations document lacks {missing}")
    for i, c in enumerate(doc["concepts"]):
        lack = [k for k in _CONCEPT_REQUIRED if k not in c]
        if lack:
            raise ExplanationsFileError(f"concepts[{i}] lacks {lack}")
    return doc


def load_explanations(path: str | PathLike) -> Explanations:
    """Read ``explanations.json`` (a file, or a folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / FILE_NAME
    if not path.is_file():
        raise ExplanationsFileError(f"no explanations file at {path}: run `saeno explain --out ...` first")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ExplanationsFileError(f"{path} is not valid JSON: {exc}") from None
    return Explanations.from_dict(doc)


__all__ = [
    "FILE_NAME",
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "ConceptExplanation",
    "ExplainSummary",
    "Explanations",
    "ExplanationsFileError",
    "load_explanations",
    "validate",
]
