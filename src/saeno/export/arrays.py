"""``arrays.zarr``: the arrays behind an export (activations, statistics, atoms, code maps, effects)."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from saeno.export import stats as S
from saeno.export.ablation import (
    Effect,
)
from saeno.export.inputs import (
    ExportError,
    res_label,
)

GRID_DIMS = ("x", "y", "z")


def grid_coords(g: Any, shape: Sequence[int], dims: Sequence[str]) -> None:
    """Coordinate arrays of a grid on the unit torus: ``x = i / n`` (cell corners), one per axis."""
    for dim, n in zip(dims, shape):
        if dim not in g:
            arr = g.create_array(
                dim, data=np.arange(int(n), dtype=np.float64) / int(n), dimension_names=(dim,)
            )
            arr.attrs["long_name"] = f"{dim} position on the unit domain (grid point i at i / {n})"


def write_arrays(
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
        grid_coords(g, cm.shape[2:], cm_dims[2:])
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
        grid_coords(atoms_g, res, rdims)
        put(atoms_g, res_label(res), arr.astype(np.float32), ("exported", "channel", *rdims))
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
        grid_coords(eg, sample_shape[1:], ydims[3:])
        put(eg, "y_clean", y_clean, ydims)
        put(eg, "y_ablated", y_abl, ydims)
        put(eg, "concepts", np.asarray(order, dtype=np.int64), ("ablated",))
    with warnings.catch_warnings():  # zarr notes that consolidated metadata is not in the v3 spec
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(str(path))
