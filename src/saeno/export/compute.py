"""The computing half of an export: statistics of every concept, atoms, code maps and ablation effects of
the chosen ones, and the evaluation (:func:`compute_concepts`, nothing written)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from saeno.errors import ShapeError, StoreError
from saeno.export import figures as F
from saeno.export import stats as S
from saeno.export.ablation import (
    Effect,
    ablation_effect,
    is_supervised,
)
from saeno.export.evaluation_block import evaluation_block
from saeno.export.inputs import (
    DEFAULT_MAX_CONCEPTS,
    ExportError,
    check_fingerprint,
    has_array,
    normalize_resolutions,
    open_store,
    pick_hook,
    read_rows,
    resolve_model,
    resolve_sae,
)
from saeno.export.passes import compute_code_maps, render_atoms, scan, split_point_mass
from saeno.export.supervised_codes import (
    make_encoder,
    params_and_labels,
    store_label_codes,
    supervised_mask,
)
from saeno.store.checks import check_sae
from saeno.zoo.fast_forward import fast_forward


@dataclass
class ConceptExport:
    """Everything :func:`compute_concepts` computes, before :func:`write_export` writes anything.

    Statistics cover every concept; ``chosen`` (the ``max_concepts`` most active live concepts) have
    their top rows, code maps, atoms, spectra and ablation effects (row ``i`` of each array is
    concept ``chosen[i]``).
    """

    sae: torch.nn.Module
    sae_path: str | None
    store: Any
    store_path: str | None
    hook: str
    grid: tuple[int, ...]
    ndim: int
    n: int
    n_top: int
    device: torch.device
    hooked: Any
    model_name: str | None
    model_fp: str | None
    supervised: bool
    mask: torch.Tensor | None
    st: S.ConceptStats
    acts: np.ndarray
    flat: bool
    chosen: list[int]
    tops: dict[int, Any]
    correlated: Any
    params: dict[str, np.ndarray]
    labels: dict[str, list[str]]
    top_rows: np.ndarray
    atoms: dict[tuple[int, ...], np.ndarray]
    vectors: np.ndarray | None
    split: Any
    smooth: dict[tuple[int, ...], np.ndarray]
    finest: tuple[int, ...] | None
    spectra: np.ndarray
    radial: np.ndarray
    code_maps: np.ndarray
    corr: np.ndarray
    fields: dict[str, bool]
    effects: dict[int, Effect] = field(default_factory=dict)
    ablation_reason: str | None = None
    evaluation: dict | None = None

    @property
    def centre(self) -> bool:
        """Whether atoms are drawn centred (not for flat or supervised SAEs)."""
        return not (self.flat or self.supervised)


def compute_concepts(
    sae: Any,
    store: Any,
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
    evaluation: Mapping[str, Any] | bool | None = None,
    model_name: str | None = None,
) -> ConceptExport:
    """The computing half of :func:`export_concepts` (same arguments): statistics, atoms, code maps,
    ablation effects and the evaluation, without writing anything."""
    from tqdm.auto import tqdm

    from saeno.evaluation import resolve_device

    if n_top < 1:
        raise ExportError(f"n_top must be at least 1, got {n_top}")
    if max_concepts is not None and max_concepts < 0:
        raise ExportError(f"max_concepts must be >= 0 or None, got {max_concepts}")
    sae, sae_path = resolve_sae(sae)
    store, store_path = open_store(store)
    hook = pick_hook(store, sae, hook)
    arr = store[hook]
    total = int(getattr(store, "n_rows", arr.shape[0]))
    n = total if n_rows is None else min(int(n_rows), total)
    if n < 1:
        raise StoreError(f"the store has no rows for {hook!r}: capture some samples first")
    if int(arr.shape[1]) != int(sae.in_channels):
        raise ShapeError(
            f"the SAE reads {sae.in_channels} channels but hook {hook!r} has "
            f"{arr.shape[1]}: pass the store and hook the SAE was trained on"
        )
    grid = tuple(int(g) for g in arr.shape[2:])
    dev = resolve_device(sae, device)
    sae = sae.to(dev).eval()
    hooked, resolved_name = resolve_model(model, trust)
    check_sae(store, sae)  # as evaluate: an SAE of another model's activations is refused
    model_fp = None
    if hooked is not None:
        model_fp = check_fingerprint(hooked, store)
        hooked.model.to(dev).eval()
    ndim = int(sae.ndim) if sae.ndim is not None else len(grid)

    # statistics of every concept
    supervised = is_supervised(sae)
    coded = store_label_codes(store)  # read once: the supervised mask and the label enrichment
    mask = supervised_mask(sae, coded, n) if supervised else None
    encode = make_encoder(sae, None if mask is None else mask.to(dev))
    acts, nonzero, n_points = scan(sae, encode, store, hook, n, batch_size, dev, progress)
    flat = nonzero is None
    st = S.summarize(acts, nonzero, n_points)
    p = acts.shape[1]
    order = np.argsort(st.rank)
    live = [int(k) for k in order if st.sample_density[k] > 0]
    chosen = live if max_concepts is None else live[:max_concepts]
    tops = {k: S.top_examples(acts[:, k], n_top) for k in range(p)}
    correlated = S.top_correlated(acts, range(p))
    params, labels = params_and_labels(store, n, coded)

    top_rows = np.full((len(chosen), n_top), -1, dtype=np.int64)
    for i, k in enumerate(chosen):
        for j, (r, _) in enumerate(tops[k]):
            top_rows[i, j] = r

    # atoms, spectra and code maps of the chosen concepts
    res_list = normalize_resolutions(resolutions, grid, ndim, flat)
    atoms, vectors = render_atoms(sae, chosen, res_list) if chosen else ({}, None)
    centre = not (flat or supervised)
    split = split_point_mass(sae, chosen, atoms) if chosen and centre and vectors is None else None
    smooth = split[0] if split is not None else atoms  # what the atom figures and spectra show
    finest = max(atoms, key=lambda r: int(np.prod(r))) if atoms else None
    spectra = np.stack([F.amplitude_spectrum(a) for a in smooth[finest]]) if chosen else np.zeros((0,))
    radial = np.stack([F.radial_spectrum(s) for s in spectra]) if chosen else np.zeros((0,))
    code_maps = (
        compute_code_maps(encode, store, hook, chosen, top_rows, dev, batch_size)
        if chosen
        else np.zeros((0, n_top))
    )
    corr = S.correlation_matrix(acts[:, chosen]) if chosen else np.zeros((0, 0))
    fields = {name: has_array(store, name) for name in ("x", "y", "y_pred")}
    data = ConceptExport(
        sae=sae,
        sae_path=sae_path,
        store=store,
        store_path=store_path,
        hook=hook,
        grid=grid,
        ndim=ndim,
        n=n,
        n_top=n_top,
        device=dev,
        hooked=hooked,
        model_name=model_name or resolved_name,
        model_fp=model_fp,
        supervised=supervised,
        mask=mask,
        st=st,
        acts=acts,
        flat=flat,
        chosen=chosen,
        tops=tops,
        correlated=correlated,
        params=params,
        labels=labels,
        top_rows=top_rows,
        atoms=atoms,
        vectors=vectors,
        split=split,
        smooth=smooth,
        finest=finest,
        spectra=spectra,
        radial=radial,
        code_maps=code_maps,
        corr=corr,
        fields=fields,
    )
    # the FNO's passes on the fast execution of its convolutions (the same function up to the order
    # of floating-point sums, saeno.zoo.fast_forward)
    with fast_forward(hooked.model) if hooked is not None else contextlib.nullcontext():
        data.ablation_reason = _ablate(data, batch_size, progress, tqdm)
    data.evaluation = evaluation_block(evaluation, sae, store, hook, hooked, n, batch_size, progress)
    return data


def _ablate(data: ConceptExport, batch_size: int, progress: bool, tqdm: Any) -> str | None:
    """Fill ``data.effects`` (each chosen concept ablated on its top rows); the reason when skipped."""
    if data.hooked is None:
        return "no model was given (pass --model / model= to compute ablation effects)"
    if not data.fields["x"]:
        return "the store has no model inputs 'x' to run the model on"
    if not data.chosen:
        return "no concept is active on the exported samples"
    dev, store = data.device, data.store
    clean: dict[int, torch.Tensor] = {}  # clean model output of every top row, one pass
    wanted = sorted({int(r) for r in data.top_rows.ravel() if r >= 0})
    with torch.no_grad():
        for start in range(0, len(wanted), batch_size):
            rows = wanted[start : start + batch_size]
            y_hat = data.hooked(read_rows(store, "x", rows).to(dev, torch.float32))
            clean.update(zip(rows, y_hat))
    for i, k in enumerate(tqdm(data.chosen, desc="ablate", disable=not progress, unit="concept")):
        rows = [int(r) for r in data.top_rows[i] if r >= 0]
        if not rows:
            continue
        x = read_rows(store, "x", rows).to(dev, torch.float32)
        y = read_rows(store, "y", rows).to(dev, torch.float32) if data.fields["y"] else None
        data.effects[k] = ablation_effect(
            data.hooked,
            data.sae,
            data.hook,
            k,
            x,
            y,
            y_clean=torch.stack([clean[r] for r in rows]),
            labels=None if data.mask is None else data.mask[rows].to(dev),
        )
    return None


__all__ = ["ConceptExport", "compute_concepts"]
