"""The per-concept parts of an export: names, figures and the ``concepts.json`` entry."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from saeno.export import figures as F
from saeno.export import stats as S
from saeno.export.ablation import (
    Effect,
)
from saeno.export.html_report import page_path
from saeno.export.inputs import (
    read_rows,
)
from saeno.export.schema import clean_number

FIG_SAMPLES = 3  # samples drawn in the code-map and effect figures (arrays keep all n_top)


def concept_name(sae: torch.nn.Module, k: int) -> tuple[str, str | None]:
    names = getattr(sae, "concept_names", None)
    if isinstance(names, Sequence) and not isinstance(names, str) and len(names) == sae.n_concepts:
        return f"concept {k}", str(names[k])
    return f"concept {k}", None


def figure_title(sae: torch.nn.Module, k: int) -> str:
    """``concept k`` or ``concept k: label`` for figure titles."""
    name, label = concept_name(sae, k)
    return f"{name}: {label}" if label else name


def effect_json(eff: Effect, rows: Sequence[int]) -> dict:
    def mean(a: np.ndarray | None) -> float | None:
        return None if a is None else clean_number(np.mean(a))

    per = []
    for i, r in enumerate(rows):
        per.append(
            {
                "row": int(r),
                "rel_change": clean_number(eff.rel_change[i]) or 0.0,
                "err_clean": None if eff.err_clean is None else clean_number(eff.err_clean[i]),
                "err_ablated": None if eff.err_ablated is None else clean_number(eff.err_ablated[i]),
            }
        )
    return {
        "n_samples": len(rows),
        "rel_change": mean(eff.rel_change) or 0.0,
        "err_clean": mean(eff.err_clean),
        "err_ablated": mean(eff.err_ablated),
        "per_sample": per,
    }


def static_figures(
    stem: Path,
    k: int,
    rows: list[int],
    *,
    store: Any,
    fields: dict[str, bool],
    st: S.ConceptStats,
    acts: np.ndarray,
    code_maps: np.ndarray,
    atoms: dict[str, np.ndarray],
    vector: np.ndarray | None,
    spectrum: tuple[np.ndarray, str],
    flat: bool,
    dpi: int,
    title: str,
    centre: bool,
    point: tuple[np.ndarray, str] | None = None,
    notes: dict[str, str] | None = None,
) -> dict[str, Path | None]:
    """Atom, spectrum, code-map, example, thumbnail and density figures of concept ``k``.

    ``centre`` draws atoms rolled to the middle of the grid (kernels at the origin); a supervised
    SAE's atoms are fields over the domain and are drawn as they are. ``point`` is the concept's
    pointwise channel vector and its unit when ``atoms`` hold only the smooth part (SAE-FNO, see
    :func:`split_point_mass`). Captions of the figures go into ``notes``.
    """
    notes = {} if notes is None else notes
    figs: dict[str, Path | None] = {}
    if vector is not None:  # a channel vector: the same at every point and resolution
        figs["atom"] = F.plot_atom({"every grid": vector}, f"{stem}_atom.png", title=title, dpi=dpi)
        figs["spectrum"] = None  # a point mass in space: a flat spectrum says nothing
        notes["atom"] = (
            "A pointwise SAE's concept is one channel vector, the change of the "
            "activation per unit code at the point where the code is; bars are its "
            f"{vector.shape[0]} channels."
        )
    else:
        first = next(iter(atoms.values()))
        n_ch = min(2, first.shape[0])
        channels = F.top_channels(first, n_ch)
        figs["atom"] = F.plot_atom(
            atoms, f"{stem}_atom.png", title=title, centre=centre, channels=channels, dpi=dpi
        )
        part = "smooth part of the atom" if point is not None else "atom"
        notes["atom"] = (
            f"Each row is the {part} rendered on one grid"
            + (", rolled so that the origin (where the code sits) is in the middle" if centre else "")
            + f". First panel: the norm over all {first.shape[0]} channels; then channel"
            + ("s " if n_ch > 1 else " ")
            + " and ".join(str(c) for c in channels)
            + f", the {n_ch} with the most energy (sum of squares over the grid) at "
            f"{next(iter(atoms))}. Values are the change of the activation per unit code."
        )
        if point is not None:
            figs["atom_pointwise"] = F.plot_channel_vector(
                point[0],
                f"{stem}_atom_pointwise.png",
                dpi=dpi,
                ylabel=f"per unit code on {point[1].split(' (')[0]}",
                title=f"{title}: pointwise part, added where the code is ({point[1]})",
            )
            norm_s = float(np.sqrt((first.astype(np.float64) ** 2).sum() / first[0].size))
            norm_p = float(np.linalg.norm(point[0]))
            notes["atom_pointwise"] = (
                "The decoder also adds this channel vector at the code's own location. On a grid "
                "of N points it is a point mass (its value there grows like N), so it is drawn "
                f"apart from the smooth part. Its norm {norm_p:.3g} on {point[1]}, against an "
                f"RMS norm {norm_s:.3g} of the smooth part."
            )
        figs["spectrum"] = F.plot_spectrum(
            spectrum[0], f"{stem}_spectrum.png", title=f"{title} at {spectrum[1]}", dpi=dpi
        )
    show = rows[:FIG_SAMPLES]
    side = {
        name: read_rows(store, name, show).float().numpy() if fields[name] and show else None
        for name in ("x", "y", "y_pred")
    }
    figs["code_maps"] = F.plot_code_maps(
        code_maps[: len(show)],
        f"{stem}_codes.png",
        rows=show,
        activations=[acts[r, k] for r in show],
        x=side["x"],
        y_pred=side["y_pred"],
        y=side["y"],
        title=title,
        dpi=dpi,
    )
    x_all = read_rows(store, "x", rows).float().numpy() if fields["x"] and rows else None
    figs["examples"] = F.plot_examples(
        x_all,
        code_maps[: len(rows)],
        f"{stem}_examples.png",
        rows=rows,
        activations=[acts[r, k] for r in rows],
        dpi=dpi,
        title=f"{title}: its {len(rows)} most activating samples" if rows else title,
    )
    figs["thumbnail"] = (
        F.write_thumbnail(code_maps[0], f"{stem}_thumb.png") if rows and np.ndim(code_maps[0]) >= 1 else None
    )
    notes["density"] = (
        "Histogram of the concept's per-sample activation over the samples where "
        "it is active; dashed red lines mark the quantile examples listed below."
    )
    notes["examples"] = (
        "Top row: the model input (channel 0); bottom row: the concept's code "
        "map on that sample; each row on one colour scale."
    )
    figs["density"] = F.plot_density(
        st.hist_counts[k],
        st.hist_edges[k],
        f"{stem}_density.png",
        sample_density=float(st.sample_density[k]),
        point_density=None if flat else float(st.point_density[k]),
        quantiles=[q[2] for q in S.quantile_examples(acts[:, k])],
        title=title,
        dpi=dpi,
    )
    return figs


def effect_figure(stem: Path, k: int, rows: list[int], eff: Effect, dpi: int, title: str) -> Path:
    """The ablation-effect figure of concept ``k`` on its first top samples."""
    m = min(len(rows), FIG_SAMPLES)
    return F.plot_effect(
        eff.y_clean[:m],
        eff.y_ablated[:m],
        f"{stem}_effect.png",
        rows=rows[:m],
        err_clean=None if eff.err_clean is None else eff.err_clean[:m],
        err_ablated=None if eff.err_ablated is None else eff.err_ablated[:m],
        title=f"{title} ablated",
        dpi=dpi,
    )


def concept_entry(
    k: int,
    *,
    sae: torch.nn.Module,
    st: S.ConceptStats,
    acts: np.ndarray,
    top: list[tuple[int, float]],
    correlated: list[tuple[int, float]],
    effect: Effect | None,
    params: Mapping[str, np.ndarray],
    labels: Mapping[str, list[str]],
    figures: dict[str, str | None] | None,
    flat: bool,
) -> dict:
    """The ``concepts.json`` entry of concept ``k`` (see :mod:`saeno.export.schema`)."""
    name, label = concept_name(sae, k)
    top_rows = [r for r, _ in top]
    enrichment = S.param_enrichment(acts[:, k], top_rows, params) if top_rows else {}
    return {
        "index": k,
        "name": name,
        "label": label,
        "rank": int(st.rank[k]),
        "stats": {
            "mean_activation": float(st.mean_activation[k]),
            "max_activation": float(st.max_activation[k]),
            "sample_density": float(st.sample_density[k]),
            "point_density": None if flat else float(st.point_density[k]),
            "dead": bool(st.sample_density[k] == 0),
        },
        "histogram": {
            "edges": [float(e) for e in st.hist_edges[k]],
            "counts": [int(c) for c in st.hist_counts[k]],
        },
        "top_examples": [{"row": r, "activation": a} for r, a in top],
        "quantile_examples": [
            {"quantile": q, "row": r, "activation": a} for q, r, a in S.quantile_examples(acts[:, k])
        ],
        "correlated": [{"index": j, "correlation": c} for j, c in correlated],
        "effect": None if effect is None else effect_json(effect, top_rows),
        "params": {
            pname: {key: None if v is None else clean_number(v) for key, v in vals.items()}
            for pname, vals in enrichment.items()
        },
        "labels": S.label_enrichment(top_rows, labels) if top_rows else {},
        "figures": figures or {},
        "page": page_path(k) if figures is not None else None,
    }


def sae_config(sae: torch.nn.Module) -> dict:
    try:
        cfg = sae.config()
    except (AttributeError, NotImplementedError):
        cfg = {}
    return json.loads(json.dumps(cfg, default=str))
