"""``export_concepts``: per-concept statistics, arrays, figures, ``concepts.json`` and ``report.html``.

The export folder::

    <out>/concepts.json        statistics of every concept (schema: saeno.export.schema)
    <out>/arrays.zarr          Zarr v3 group with the arrays behind it (see ``_write_arrays``)
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

import datetime as _dt
import json
import shutil
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from saeno.errors import SaenoError, ShapeError, StoreError
from saeno.export import figures as F
from saeno.export import stats as S
from saeno.export.ablation import (
    ABLATION_METHOD,
    ABLATION_METHOD_SUPERVISED,
    Effect,
    ablation_effect,
    is_supervised,
)
from saeno.export.explanations import attach_explanations, load_for_export
from saeno.export.html_report import page_path, write_report
from saeno.export.schema import SCHEMA_NAME, SCHEMA_VERSION, clean_number, validate_concepts
from saeno.store.checks import check_sae

DEFAULT_MAX_CONCEPTS = 16
FIG_SAMPLES = 3  # samples drawn in the code-map and effect figures (arrays keep all n_top)


class ExportError(SaenoError):
    """An export that cannot be made with the given SAE, store and model."""


# ---------------------------------------------------------------------------------------------
# inputs


def _load_sae(sae: Any) -> tuple[torch.nn.Module, str | None]:
    if isinstance(sae, torch.nn.Module):
        return sae, None
    from saeno.train.checkpoint import load_sae

    return load_sae(sae), str(sae)


def _open_store(store: Any) -> tuple[Any, str | None]:
    if isinstance(store, (str, Path)):
        from saeno.store.activation_store import ActivationStore

        return ActivationStore.open(store), str(store)
    where = getattr(store, "url", None) or getattr(store, "path", None)
    return store, None if where is None else str(where)


def _pick_hook(store: Any, sae: torch.nn.Module, hook: str | None) -> str:
    from saeno.store.checks import resolve_hook

    meta = getattr(sae, "metadata", None) or {}
    default = getattr(sae, "hook", None) or (meta.get("hook") if isinstance(meta, Mapping) else None)
    return resolve_hook(store, hook, default=default)


def _resolve_model(model: Any, trust: bool) -> tuple[Any | None, str | None]:
    """``(HookedOperator or None, display name)``."""
    if model is None:
        return None, None
    from saeno.evaluation import as_hooked
    from saeno.hooking.hooked_operator import HookedOperator

    name = str(model) if isinstance(model, (str, Path)) else None
    if not isinstance(model, (str, Path, HookedOperator, torch.nn.Module)):
        raise ExportError(f"model must be a zoo name, a path or a torch module, got {type(model)}")
    hooked = as_hooked(model, trust=trust)
    return hooked, name or model_display_name(hooked.model)


def model_display_name(model: torch.nn.Module) -> str:
    """The name a user gave the model: a zoo or saved model's recorded name, else its class.

    Looks at ``saeno_config["name"]`` (zoo and ``saeno.zoo.save_model`` models) and at a
    ``saeno_name`` attribute a user may set, before falling back to the class name.
    """
    for obj in (model, getattr(model, "fno", None)):
        if obj is None:
            continue
        name = getattr(obj, "saeno_name", None)
        cfg = getattr(obj, "saeno_config", None)
        if name:
            return str(name)
        if isinstance(cfg, Mapping) and cfg.get("name"):
            return str(cfg["name"])
    return type(model).__name__


def _check_fingerprint(hooked: Any, store: Any) -> str:
    from saeno.store.checks import check_model

    return check_model(store, hooked)


def _read(store: Any, name: str, rows: Sequence[int]) -> torch.Tensor:
    """Rows of a hook or of the ``x``/``y``/``y_pred`` arrays, in the order asked."""
    value = store.read(name, np.asarray([int(r) for r in rows], dtype=np.int64))
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))


def _to_device(a: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move to ``device``; real activations (float16 stores included) become float32, complex stay."""
    return a.to(device) if a.is_complex() else a.to(device=device, dtype=torch.float32)


def _has_array(store: Any, name: str) -> bool:
    try:
        return name in store
    except TypeError:
        return False


def _real(atoms: torch.Tensor) -> torch.Tensor:
    """Complex atoms as real ones: real and imaginary parts stacked along channels."""
    if atoms.is_complex():
        return torch.cat([atoms.real, atoms.imag], dim=1)
    return atoms


def _normalize_resolutions(
    resolutions: Any, grid: Sequence[int], ndim: int, flat: bool
) -> list[tuple[int, ...]]:
    if resolutions is None:
        base = tuple(int(g) for g in grid)
        return [base] if flat else [base, tuple(2 * g for g in base)]
    out = []
    for r in resolutions:
        res = (int(r),) * ndim if isinstance(r, (int, np.integer)) else tuple(int(v) for v in r)
        if len(res) == 1:
            res = res * ndim
        if len(res) != ndim or min(res) < 1:
            raise ExportError(
                f"resolution {r!r} does not fit a {ndim}D SAE: give an int or {ndim} positive ints"
            )
        out.append(res)
    return out


LabelCodes = tuple[dict[str, np.ndarray], dict[str, list[str]]]


def _params_and_labels(
    store: Any, n: int, coded: LabelCodes | None
) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Per-sample numeric parameters and categorical labels of the first ``n`` rows.

    ``coded`` is :func:`_store_label_codes` of the store. Labelled benchmarks store integer codes as ``params/label_<factor>`` with the category names in
    the dataset card (:func:`saeno.supervised.training.store_labels` reads both); these become
    labels, not numeric parameters. Otherwise ``store.labels`` maps a factor to its category names
    and the per-sample category is the integer code stored as the parameter of the same name
    (``params[factor][i]`` indexes the names); a factor whose ``labels`` entry already lists one
    value per sample is taken as is.
    """
    params = {str(k): np.asarray(v)[:n] for k, v in dict(getattr(store, "params", None) or {}).items()}
    labels: dict[str, list[str]] = {}
    if coded is not None:  # a labelled benchmark: codes in params/label_<factor>, names in the card
        label_codes, factors = coded
        for factor, cats in factors.items():
            labels[factor] = [cats[int(c)] for c in label_codes[factor][:n]]
            params.pop(f"label_{factor}", None)
        names: dict = {}
    else:
        names = dict(getattr(store, "labels", None) or {})
    for factor, cats in names.items():
        cats = [str(c) for c in cats] if not isinstance(cats, str) else []
        codes = params.get(str(factor))
        if codes is not None and codes.shape == (n,) and np.all(np.mod(codes, 1) == 0):
            ints = codes.astype(np.int64)
            if cats and ints.min() >= 0 and ints.max() < len(cats):
                labels[str(factor)] = [cats[i] for i in ints]
                params.pop(str(factor))
                continue
        if len(cats) >= n and n > len(set(cats)):
            labels[str(factor)] = cats[:n]
    numeric = {
        k: v.astype(np.float64)
        for k, v in params.items()
        if v.shape == (n,) and np.issubdtype(v.dtype, np.number)
    }
    return numeric, labels


def _store_label_codes(store: Any) -> LabelCodes | None:
    """Per-row label codes and category names of a labelled store, or None if it has none."""
    from saeno.errors import LabelError
    from saeno.store.checks import label_codes

    try:
        return label_codes(store)
    except (LabelError, AttributeError, KeyError, ValueError):
        return None


def _supervised_mask(sae: torch.nn.Module, coded: LabelCodes | None, n: int) -> torch.Tensor:
    """The ``(n, p)`` label mask of the first ``n`` rows, in the supervised SAE's concept order."""
    if coded is None:
        raise ExportError(
            "this is a supervised SAE, whose concepts are labels, but the store has "
            "no per-sample labels: export it with the labelled store it was trained on "
            "(captured from a labelled dataset such as burgers_labelled)"
        )
    codes, factors = coded
    missing = [f for f in sae.factors if f not in factors]
    if missing:
        raise ExportError(
            f"the SAE's label factors {missing} are not in the store (it has "
            f"{sorted(factors)}): export with the store the SAE was trained on"
        )
    mapped = {}
    for f, cats in sae.factors.items():
        names = [factors[f][int(c)] for c in codes[f][:n]]
        unknown = sorted(set(names) - set(cats))
        if unknown:
            raise ExportError(
                f"the store's rows carry {f} = {unknown}, which the SAE does not know "
                f"(its categories: {cats}): export with the store the SAE was "
                "trained on"
            )
        mapped[f] = np.array([cats.index(name) for name in names], dtype=np.int64)
    return sae.label_mask(mapped).cpu()


Encoder = Callable[[torch.Tensor, Sequence[int]], torch.Tensor]


def _encoder(sae: torch.nn.Module, mask: torch.Tensor | None) -> Encoder:
    """``encode(a, rows) -> (B, p, *grid)`` codes; contribution maps for a supervised SAE."""
    if mask is None:
        return lambda a, rows: sae.encode(a)
    from saeno.supervised.report import contribution_maps

    return lambda a, rows: contribution_maps(sae, a, mask[torch.as_tensor(list(rows))])


# ---------------------------------------------------------------------------------------------
# passes over the store


@torch.no_grad()
def _scan(
    sae: torch.nn.Module,
    encode: Encoder,
    store: Any,
    hook: str,
    n_rows: int,
    batch_size: int,
    device: torch.device,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Encode every row: per-sample activations ``(N, p)``, non-zero code counts, points per sample."""
    from tqdm.auto import tqdm

    acts = np.zeros((n_rows, sae.n_concepts), dtype=np.float32)
    nonzero = None
    n_points = 1
    for start in tqdm(
        range(0, n_rows, batch_size), desc=f"encode {hook}", disable=not progress, unit="batch"
    ):
        rows = list(range(start, min(start + batch_size, n_rows)))
        z = encode(_to_device(_read(store, hook, rows), device), rows)
        acts[rows[0] : rows[-1] + 1] = S.concept_activations(z).float().cpu().numpy()
        nz = S.nonzero_points(z)
        if nz is not None:
            nonzero = nz.cpu().numpy() if nonzero is None else nonzero + nz.cpu().numpy()
            n_points = int(np.prod(z.shape[2:]))
    return acts, nonzero, n_points


@torch.no_grad()
def _code_maps(
    encode: Encoder,
    store: Any,
    hook: str,
    concepts: Sequence[int],
    top_rows: np.ndarray,
    device: torch.device,
    batch_size: int,
) -> np.ndarray:
    """``(n_exp, n_top, *code_grid)`` code maps of each concept on its top rows (zeros where -1)."""
    wanted = sorted({int(r) for r in top_rows.ravel() if r >= 0})
    codes: dict[int, torch.Tensor] = {}
    for start in range(0, len(wanted), batch_size):
        rows = wanted[start : start + batch_size]
        z = encode(_to_device(_read(store, hook, rows), device), rows).cpu()
        for i, r in enumerate(rows):
            codes[r] = z[i]
    shape = next(iter(codes.values())).shape[1:] if codes else ()
    out = np.zeros((len(concepts), top_rows.shape[1], *shape), dtype=np.float32)
    for i, k in enumerate(concepts):
        for j, r in enumerate(top_rows[i]):
            if r >= 0:
                out[i, j] = codes[int(r)][k].numpy()
    return out


@torch.no_grad()
def _render_atoms(
    sae: torch.nn.Module, concepts: Sequence[int], resolutions: Sequence[tuple[int, ...]]
) -> tuple[dict[tuple[int, ...], np.ndarray], np.ndarray | None]:
    """Atoms of the chosen concepts at each resolution the SAE can render (others are skipped).

    Returns ``({resolution: (n, C, *grid)}, vectors)`` where ``vectors`` is ``(n, C)`` for an SAE
    whose concepts are channel vectors (the pointwise SAE: rendered on a grid, such a concept is a
    point mass at the origin), else None.
    """
    idx = torch.as_tensor(list(concepts), dtype=torch.long)

    def pick(rendered: torch.Tensor) -> np.ndarray:
        return _real(rendered.detach().index_select(0, idx.to(rendered.device))).float().cpu().numpy()

    vectors = None
    try:
        plain = sae.concepts(None)
    except (SaenoError, ValueError, RuntimeError, TypeError):
        plain = None
    if plain is not None and plain.ndim == 2:
        vectors = pick(plain)
    atoms = {}
    for res in resolutions:
        try:
            rendered = sae.concepts(res)
        except (SaenoError, ValueError, RuntimeError):
            continue
        atoms[res] = pick(rendered)
    if not atoms:
        raise ExportError(
            f"the SAE could not render its concepts at any of {list(resolutions)}: "
            "pass resolutions= (--resolutions) with its training grid"
        )
    return atoms, vectors


@torch.no_grad()
def _split_point_mass(
    sae: torch.nn.Module, concepts: Sequence[int], atoms: Mapping[tuple[int, ...], np.ndarray]
) -> tuple[dict[tuple[int, ...], np.ndarray], np.ndarray, str] | None:
    """Split rendered atoms into a smooth part and a pointwise part at the origin.

    An SAE-FNO concept rendered on N points is a resolution-free function ``kappa_k`` (the spectral
    kernel) plus a channel vector at the origin point whose value grows like N (a point mass).
    Drawn together, the point dominates the colour scale. The split uses only the renderings: at two
    grids ``N1 < N2`` the kernel's origin value is the same, so ``d = atom_2(0) - atom_1(0)`` is the
    growth of the point mass and the point part on N points is ``d * N / (N2 - N1)``.

    Returns ``({resolution: smooth atoms}, vectors (n, C), unit)`` with the pointwise vectors as
    their value on one cell of the SAE's mode grid (``G`` cells, when the SAE stores
    ``spectral_gain``) or else on the first grid; None when the atoms have no point part.
    """
    if not atoms:
        return None
    first = min(atoms, key=lambda r: int(np.prod(r)))
    second = tuple(2 * g for g in first)
    if second in atoms:
        a2 = atoms[second]
    else:
        try:
            rendered = sae.concepts(second)
        except (SaenoError, ValueError, RuntimeError):
            return None
        idx = torch.as_tensor(list(concepts), dtype=torch.long)
        a2 = _real(rendered.index_select(0, idx.to(rendered.device))).float().cpu().numpy()
    a1 = atoms[first]
    origin = (slice(None), slice(None), *([0] * len(first)))
    n1, n2 = int(np.prod(first)), int(np.prod(second))
    d = (a2[origin].astype(np.float64) - a1[origin]) / (n2 - n1)  # point part per grid point
    scale = max(float(np.abs(a1).max()), 1e-30)
    if float(np.abs(d).max()) * n1 <= 1e-6 * scale:
        return None
    smooth = {}
    for res, a in atoms.items():
        part = a.astype(np.float64).copy()
        part[origin] -= d * int(np.prod(res))
        smooth[res] = part.astype(np.float32)
    gain = getattr(sae, "spectral_gain", None)
    if gain:
        return smooth, (d * float(gain)).astype(np.float32), f"one mode-grid cell (G = {int(gain)})"
    return smooth, (d * n1).astype(np.float32), f"one cell of the {_res_label(first)} grid"


# ---------------------------------------------------------------------------------------------
# output


def _res_label(res: Sequence[int]) -> str:
    return "x".join(str(int(r)) for r in res)


GRID_DIMS = ("x", "y", "z")


def _grid_coords(g: Any, shape: Sequence[int], dims: Sequence[str]) -> None:
    """Coordinate arrays of a grid on the unit torus: ``x = i / n`` (cell corners), one per axis."""
    for dim, n in zip(dims, shape):
        if dim not in g:
            arr = g.create_array(
                dim, data=np.arange(int(n), dtype=np.float64) / int(n), dimension_names=(dim,)
            )
            arr.attrs["long_name"] = f"{dim} position on the unit domain (grid point i at i / {n})"


def _write_arrays(
    path: Path,
    *,
    acts: np.ndarray,
    st: S.ConceptStats,
    concepts: Sequence[int],
    top_rows: np.ndarray,
    code_maps: np.ndarray,
    atoms: Mapping[tuple[int, ...], np.ndarray],
    spectra: np.ndarray,
    radial: np.ndarray,
    corr: np.ndarray,
    effects: Mapping[int, Effect],
    vectors: np.ndarray | None = None,
    grid: Sequence[int] = (),
    pointwise: np.ndarray | None = None,
) -> None:
    """Write ``arrays.zarr``, a Zarr v3 group that ``xarray.open_zarr`` and ``open_datatree`` read.

    Every array names its dimensions (Zarr v3 ``dimension_names``) and every dimension has a
    coordinate array of the same name. ``N`` rows, ``p`` concepts, ``n`` exported concepts::

        activations (sample, concept)              per-sample activation of every concept
        sample_density, point_density, mean_activation (concept)  (point_density NaN: flat SAE)
        histogram_counts (concept, bin), histogram_edges (concept, bin_edge)
        exported (exported)                        concept index of each exported concept
        top_rows (exported, top)                   store rows of the top samples (-1: fewer)
        code_maps (exported, top, x, y[, z])       z_k(x) on those rows ((exported, top): flat SAE)
        correlation (exported, exported_other)     Pearson correlation of their activations
        spectra (exported, kx, ky[, kz]), radial_spectra (exported, k)   at the finest grid,
                                                   of the smooth part (see atom_pointwise)
        atom_vectors (exported, channel)           channel vectors (pointwise SAE only)
        atom_pointwise (exported, channel)         SAE-FNO: the pointwise part of each atom, as
                                                   drawn in the report (attribute ``unit``)
        atoms/<H>x<W> (exported, channel, x_<H>, y_<W>)   atoms rendered at each resolution
        effect/y_clean, effect/y_ablated (ablated, top, channel, x, y)  with effect/ablated the
                                                   concept indices
    """
    import zarr

    if path.exists():
        shutil.rmtree(path)
    g = zarr.open_group(str(path), mode="w")
    g.attrs["description"] = (
        "saeno concept export: per-concept arrays; the 'exported' coordinate "
        "lists the concepts (axis 0) of atoms, spectra, code_maps, top_rows "
        "and effect"
    )

    def put(group: Any, name: str, data: np.ndarray, dims: Sequence[str], **attrs: Any) -> None:
        data = np.asarray(data)
        if data.ndim != len(dims):
            raise ExportError(f"internal: array {name} {data.shape} does not fit dims {dims}")
        arr = group.create_array(name, data=data, dimension_names=tuple(dims))
        if attrs:
            arr.attrs.update(attrs)

    n_rows, p = acts.shape
    n_top = top_rows.shape[1] if top_rows.ndim == 2 else 0
    put(g, "sample", np.arange(n_rows, dtype=np.int64), ("sample",), long_name="store row")
    put(g, "concept", np.arange(p, dtype=np.int64), ("concept",))
    put(
        g,
        "exported",
        np.asarray(concepts, dtype=np.int64),
        ("exported",),
        long_name="concept index of the exported concepts",
    )
    put(g, "exported_other", np.asarray(concepts, dtype=np.int64), ("exported_other",))
    put(g, "top", np.arange(n_top, dtype=np.int64), ("top",), long_name="rank among top samples")
    put(g, "activations", acts.astype(np.float32), ("sample", "concept"))
    put(g, "sample_density", st.sample_density, ("concept",))
    pd = st.point_density if st.point_density is not None else np.full(p, np.nan)
    put(g, "point_density", pd, ("concept",))
    put(g, "mean_activation", st.mean_activation, ("concept",))
    n_bins = st.hist_counts.shape[1]
    put(g, "bin", np.arange(n_bins, dtype=np.int64), ("bin",))
    put(g, "bin_edge", np.arange(n_bins + 1, dtype=np.int64), ("bin_edge",))
    put(g, "histogram_counts", st.hist_counts, ("concept", "bin"))
    put(g, "histogram_edges", st.hist_edges, ("concept", "bin_edge"))
    put(g, "top_rows", top_rows.astype(np.int64), ("exported", "top"))
    cm = code_maps.astype(np.float32)
    cm_dims = ("exported", "top", *GRID_DIMS[: cm.ndim - 2])
    if cm.ndim > 2:
        _grid_coords(g, cm.shape[2:], cm_dims[2:])
    put(g, "code_maps", cm, cm_dims)
    put(g, "correlation", corr.astype(np.float32), ("exported", "exported_other"))
    channel_count = None
    for arr in list(atoms.values())[:1]:
        channel_count = arr.shape[1]
    if vectors is not None:
        channel_count = vectors.shape[1]
    if channel_count is not None:
        put(g, "channel", np.arange(channel_count, dtype=np.int64), ("channel",))
    if vectors is not None:
        put(g, "atom_vectors", vectors.astype(np.float32), ("exported", "channel"))
    if pointwise is not None:
        put(
            g,
            "atom_pointwise",
            pointwise.astype(np.float32),
            ("exported", "channel"),
            description="pointwise part of each SAE-FNO atom (the smooth part is the atom "
            "rendered on N points minus N/G times this at the origin)",
        )
    sp = spectra.astype(np.float32)
    if sp.ndim >= 2:
        kd = tuple(f"k{d}" for d in GRID_DIMS[: sp.ndim - 1])
        for dim, size in zip(kd, sp.shape[1:]):
            put(
                g,
                dim,
                np.fft.fftshift(np.fft.fftfreq(size, d=1.0 / size)),
                (dim,),
                long_name=f"frequency along {dim[1:]} (cycles per domain), zero in the middle",
            )
        put(g, "spectra", sp, ("exported", *kd))
        put(g, "k", np.arange(radial.shape[1], dtype=np.int64), ("k",), long_name="|frequency| shell")
        put(g, "radial_spectra", radial.astype(np.float32), ("exported", "k"))
    atoms_g = g.require_group("atoms")
    if atoms:
        put(atoms_g, "exported", np.asarray(concepts, dtype=np.int64), ("exported",))
        put(atoms_g, "channel", np.arange(channel_count or 0, dtype=np.int64), ("channel",))
    for res, arr in atoms.items():
        rdims = tuple(f"{d}_{n}" for d, n in zip(GRID_DIMS, res))  # x_32: x on the 32-point grid
        _grid_coords(atoms_g, res, rdims)
        put(atoms_g, _res_label(res), arr.astype(np.float32), ("exported", "channel", *rdims))
    if effects:
        eg = g.require_group("effect")
        order = [k for k in concepts if k in effects]
        width = max(effects[k].y_clean.shape[0] for k in order)
        sample_shape = effects[order[0]].y_clean.shape[1:]
        y_clean = np.full((len(order), width, *sample_shape), np.nan, dtype=np.float32)
        y_abl = np.full_like(y_clean, np.nan)
        for i, k in enumerate(order):
            n = effects[k].y_clean.shape[0]
            y_clean[i, :n] = effects[k].y_clean
            y_abl[i, :n] = effects[k].y_ablated
        ydims = ("ablated", "top", "out_channel", *GRID_DIMS[: len(sample_shape) - 1])
        put(
            eg,
            "ablated",
            np.asarray(order, dtype=np.int64),
            ("ablated",),
            long_name="concept index of each ablation",
        )
        put(eg, "top", np.arange(width, dtype=np.int64), ("top",))
        put(eg, "out_channel", np.arange(sample_shape[0], dtype=np.int64), ("out_channel",))
        _grid_coords(eg, sample_shape[1:], ydims[3:])
        put(eg, "y_clean", y_clean, ydims)
        put(eg, "y_ablated", y_abl, ydims)
        put(eg, "concepts", np.asarray(order, dtype=np.int64), ("ablated",))
    with warnings.catch_warnings():  # zarr notes that consolidated metadata is not in the v3 spec
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(str(path))


def _concept_name(sae: torch.nn.Module, k: int) -> tuple[str, str | None]:
    names = getattr(sae, "concept_names", None)
    if isinstance(names, Sequence) and not isinstance(names, str) and len(names) == sae.n_concepts:
        return f"concept {k}", str(names[k])
    return f"concept {k}", None


def _figure_title(sae: torch.nn.Module, k: int) -> str:
    """``concept k`` or ``concept k: label`` for figure titles."""
    name, label = _concept_name(sae, k)
    return f"{name}: {label}" if label else name


def _effect_json(eff: Effect, rows: Sequence[int]) -> dict:
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


def _static_figures(
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
    :func:`_split_point_mass`). Captions of the figures go into ``notes``.
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
        name: _read(store, name, show).float().numpy() if fields[name] and show else None
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
    x_all = _read(store, "x", rows).float().numpy() if fields["x"] and rows else None
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


def _effect_figure(stem: Path, k: int, rows: list[int], eff: Effect, dpi: int, title: str) -> Path:
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


def _concept_entry(
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
    name, label = _concept_name(sae, k)
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
        "effect": None if effect is None else _effect_json(effect, top_rows),
        "params": {
            pname: {key: None if v is None else clean_number(v) for key, v in vals.items()}
            for pname, vals in enrichment.items()
        },
        "labels": S.label_enrichment(top_rows, labels) if top_rows else {},
        "figures": figures or {},
        "page": page_path(k) if figures is not None else None,
    }


def _sae_config(sae: torch.nn.Module) -> dict:
    try:
        cfg = sae.config()
    except (AttributeError, NotImplementedError):
        cfg = {}
    return json.loads(json.dumps(cfg, default=str))


#: metrics of :func:`saeno.evaluate` shown at the top of the report, in order
EVALUATION_KEYS = (
    "output_change",
    "explained_variance",
    "explained_variance_mean_field",
    "rel_l2",
    "loss_recovered",
    "splice_added_error",
    "splice_added_abs",
    "dead_fraction",
    "L0_concepts",
    "L0_per_point",
    "domain_fraction",
)


def _evaluation(
    evaluation: Mapping[str, Any] | bool | None,
    sae: torch.nn.Module,
    store: Any,
    hook: str,
    hooked: Any,
    n: int,
    batch_size: int,
    progress: bool,
) -> dict | None:
    """The report's ``evaluation`` block from :func:`saeno.evaluate`'s result (or computed here).

    ``{"source": "given" | "computed", "results": [{"grid", "samples", metrics..., "skipped"}],
    "note": str | None}``; None when ``evaluation`` is False.
    """
    if evaluation is False:
        return None
    source = "given"
    note = None
    if evaluation is None or evaluation is True:
        from saeno.evaluation import evaluate

        source = "computed"
        try:
            evaluation = evaluate(
                sae,
                store,
                hook,
                hooked=hooked,
                rows=np.arange(n),
                batch_size=min(batch_size, 16),
                progress=progress,
            )
        except (SaenoError, AttributeError, TypeError, KeyError) as exc:
            # a store or SAE that evaluate cannot read: the report says so instead of failing
            return {"source": source, "results": [], "note": f"not evaluated: {exc}"}
        if hooked is None:
            note = "no model was given, so loss recovered and error added are not computed"
    if not isinstance(evaluation, Mapping) or "results" not in evaluation:
        raise ExportError(
            "evaluation must be the dict saeno.evaluate returns (with 'results'), "
            "True/None to evaluate here, or False"
        )
    rows = []
    for res in evaluation["results"]:
        row: dict[str, Any] = {
            "grid": [int(g) for g in res.get("grid", [])],
            "training_resolution": bool(res.get("training_resolution", False)),
        }
        if "skipped" in res:
            row["skipped"] = str(res["skipped"])
        else:
            for key in EVALUATION_KEYS:
                v = res.get(key)
                row[key] = None if v is None else clean_number(v)
            samples = res.get("n_samples", res.get("samples"))
            row["samples"] = None if samples is None else int(samples)
        rows.append(row)
    return {"source": source, "results": rows, "note": note}


# ---------------------------------------------------------------------------------------------
# the entry point


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
    from tqdm.auto import tqdm

    if n_top < 1:
        raise ExportError(f"n_top must be at least 1, got {n_top}")
    if max_concepts is not None and max_concepts < 0:
        raise ExportError(f"max_concepts must be >= 0 or None, got {max_concepts}")
    sae, sae_path = _load_sae(sae)
    store, store_path = _open_store(store)
    hook = _pick_hook(store, sae, hook)
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
    dev = (
        torch.device(device)
        if device is not None
        else next((p.device for p in sae.parameters()), torch.device("cpu"))
    )
    sae = sae.to(dev).eval()
    hooked, resolved_name = _resolve_model(model, trust)
    model_name = model_name or resolved_name
    check_sae(store, sae)  # as evaluate: an SAE of another model's activations is refused
    model_fp = None
    if hooked is not None:
        model_fp = _check_fingerprint(hooked, store)
        hooked.model.to(dev).eval()
    ndim = int(sae.ndim) if sae.ndim is not None else len(grid)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fig_dir = out / "figures"
    if fig_dir.exists():
        shutil.rmtree(fig_dir)
    pages_dir = out / "concepts"
    if pages_dir.exists():
        shutil.rmtree(pages_dir)

    # statistics of every concept
    supervised = is_supervised(sae)
    coded = _store_label_codes(store)  # read once: the supervised mask and the label enrichment
    mask = _supervised_mask(sae, coded, n) if supervised else None
    encode = _encoder(sae, None if mask is None else mask.to(dev))
    acts, nonzero, n_points = _scan(sae, encode, store, hook, n, batch_size, dev, progress)
    flat = nonzero is None
    st = S.summarize(acts, nonzero, n_points)
    p = acts.shape[1]
    order = np.argsort(st.rank)
    live = [int(k) for k in order if st.sample_density[k] > 0]
    chosen = live if max_concepts is None else live[:max_concepts]
    tops = {k: S.top_examples(acts[:, k], n_top) for k in range(p)}
    correlated = S.top_correlated(acts, range(p))
    params, labels = _params_and_labels(store, n, coded)

    top_rows = np.full((len(chosen), n_top), -1, dtype=np.int64)
    for i, k in enumerate(chosen):
        for j, (r, _) in enumerate(tops[k]):
            top_rows[i, j] = r

    # arrays and figures of the chosen concepts
    res_list = _normalize_resolutions(resolutions, grid, ndim, flat)
    atoms, vectors = _render_atoms(sae, chosen, res_list) if chosen else ({}, None)
    centre = not (flat or supervised)
    split = _split_point_mass(sae, chosen, atoms) if chosen and centre and vectors is None else None
    smooth = split[0] if split is not None else atoms  # what the atom figures and spectra show
    finest = max(atoms, key=lambda r: int(np.prod(r))) if atoms else None
    spectra = np.stack([F.amplitude_spectrum(a) for a in smooth[finest]]) if chosen else np.zeros((0,))
    radial = np.stack([F.radial_spectrum(s) for s in spectra]) if chosen else np.zeros((0,))
    code_maps = (
        _code_maps(encode, store, hook, chosen, top_rows, dev, batch_size) if chosen else np.zeros((0, n_top))
    )
    corr = S.correlation_matrix(acts[:, chosen]) if chosen else np.zeros((0, 0))
    fields = {name: _has_array(store, name) for name in ("x", "y", "y_pred")}

    effects: dict[int, Effect] = {}
    ablation_reason = None
    if hooked is None:
        ablation_reason = "no model was given (pass --model / model= to compute ablation effects)"
    elif not fields["x"]:
        ablation_reason = "the store has no model inputs 'x' to run the model on"
    elif not chosen:
        ablation_reason = "no concept is active on the exported samples"

    clean: dict[int, torch.Tensor] = {}  # clean model output of every top row, one pass
    if ablation_reason is None:
        wanted = sorted({int(r) for r in top_rows.ravel() if r >= 0})
        with torch.no_grad():
            for start in range(0, len(wanted), batch_size):
                rows = wanted[start : start + batch_size]
                y_hat = hooked(_read(store, "x", rows).to(dev, torch.float32))
                clean.update(zip(rows, y_hat))
    fig_paths: dict[int, dict[str, str | None]] = {}
    fig_notes: dict[int, dict[str, str]] = {}
    for i, k in enumerate(tqdm(chosen, desc="concepts", disable=not progress, unit="concept")):
        rows = [int(r) for r in top_rows[i] if r >= 0]
        stem = out / f"figures/concept_{k:05d}"
        figs = _static_figures(
            stem,
            k,
            rows,
            store=store,
            fields=fields,
            st=st,
            acts=acts,
            code_maps=code_maps[i],
            atoms={_res_label(r): a[i] for r, a in smooth.items()},
            vector=None if vectors is None else vectors[i],
            spectrum=(spectra[i], _res_label(finest)),
            flat=flat,
            dpi=dpi,
            title=_figure_title(sae, k),
            centre=centre,
            point=None if split is None else (split[1][i], split[2]),
            notes=fig_notes.setdefault(k, {}),
        )
        figs["effect"] = None
        if ablation_reason is None and rows:
            x = _read(store, "x", rows).to(dev, torch.float32)
            y = _read(store, "y", rows).to(dev, torch.float32) if fields["y"] else None
            effects[k] = ablation_effect(
                hooked,
                sae,
                hook,
                k,
                x,
                y,
                y_clean=torch.stack([clean[r] for r in rows]),
                labels=None if mask is None else mask[rows].to(dev),
            )
            figs["effect"] = _effect_figure(stem, k, rows, effects[k], dpi, _figure_title(sae, k))
        fig_paths[k] = {
            key: None if v is None else Path(v).relative_to(out).as_posix() for key, v in figs.items()
        }
    overview = F.plot_density_overview(
        st.sample_density, out / "figures/density_overview.png", title="all concepts", dpi=dpi
    )

    _write_arrays(
        out / "arrays.zarr",
        acts=acts,
        st=st,
        concepts=chosen,
        top_rows=top_rows,
        code_maps=code_maps,
        atoms=atoms,
        spectra=spectra,
        radial=radial,
        corr=corr,
        effects=effects,
        vectors=vectors,
        grid=grid,
        pointwise=None if split is None else split[1],
    )

    concepts_json = [
        _concept_entry(
            k,
            sae=sae,
            st=st,
            acts=acts,
            top=tops[k],
            correlated=correlated[k],
            effect=effects.get(k),
            params=params,
            labels=labels,
            figures=fig_paths.get(k),
            flat=flat,
        )
        for k in range(p)
    ]
    for entry in concepts_json:
        entry["figure_notes"] = fig_notes.get(entry["index"], {})
    evaluation_json = _evaluation(evaluation, sae, store, hook, hooked, n, batch_size, progress)

    from saeno import __version__

    doc = {
        "schema": SCHEMA_NAME,
        "version": SCHEMA_VERSION,
        "saeno_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "sae": {
            "architecture": str(_sae_config(sae).get("architecture", type(sae).__name__)),
            "n_concepts": int(p),
            "in_channels": int(sae.in_channels),
            "ndim": ndim,
            "config": _sae_config(sae),
            "path": sae_path,
        },
        "store": {
            "path": store_path,
            "hook": hook,
            "fingerprint": getattr(store, "fingerprint", None),
            "grid": list(grid),
            "n_rows": int(n),
        },
        "model": None if hooked is None else {"name": str(model_name), "fingerprint": model_fp},
        "ablation": {
            "done": bool(effects),
            "reason": ablation_reason,
            "method": ABLATION_METHOD_SUPERVISED if supervised else ABLATION_METHOD,
        },
        "definitions": dict(S.DEFINITIONS, **(S.DEFINITIONS_SUPERVISED if supervised else {})),
        "resolutions": [list(r) for r in atoms],
        "arrays": "arrays.zarr",
        "figures_for": [int(k) for k in chosen],
        "overview": {"density_figure": str(overview.relative_to(out).as_posix())},
        "evaluation": evaluation_json,
        "concepts": concepts_json,
    }
    if explanations is not None:
        attach_explanations(doc, load_for_export(explanations, p, hook))
    validate_concepts(doc)
    (out / "concepts.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return write_report(doc, out, inline=inline)


__all__ = ["DEFAULT_MAX_CONCEPTS", "EVALUATION_KEYS", "ExportError", "export_concepts", "model_display_name"]
