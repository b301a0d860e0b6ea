"""Concept explanations (``saeno explain``) in the export: ``concepts.json`` entries, index columns and
a section on each concept page.

:func:`attach_explanations` copies each concept's explanation from an ``explanations.json`` document
into its ``concepts.json`` entry (key ``explanation``) and the per-SAE summary into the document (key
``explanations``); the HTML report calls :func:`index_headers`, :func:`index_cells` and
:func:`page_section`, which render nothing when the export has no explanations.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from saeno.errors import SaenoError

#: the per-concept fields copied into ``concepts.json``
FIELDS = (
    "status",
    "explained",
    "probe",
    "probes",
    "signs",
    "quantile",
    "rho",
    "rho_select",
    "auroc",
    "iou",
    "null_shuffle",
    "null_random",
    "n_select",
    "n_heldout",
    "effect",
)

DEFINITIONS = {
    "explanation": "the probe field (or conjunction of two) whose Spearman correlation with the "
    "concept's code map over points is largest on the selection half of the samples; "
    "its sign and the probe quantile that best matches where the concept is active are "
    "chosen there too",
    "held-out rho": "Spearman correlation of the code map with the signed probe over the points of "
    "the held-out half (samples never used to choose the explanation)",
    "null (99%)": "99th percentile of the nulls: the same statistic against other samples' probe "
    "fields (shifted copies for probes equal on every sample) and against random-init "
    "SAEs of the same shape; explained = held-out rho above it and above the floor",
    "AUROC": "area under the ROC curve of 'concept active at the point' against the signed probe, "
    "held-out half",
}


class ExplanationsMismatchError(SaenoError):
    """An explanations file that does not describe the exported SAE."""


def load_for_export(explanations: Any, n_concepts: int, hook: str | None = None) -> dict[str, Any]:
    """The explanations document from a path (file or folder), a dict or an ``Explanations``."""
    from saeno.explain.result import (
        FILE_NAME,
        Explanations,
        ExplanationsFileError,
        validate,
    )

    if isinstance(explanations, Explanations):
        doc = explanations.to_dict()
    elif isinstance(explanations, Mapping):
        doc = dict(explanations)
    else:
        path = Path(explanations)
        if path.is_dir():
            path = path / FILE_NAME
        if not path.is_file():
            raise ExplanationsFileError(f"no explanations file at {path}: run `saeno explain` first")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ExplanationsFileError(f"{path} is not valid JSON: {exc}") from None
    validate(doc)
    if int(doc["sae"]["n_concepts"]) != int(n_concepts) or len(doc["concepts"]) != int(n_concepts):
        raise ExplanationsMismatchError(
            f"the explanations describe an SAE with {doc['sae']['n_concepts']} concepts, the exported "
            f"one has {n_concepts}: run `saeno explain` on this SAE"
        )
    if hook is not None and doc["store"].get("hook") not in (None, hook):
        raise ExplanationsMismatchError(
            f"the explanations are of hook {doc['store']['hook']!r}, the export of {hook!r}: run "
            "`saeno explain` with the same --hook"
        )
    return doc


def attach_explanations(doc: dict[str, Any], explanations: Mapping[str, Any]) -> dict[str, Any]:
    """Add the explanations to a ``concepts.json`` document (in place; returns it)."""
    by_index = {int(c["index"]): c for c in explanations["concepts"]}
    for c in doc["concepts"]:
        e = by_index.get(int(c["index"]))
        if e is None:
            c["explanation"] = None
            continue
        entry = {k: e.get(k) for k in FIELDS}
        nulls = [v for v in (e.get("null_shuffle"), e.get("null_random")) if v is not None]
        entry["null"] = max(nulls) if nulls else None
        c["explanation"] = entry
    doc["explanations"] = {
        "summary": dict(explanations["summary"]),
        "floor": explanations["protocol"].get("floor"),
        "n_select": len(explanations["protocol"].get("rows_select", [])),
        "n_heldout": len(explanations["protocol"].get("rows_heldout", [])),
        "probes": dict(explanations.get("probes", {})),
        "skipped": dict(explanations.get("skipped", {})),
    }
    doc.setdefault("definitions", {}).update(DEFINITIONS)
    return doc


# ---------------------------------------------------------------------------------------------
# HTML


def _signed(e: Mapping[str, Any]) -> str:
    return " & ".join(
        ("-" if s < 0 else "+") + p for p, s in zip(e.get("probes") or [], e.get("signs") or [])
    )


def index_headers(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Extra sortable index columns (none without explanations)."""
    if not doc.get("explanations"):
        return []
    return [
        ("explained by", "text"),
        ("held-out rho", "number"),
        ("null (99%)", "number"),
        ("AUROC", "number"),
    ]


def index_cells(doc: Mapping[str, Any], concept: Mapping[str, Any]) -> str:
    """The cells of :func:`index_headers` for one concept's row."""
    from saeno.export.html_parts import num_cell, text_cell

    if not doc.get("explanations"):
        return ""
    e = concept.get("explanation") or {}
    if not e or e.get("status") == "rare":
        label = "rare" if e else ""
        return text_cell(label) + num_cell(None) + num_cell(None) + num_cell(None)
    label = _signed(e) + ("" if e.get("explained") else " (not explained)")
    return text_cell(label) + num_cell(e.get("rho")) + num_cell(e.get("null")) + num_cell(e.get("auroc"))


def page_section(doc: Mapping[str, Any], concept: Mapping[str, Any]) -> str:
    """The "Explanation" section of a concept page ("" without explanations)."""
    from saeno.export.html_parts import esc, meta_table

    info = doc.get("explanations")
    if not info:
        return ""
    e = concept.get("explanation")
    parts = ["<h2>Explanation</h2>"]
    if not e:
        parts.append('<p class="note">No explanation for this concept.</p>')
        return "\n".join(parts)
    if e.get("status") == "rare":
        parts.append(
            f'<p class="note">Not scored: active on {e.get("n_select")} selection and '
            f"{e.get('n_heldout')} held-out samples (too few).</p>"
        )
        return "\n".join(parts)
    probes = info.get("probes", {})
    what = "; ".join(f"{p}: {probes.get(p, '')}" for p in e.get("probes") or [])
    verdict = "explained" if e.get("explained") else "not explained"
    parts.append(f"<p><b>{esc(_signed(e))}</b> ({esc(verdict)}): {esc(what)}</p>")
    parts.append(
        meta_table(
            {
                "held-out Spearman rho": e.get("rho"),
                "selection-half rho": e.get("rho_select"),
                "null, 99th percentile (shuffled samples)": e.get("null_shuffle"),
                "null, 99th percentile (random-init SAEs)": e.get("null_random"),
                "floor": info.get("floor"),
                "held-out AUROC of 'active'": e.get("auroc"),
                "probe quantile": e.get("quantile"),
                "held-out IoU at that quantile": e.get("iou"),
                "samples where active (selection + held-out)": f"{e.get('n_select')} + {e.get('n_heldout')}",
                "ablation effect (relative output change)": e.get("effect"),
            }
        )
    )
    return "\n".join(parts)


__all__ = [
    "DEFINITIONS",
    "ExplanationsMismatchError",
    "attach_explanations",
    "index_cells",
    "index_headers",
    "load_for_export",
    "page_section",
]
