"""The Well HDF5 files (one file per set of simulation parameters).

Layout: root attrs ``dataset_name``, ``n_spatial_dims``, ``simulation_parameters``; groups ``dimensions/``
(coordinates and ``time``), ``boundary_conditions/``, ``scalars/`` (simulation parameters), and ``t0_fields/``
(scalar fields ``(n_traj, T, *grid)``), ``t1_fields/`` (vectors ``(n_traj, T, *grid, d)``), ``t2_fields/``
(tensors ``(n_traj, T, *grid, d, d)``), channels last. A field whose ``sample_varying`` or ``time_varying``
attribute is false lacks that axis and is broadcast. Channels are stacked in the order t0, t1, t2 and by
field name (sorted); ``card["channels"]`` names them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from saeno.errors import DataFormatError
from saeno.pde.readers.common import describe_h5, limit, pair_frames


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
    with h5py.File(path, "r") as f:
        if "n_spatial_dims" not in f.attrs or not any(g in f for g in ("t0_fields", "t1_fields", "t2_fields")):
            raise DataFormatError(
                f"{path}: expected The Well's layout (root attr 'n_spatial_dims' and groups t0_fields/, "
                f"t1_fields/, t2_fields/ with fields (n_traj, T, *grid[, d])); found attrs "
                f"{sorted(f.attrs)} and {describe_h5(f)}"
            )
        ndim = int(f.attrs["n_spatial_dims"])
        n_traj = int(f.attrs.get("n_trajectories", 0)) or None
        n_time = len(f["dimensions/time"]) if "dimensions/time" in f else None
        arrays, names = [], []
        for order, group in enumerate(("t0_fields", "t1_fields", "t2_fields")):
            if group not in f:
                continue
            for name in sorted(f[group].keys()):
                if fields is not None and name not in fields:
                    continue
                ds = f[group][name]
                if n_traj is None and ds.attrs.get("sample_varying", True):
                    n_traj = ds.shape[0]
                if n_time is None and ds.attrs.get("time_varying", True):
                    n_time = ds.shape[1]
                m = limit(n_traj or 1, n)
                a = _field(ds, m, n_traj or 1, n_time or 1)
                expected = 2 + ndim + order
                if a.ndim != expected:
                    raise DataFormatError(
                        f"{path}: field {group}/{name} should have {expected} axes "
                        f"(n_traj, T, {ndim} space axes{', ' + str(order) + ' component axes' if order else ''}), "
                        f"found shape {ds.shape}"
                    )
                a = a.reshape(*a.shape[: 2 + ndim], -1)  # flatten tensor components into channels
                arrays.append(a)
                k = a.shape[-1]
                names += [name] if k == 1 else [f"{name}_{i}" for i in range(k)]
        if not arrays:
            raise DataFormatError(f"{path}: no fields selected; the file has {describe_h5(f)}")
        scalars = {}
        if "scalars" in f:
            for key in f["scalars"].keys():
                value = np.asarray(f["scalars"][key][()])
                if value.size == 1:
                    scalars[key] = float(value)
        card = {
            "format": "the_well",
            "dataset_name": str(f.attrs.get("dataset_name", "")),
            "channels": names,
            "pairing": pairing,
        }
    traj = np.moveaxis(np.concatenate(arrays, axis=-1), -1, 2)  # (N, T, C, *grid)
    x, y, trajectory, t_index = pair_frames(traj, pairing, step, t_in, t_out)
    params = {key: np.full(len(x), value) for key, value in scalars.items()}
    params.update(trajectory=trajectory.astype(float), t_index=t_index.astype(float))
    return {"x": x, "y": y, "params": params, "labels": {}, "card": card}
