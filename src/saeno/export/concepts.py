"""``export_concepts``: per-concept statistics, arrays, figures, ``concepts.json`` and ``report.html``.

The export folder::

    <out>/concepts.json        statistics of every concept (schema: saeno.export.schema)
    <out>/arrays.zarr          Zarr v3 group with the arrays behind it (see :mod:`saeno.export.arrays`)
    <out>/figures/*.png        figures of the exported concepts
    <out>/report.html          index with a sortable table; <out>/concepts/concept_NNNNN.html pages

Statistics (density, histogram, examples, correlations, parameter and label enrichment) are
computed for every concept; figures, arrays of atoms and code maps, and ablation effects only for
the ``max_concepts`` most active ones, so that exporting a large dictionary stays fast.

A supervised SAE (:class:`~saeno.sae.supervised.SupervisedSAE`) is exported from the labels the
store holds: a concept's "code map" is the size of its label block's contribution to the
reconstruction (:func:`saeno.supervised.report.contribution_maps`), its name is its label
(``viscosity=low``) and its ablation switches the label off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from saeno.export import figures as F
from saeno.export.compute import ConceptExport, compute_concepts
from saeno.export.evaluation_block import EVALUATION_KEYS
from saeno.export.inputs import (
    DEFAULT_MAX_CONCEPTS,
    ExportError,
    model_display_name,
)
from saeno.export.writing import write_export


def export_concepts(
    sae: Any,
    store: Any,
    out: str | Path,
    *,
    hook: str | None = None,
    model: Any = None,
    n_top: int = 8,
    resolutions: Sequence[int | Sequence[int]] | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    max_concepts: int | None = DEFAULT_MAX_CONCEPTS,
    n_rows: int | None = None,
    batch_size: int = 32,
    trust: bool = False,
    dpi: int = F.DEFAULT_DPI,
    explanations: Any = None,
    evaluation: Mapping[str, Any] | bool | None = None,
    model_name: str | None = None,
    inline: bool = False,
) -> Path:
    """Export an SAE's concepts: statistics, arrays, figures, ``concepts.json`` and ``report.html``.

    Parameters
    ----------
    sae : SparseAutoencoder or path-like
        The SAE, or a folder written by ``saeno.save_sae``.
    store : ActivationStore or path-like
        The activation store the statistics are computed on (its ``x``, ``y`` and ``y_pred``
        arrays are drawn beside the code maps).
    out : path-like
        Export folder (created; files of an earlier export there are overwritten).
    hook : str, optional
        Hook point of the SAE; defaults to the SAE's metadata or the store's only hook.
    model : nn.Module, HookedOperator, str or path-like, optional
        The FNO the store was captured from (a zoo name or model path is loaded with
        ``saeno.zoo.load_model``). Needed for the ablation effects; without it they are skipped and
        the report says so. Its fingerprint must match the store's.
    n_top : int
        Top-activating samples per concept (examples, code maps, ablation).
    resolutions : sequence, optional
        Grids to render the atoms on (ints or tuples); default: the store's grid and twice it
        (only the store's grid for a flat SAE). Resolutions the SAE cannot render are skipped.
    device : str or torch.device, optional
        Where the SAE and the model run; default: the SAE's device.
    progress : bool
        Show progress bars.
    max_concepts : int or None
        Figures, pages, atoms, code maps and ablations for this many concepts, the most active first
        (``None``: all live concepts). Statistics cover every concept.
    n_rows : int, optional
        Use only the first ``n_rows`` rows of the store.
    batch_size : int
        Samples per encoder batch.
    trust : bool
        Allow unpickling when ``model`` is a neuraloperator checkpoint.
    dpi : int
        Resolution of the PNG figures.
    explanations : path-like, dict or Explanations, optional
        The output of ``saeno explain`` / :func:`saeno.explain_concepts` for this SAE: shown on each
        concept's page and as sortable columns of the index.
    evaluation : dict, bool or None
        The SAE's evaluation for the top of the report: the result of :func:`saeno.evaluate`
        (every resolution it holds is shown); ``None`` or ``True``: evaluate here on the exported
        rows at the store's resolution (with ``model``: loss recovered too); ``False``: none.
    model_name : str, optional
        How to name the model in the report (default: the name recorded with a zoo or saved model,
        else the path or zoo name given, else its class).
    inline : bool
        Write ``report.html`` as one self-contained file, every concept page a section of it and
        every figure inline (``data:`` URIs), instead of an index with a page per concept.

    Returns
    -------
    pathlib.Path
        Path of the written ``report.html``.

    Raises
    ------
    ExportError
        If the hook is ambiguous or missing, the model does not match the store, or the SAE
        cannot render its atoms.
    ShapeError
        If the SAE's channel count differs from the hook's.
    """
    data = compute_concepts(
        sae,
        store,
        hook=hook,
        model=model,
        n_top=n_top,
        resolutions=resolutions,
        device=device,
        progress=progress,
        max_concepts=max_concepts,
        n_rows=n_rows,
        batch_size=batch_size,
        trust=trust,
        evaluation=evaluation,
        model_name=model_name,
    )
    return write_export(data, out, dpi=dpi, explanations=explanations, inline=inline, progress=progress)


__all__ = [
    "DEFAULT_MAX_CONCEPTS",
    "EVALUATION_KEYS",
    "ConceptExport",
    "ExportError",
    "compute_concepts",
    "export_concepts",
    "model_display_name",
    "write_export",
]
