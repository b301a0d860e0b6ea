"""The writing half of an export: figures, ``arrays.zarr``, ``concepts.json`` and ``report.html``
(:func:`write_export`)."""

from __future__ import annotations

import datetime as _dt
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from saeno.export import figures as F
from saeno.export import stats as S
from saeno.export.ablation import (
    ABLATION_METHOD,
    ABLATION_METHOD_SUPERVISED,
)
from saeno.export.arrays import write_arrays
from saeno.export.compute import ConceptExport
from saeno.export.entries import (
    concept_entry,
    effect_figure,
    figure_title,
    sae_config,
    static_figures,
)
from saeno.export.explanations import attach_explanations, load_for_export
from saeno.export.html_report import write_report
from saeno.export.inputs import (
    res_label,
)
from saeno.export.schema import SCHEMA_NAME, SCHEMA_VERSION, validate_concepts


@dataclass
class StaticParts:
    """What :func:`write_static` wrote: each chosen concept's figure paths (relative to the export
    folder) and captions, and the density overview's path."""

    figures: dict[int, dict[str, str | None]] = field(default_factory=dict)
    notes: dict[int, dict[str, str]] = field(default_factory=dict)
    overview: str = ""


def write_export(
    data: ConceptExport,
    out: str | Path,
    *,
    dpi: int = F.DEFAULT_DPI,
    explanations: Any = None,
    inline: bool = False,
    progress: bool = True,
) -> Path:
    """The writing half of :func:`export_concepts`: figures, ``arrays.zarr``, ``concepts.json`` and
    ``report.html`` in ``out`` (earlier figures and pages there are replaced); returns the report.

    The same as :func:`write_static` followed by :func:`write_document`; only the second reads
    ``data.evaluation``, so a caller may attach the evaluation between the two.
    """
    parts = write_static(data, out, dpi=dpi, progress=progress)
    return write_document(data, out, parts, explanations=explanations, inline=inline)


def write_static(
    data: ConceptExport, out: str | Path, *, dpi: int = F.DEFAULT_DPI, progress: bool = True
) -> StaticParts:
    """The figures and ``arrays.zarr`` of an export in ``out`` (earlier figures there are replaced):
    everything but ``concepts.json`` and ``report.html`` (:func:`write_document`)."""
    from tqdm.auto import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for folder in (out / "figures", out / "concepts"):
        if folder.exists():
            shutil.rmtree(folder)
    sae, st, split = data.sae, data.st, data.split
    parts = StaticParts()
    for i, k in enumerate(tqdm(data.chosen, desc="figures", disable=not progress, unit="concept")):
        rows = [int(r) for r in data.top_rows[i] if r >= 0]
        stem = out / f"figures/concept_{k:05d}"
        figs = static_figures(
            stem,
            k,
            rows,
            store=data.store,
            fields=data.fields,
            st=st,
            acts=data.acts,
            code_maps=data.code_maps[i],
            atoms={res_label(r): a[i] for r, a in data.smooth.items()},
            vector=None if data.vectors is None else data.vectors[i],
            spectrum=(data.spectra[i], res_label(data.finest or ())),
            flat=data.flat,
            dpi=dpi,
            title=figure_title(sae, k),
            centre=data.centre,
            point=None if split is None else (split[1][i], split[2]),
            notes=parts.notes.setdefault(k, {}),
        )
        figs["effect"] = None
        if k in data.effects:
            figs["effect"] = effect_figure(stem, k, rows, data.effects[k], dpi, figure_title(sae, k))
        parts.figures[k] = {
            key: None if v is None else Path(v).relative_to(out).as_posix() for key, v in figs.items()
        }
    overview = F.plot_density_overview(
        st.sample_density, out / "figures/density_overview.png", title="all concepts", dpi=dpi
    )
    parts.overview = overview.relative_to(out).as_posix()
    write_arrays(
        out / "arrays.zarr",
        acts=data.acts,
        st=st,
        concepts=data.chosen,
        top_rows=data.top_rows,
        code_maps=data.code_maps,
        atoms=data.atoms,
        spectra=data.spectra,
        radial=data.radial,
        corr=data.corr,
        effects=data.effects,
        vectors=data.vectors,
        grid=data.grid,
        pointwise=None if split is None else split[1],
    )
    return parts


def write_document(
    data: ConceptExport,
    out: str | Path,
    parts: StaticParts,
    *,
    explanations: Any = None,
    inline: bool = False,
) -> Path:
    """``concepts.json`` and ``report.html`` in ``out``, naming the figures :func:`write_static` wrote
    there (``parts``) and holding ``data.evaluation``; returns the report's path."""
    out = Path(out)
    sae, st = data.sae, data.st
    p = data.acts.shape[1]
    concepts_json = [
        concept_entry(
            k,
            sae=sae,
            st=st,
            acts=data.acts,
            top=data.tops[k],
            correlated=data.correlated[k],
            effect=data.effects.get(k),
            params=data.params,
            labels=data.labels,
            figures=parts.figures.get(k),
            flat=data.flat,
        )
        for k in range(p)
    ]
    for entry in concepts_json:
        entry["figure_notes"] = parts.notes.get(entry["index"], {})
    doc = _document(data, concepts_json, parts.overview)
    if explanations is not None:
        attach_explanations(doc, load_for_export(explanations, p, data.hook))
    validate_concepts(doc)
    (out / "concepts.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return write_report(doc, out, inline=inline)


def _document(data: ConceptExport, concepts_json: list[dict], overview: str) -> dict[str, Any]:
    """The ``concepts.json`` document (schema: :mod:`saeno.export.schema`)."""
    from saeno import __version__

    cfg = sae_config(data.sae)
    supervised = data.supervised
    return {
        "schema": SCHEMA_NAME,
        "version": SCHEMA_VERSION,
        "saeno_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "sae": {
            "architecture": str(cfg.get("architecture", type(data.sae).__name__)),
            "n_concepts": int(data.acts.shape[1]),
            "in_channels": int(data.sae.in_channels),
            "ndim": data.ndim,
            "config": cfg,
            "path": data.sae_path,
        },
        "store": {
            "path": data.store_path,
            "hook": data.hook,
            "fingerprint": getattr(data.store, "fingerprint", None),
            "grid": list(data.grid),
            "n_rows": int(data.n),
        },
        "model": None
        if data.hooked is None
        else {"name": str(data.model_name), "fingerprint": data.model_fp},
        "ablation": {
            "done": bool(data.effects),
            "reason": data.ablation_reason,
            "method": ABLATION_METHOD_SUPERVISED if supervised else ABLATION_METHOD,
        },
        "definitions": dict(S.DEFINITIONS, **(S.DEFINITIONS_SUPERVISED if supervised else {})),
        "resolutions": [list(r) for r in data.atoms],
        "arrays": "arrays.zarr",
        "figures_for": [int(k) for k in data.chosen],
        "overview": {"density_figure": overview},
        "evaluation": data.evaluation,
        "concepts": concepts_json,
    }


__all__ = ["StaticParts", "write_document", "write_export", "write_static"]
