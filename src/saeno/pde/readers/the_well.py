"""The Well HDF5 files (one file per set of simulation parameters).

Layout: root attrs ``dataset_name``, ``n_spatial_dims``, ``simulation_parameters``; groups ``dimensions/``
(coordinates and ``time``), ``boundary_conditions/``, ``scalars/`` (simulation parameters), and ``t0_fields/``
(scalar fields ``(n_traj, T, *grid)``), ``t1_fields/`` (vectors ``(n_traj, T, *grid, d)``), ``t2_fields/``
(tensors ``(n_traj, T, *grid, d, d)``), channels last. A field whose ``sample_varying`` or ``time_varying``
attribute is false lacks that axis and is broadcast. Channels are stacked in the order t0, t1, t2 and by
field name (sorted). A static field (``time_varying`` false: a mask, a coefficient map) is an input only:
it is appended to ``x`` after the time-varying fields and never copied into the target ``y``.
``card["x_channels"]`` and ``card["y_channels"]`` name the channels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from saeno.errors import DataFormatError
from saeno.pde.readers.common import check_array, describe_h5, limit, pair_frames


def is_the_well(f: h5py.File) -> bool:
    """Whether an open HDF5 file looks like a The Well file."""
    return "t0_fields" in f or "t1_fields" in f or "n_spatial_dims" in f.attrs


def _field(ds: h5py.Dataset, m: int, n_traj: int, n_time: int) -> np.ndarray:
    """Read a field as ``(m, T, *grid, k)`` with k the flattened tensor components."""
    sample_varying = bool(ds.attrs.get("sample_varying", True))
    time_varying = bool(ds.attrs.get("time_varying", True))
    a = ds[:m] if sample_varying else ds[()]
    if not sample_varying:
        a = np.broadcast_to(a[None], (m, *a.shape))
    if not time_varying:
        a = np.broadcast_to(a[:, None], (m, n_time, *a.shape[1:]))
    return np.asarray(a)


def read_the_well(
    path: str | Path,
    n: int | None = None,
    pairing: str = "initial_final",
    step: int = 1,
    t_in: int = 0,
    t_out: int = -1,
    fields: list[str] | None = None,
) -> dict[str, Any]:
    """Read a The Well HDF5 file into ``(N, C, *grid)`` pairs.

    Parameters
    ----------
    path : str or Path
        The HDF5 file.
    n : int, optional
        Read only the first ``n`` trajectories.
    pairing, step, t_in, t_out
        Time pairing (see :func:`saeno.pde.readers.common.pair_frames`); default first -> last frame.
    fields : list of str, optional
        Field names to use (default: all fields of ``t0_fields``, ``t1_fields``, ``t2_fields``).

    Returns
    -------
    dict
        ``{"x", "y", "params", "labels", "card"}``; ``params`` holds the ``scalars/`` group's values
        (one per file, repeated per sample) plus ``trajectory`` and ``t_index``.
    """
    src = str(path)
    with h5py.File(path, "r") as f:
        if "n_spatial_dims" not in f.attrs or not any(
            g in f for g in ("t0_fields", "t1_fields", "t2_fields")
        ):
            raise DataFormatError(
                f"{path}: expected The Well's layout (root attr 'n_spatial_dims' and groups t0_fields/, "
                f"t1_fields/, t2_fields/ with fields (n_traj, T, *grid[, d])); found attrs "
                f"{sorted(f.attrs)} and {describe_h5(f)}"
            )
        try:
            ndim = int(np.asarray(f.attrs["n_spatial_dims"]).reshape(-1)[0])
            n_traj = int(np.asarray(f.attrs.get("n_trajectories", 0)).reshape(-1)[0]) or None
        except (TypeError, ValueError, IndexError) as exc:
            raise DataFormatError(
                f"{path}: root attrs n_spatial_dims / n_trajectories must be integers ({exc})"
            ) from exc
        if not 1 <= ndim <= 3:
            raise DataFormatError(f"{path}: n_spatial_dims = {ndim}; saeno reads 1 to 3 space axes")
        time = f.get("dimensions/time")
        n_time = int(time.shape[0]) if isinstance(time, h5py.Dataset) and time.ndim == 1 else None
        dynamic, static, dyn_names, static_names = [], [], [], []
        available = []
        for order, group in enumerate(("t0_fields", "t1_fields", "t2_fields")):
            if group not in f:
                continue
            if not isinstance(f[group], h5py.Group):
                raise DataFormatError(f"{path}: {group} should be a group of fields, found a dataset")
            for name in sorted(f[group].keys()):
                available.append(name)
                if fields is not None and name not in fields:
                    continue
                ds = f[group][name]
                key = f"{group}/{name}"
                if not isinstance(ds, h5py.Dataset):
                    raise DataFormatError(f"{path}: {key} should be a dataset, found a group")
                sample_varying = bool(ds.attrs.get("sample_varying", True))
                time_varying = bool(ds.attrs.get("time_varying", True))
                expected = ndim + order + int(sample_varying) + int(time_varying)
                if ds.ndim != expected:
                    raise DataFormatError(
                        f"{path}: field {key} should have {expected} axes "
                        f"({'n_traj, ' if sample_varying else ''}{'T, ' if time_varying else ''}{ndim} space "
                        f"axes{', ' + str(order) + ' component axes' if order else ''}), found shape {ds.shape}"
                    )
                if n_traj is None and sample_varying:
                    n_traj = int(ds.shape[0])
                if n_time is None and time_varying:
                    n_time = int(ds.shape[int(sample_varying)])
                m = limit(n_traj or 1, n, src)
                check_array(ds, src, key, m if sample_varying else None)
                a = _field(ds, m, n_traj or 1, n_time or 1) if time_varying else _static(ds, m)
                a = a.reshape(*a.shape[: a.ndim - order], -1)  # flatten tensor components into channels
                k = a.shape[-1]
                names = [name] if k == 1 else [f"{name}_{i}" for i in range(k)]
                (dynamic if time_varying else static).append(a)
                (dyn_names if time_varying else static_names).extend(names)
        if fields is not None and sorted(set(fields) - set(available)):
            raise DataFormatError(
                f"{path}: fields {sorted(set(fields) - set(available))} not in the file; it has {available}"
            )
        if not dynamic:
            raise DataFormatError(
                f"{path}: no time-varying field selected, so there is nothing to predict; the file has "
                f"{describe_h5(f)}"
            )
        scalars = {}
        if "scalars" in f and isinstance(f["scalars"], h5py.Group):
            for key in f["scalars"]:  # type: ignore[union-attr]
                item = f["scalars"][key]
                if isinstance(item, h5py.Dataset) and item.size == 1 and item.dtype.kind in "biuf":
                    scalars[key] = float(np.asarray(item[()]).reshape(-1)[0])
        card = {
            "format": "the_well",
            "dataset_name": str(f.attrs.get("dataset_name", "")),
            "channels": dyn_names + static_names,
            "x_channels": dyn_names + static_names,
            "y_channels": dyn_names,
            "static_fields": static_names,
            "pairing": pairing,
        }
    shapes = {a.shape[:2] for a in dynamic}
    if len(shapes) != 1:
        raise DataFormatError(f"{path}: the time-varying fields disagree on (n_traj, T): {sorted(shapes)}")
    traj = np.moveaxis(np.concatenate(dynamic, axis=-1), -1, 2)  # (N, T, C, *grid)
    x, y, trajectory, t_index = pair_frames(traj, pairing, step, t_in, t_out)
    if static:
        fixed = np.moveaxis(np.concatenate(static, axis=-1), -1, 1)  # (N, C_static, *grid)
        if fixed.shape[2:] != x.shape[2:]:
            raise DataFormatError(
                f"{path}: static fields have grid {fixed.shape[2:]}, the time-varying fields {x.shape[2:]}"
            )
        x = np.concatenate([x, fixed[trajectory]], axis=1)
    params = {key: np.full(len(x), value) for key, value in scalars.items()}
    params.update(trajectory=trajectory.astype(float), t_index=t_index.astype(float))
    return {"x": x, "y": y, "params": params, "labels": {}, "card": card}


def _static(ds: h5py.Dataset, m: int) -> np.ndarray:
    """A field without a time axis as ``(m, *grid, k)``."""
    if bool(ds.attrs.get("sample_varying", True)):
        return np.asarray(ds[:m])
    return np.broadcast_to(np.asarray(ds[()])[None], (m, *ds.shape)).copy()
